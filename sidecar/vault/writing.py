"""Writing a Vault destination: a KV v1 or v2 secret, only when its content changed."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime

from mirrors.state import DestinationState, content_hash
from sidecar.vault.calls import send
from sidecar.vault.clients import Clients, Connection, Credentials
from sidecar.vault.errors import ERROR, VaultError
from sidecar.vault.mounts import find_mount, normalize
from sidecar.vault.times import aware, format_time
from sidecar.vault.values import decode_values

log = logging.getLogger("mirrors.sidecar.vault")


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
    """Write `data` to a KV v1/v2 path, unless `previous` says this content is already there.

    Every value must be UTF-8 (VaultError InvalidData, nothing written). `force` writes even
    when the content hash is unchanged (e.g. to repair a secret changed behind our back).
    """
    now = aware(now)
    digest = content_hash(data)
    if (
        not force
        and previous is not None
        and previous.path == path
        and previous.contentHash == digest
    ):
        return previous
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
