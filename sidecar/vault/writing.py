"""Writing a Vault destination: a KV v1 or v2 secret, only when its content differs.

Differs from what we last wrote, or from what is there now: a destination changed or deleted
behind our back is written again, as an edited copy in a namespace is restored.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime

from mirrors.state import DestinationState, content_hash
from sidecar.vault.calls import send
from sidecar.vault.clients import Clients, Connection, Credentials
from sidecar.vault.errors import ERROR, NOT_FOUND, UNREACHABLE, VaultError
from sidecar.vault.mounts import find_mount, normalize
from sidecar.vault.reading import read_once
from sidecar.vault.times import aware, format_time
from sidecar.vault.values import decode_values, encode_values

log = logging.getLogger("mirrors.sidecar.vault")


def _holds(clients: Clients, conn: Connection, creds: Credentials, path: str, digest: str) -> bool:
    try:
        answer, _ = read_once(clients, conn, creds, normalize(path))
        current = encode_values(answer["data"], f"checking {path!r} at {conn.addr}")
    except VaultError as exc:
        if exc.reason == UNREACHABLE:
            raise  # the status must say Vault is down
        # Gone: write it again. Not readable by this identity: nothing to compare.
        return exc.reason != NOT_FOUND
    return content_hash(current) == digest


def write_destination(  # noqa: PLR0917 - the adapter's interface
    clients: Clients,
    conn: Connection,
    creds: Credentials,
    path: str,
    data: Mapping[str, bytes],
    previous: DestinationState | None,
    *,
    now: datetime,
    force: bool = False,
) -> DestinationState:
    """Write `data` to a KV v1/v2 path, unless it is there already.

    When `previous` says this content was written to this path, the path is read to check
    that it still holds it (one GET per call; a policy without `read` skips the check).
    Every value must be UTF-8 (VaultError InvalidData, nothing written). `force` writes
    regardless.
    """
    now = aware(now)
    digest = content_hash(data)
    if (
        not force
        and previous is not None
        and previous.path == path
        and previous.contentHash == digest
    ):
        if _holds(clients, conn, creds, path, digest):
            return previous
        log.info("vault destination changed behind our back", extra={"path": path})
    where = f"writing {path!r} at {conn.addr}"
    text = decode_values(data, where)
    key = normalize(path)
    mount = find_mount(clients, conn, creds, key)
    if mount.kv_version is None:
        raise VaultError(
            ERROR,
            f"{where}: only KV secrets engines can be written, and {mount.path!r} is a "
            f"{mount.type or 'unknown'!r} engine",
        )
    relative = mount.secret(key, where)
    secret_version: int | None = None
    if mount.kv_version == 2:
        answer = send(
            clients,
            conn,
            creds,
            where,
            method="POST",
            path=f"{mount.path}data/{relative}",
            payload={"data": text},
        )
        version = (answer.get("data") or {}).get("version")
        secret_version = int(version) if isinstance(version, int) else None
    else:
        send(clients, conn, creds, where, method="POST", path=mount.path + relative, payload=text)
    log.info(
        "vault secret written",
        extra={
            "addr": conn.addr,
            "path": path,
            "kv_version": mount.kv_version,
            "secret_version": secret_version,
            "keys": len(text),
        },
    )
    return DestinationState(
        path=path, writtenAt=format_time(now), contentHash=digest, secretVersion=secret_version
    )
