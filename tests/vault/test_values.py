"""Values are text both ways (pure)."""

from __future__ import annotations

import pytest

from sidecar.vault import VaultError
from sidecar.vault.values import decode_values, encode_values

pytestmark = pytest.mark.vault


def test_encoding_is_text_both_ways() -> None:
    assert encode_values({"a": "dGVzdA==", "n": 1, "f": False, "o": {"x": [1]}}, "t") == {
        "a": b"dGVzdA==",
        "n": b"1",
        "f": b"false",
        "o": b'{"x": [1]}',
    }
    assert decode_values({"a": "é".encode()}, "t") == {"a": "é"}
    with pytest.raises(VaultError) as caught:
        decode_values({"ok": b"x", "bad": b"\xff"}, "writing kv/x")
    assert caught.value.reason == "InvalidData"
    assert "bad" in caught.value.message
    with pytest.raises(VaultError):
        encode_values({"lone": "\ud800"}, "t")
