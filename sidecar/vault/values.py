"""Values are text: a Vault string becomes its UTF-8 bytes, exactly (no base64 guessing);
numbers, booleans, objects and null become their JSON text. Writing requires UTF-8 bytes."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sidecar.vault.errors import INVALID_DATA, VaultError


def encode_values(values: Mapping[str, Any], where: str) -> dict[str, bytes]:
    """Vault values as bytes: strings as their UTF-8, anything else as JSON text."""
    out: dict[str, bytes] = {}
    for key, value in values.items():
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        try:
            out[str(key)] = text.encode("utf-8")
        except UnicodeEncodeError:
            raise VaultError(
                INVALID_DATA, f"{where}: the value of key {key!r} is not valid Unicode"
            ) from None
    return out


def decode_values(data: Mapping[str, bytes], where: str) -> dict[str, str]:
    """Bytes to Vault strings; every value must be UTF-8 or nothing is written."""
    out: dict[str, str] = {}
    bad: list[str] = []
    for key, value in data.items():
        try:
            out[key] = bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            bad.append(key)
    if bad:
        raise VaultError(
            INVALID_DATA,
            f"{where}: Vault stores text and the value of key(s) {', '.join(sorted(bad))} "
            "is not UTF-8; nothing was written",
        )
    return out
