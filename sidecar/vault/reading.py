"""Reading a Vault source: a KV secret, or a dynamic secret whose lease is kept alive.

Any path that is not on a KV mount is read as is; when the answer has a lease, it is a
dynamic secret (see `sidecar.vault.leases`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from mirrors.state import SourceState, content_hash
from sidecar.vault.calls import send
from sidecar.vault.clients import Clients, Connection, Credentials
from sidecar.vault.errors import NOT_FOUND, VaultError
from sidecar.vault.leases import DEFAULT_RENEW_FRACTION, lease_label, next_action_at, renew
from sidecar.vault.mounts import Mount, find_mount, normalize
from sidecar.vault.times import aware, format_time, parse_time
from sidecar.vault.values import encode_values

log = logging.getLogger("mirrors.sidecar.vault")


def read_source(
    clients: Clients,
    conn: Connection,
    creds: Credentials,
    path: str,
    previous: SourceState | None,
    *,
    now: datetime,
    renew_fraction: float = DEFAULT_RENEW_FRACTION,
    previous_data: Mapping[str, bytes] | None = None,
    poll_period: float | None = None,
) -> tuple[dict[str, bytes], SourceState]:
    """Read a Vault source, or renew the lease of the dynamic secret read before.

    Static (KV, or no lease): read every call. Dynamic (the answer had a lease): given the
    previous state *and* `previous_data` for the same path, nothing happens before
    `next_action_at(previous, poll_period=poll_period)` (previous data and state come back
    unchanged); then the lease is renewed (same data, state with the new expiry), or new
    credentials are read when the lease cannot be renewed, has expired, or max_ttl would end
    it before the next renewal point. Without `previous_data` a dynamic source is read anew.
    Raises VaultError; the caller keeps publishing its last good data.
    """
    now = aware(now)
    key = normalize(path)
    if (
        previous is not None
        and previous.leaseId
        and previous.path == path
        and previous_data is not None
    ):
        due = next_action_at(previous, poll_period=poll_period, renew_fraction=renew_fraction)
        if now < due:
            return dict(previous_data), previous
        if previous.renewable and now < parse_time(previous.leaseExpiresAt):
            renewed = renew(clients, conn, creds, previous, now=now, renew_fraction=renew_fraction)
            if renewed is not None:
                return dict(previous_data), renewed
        log.info(
            "vault lease needs new credentials",
            extra={"addr": conn.addr, "path": path, "lease": lease_label(previous.leaseId)},
        )

    answer, mount = read_once(clients, conn, creds, key)
    data = encode_values(answer["data"], f"reading {path!r} at {conn.addr}")
    digest = content_hash(data)
    version = 1
    if previous is not None:
        version = previous.dataVersion + (previous.contentHash != digest)
    stamp = format_time(now)
    lease_id = "" if mount.kv_version else str(answer.get("lease_id") or "")
    secret_version = answer.get("secret_version")
    if lease_id:
        duration = int(answer.get("lease_duration") or 0)
        state = SourceState(
            path=path,
            readAt=stamp,
            contentHash=digest,
            dataVersion=version,
            leaseId=lease_id,
            leaseDuration=duration,
            renewable=bool(answer.get("renewable")),
            leaseIssuedAt=stamp,
            leaseExpiresAt=format_time(now + timedelta(seconds=duration)),
        )
        log.info(
            "vault dynamic secret read",
            extra={
                "addr": conn.addr,
                "path": path,
                "lease": lease_label(lease_id),
                "lease_duration": duration,
                "data_version": version,
            },
        )
    else:
        state = SourceState(
            path=path,
            readAt=stamp,
            contentHash=digest,
            dataVersion=version,
            kvVersion=mount.kv_version,
            secretVersion=int(secret_version) if isinstance(secret_version, int) else None,
        )
        log.debug(
            "vault secret read",
            extra={
                "addr": conn.addr,
                "path": path,
                "kv_version": mount.kv_version,
                "data_version": version,
            },
        )
    return data, state


def read_once(
    clients: Clients, conn: Connection, creds: Credentials, path: str
) -> tuple[dict[str, Any], Mount]:
    """Read `path`; returns (Vault's answer, mount). The answer's `data` is the secret."""
    mount = find_mount(clients, conn, creds, path)
    where = f"reading {path!r} at {conn.addr}"
    if mount.kv_version == 2:
        relative = mount.secret(path, where)
        answer = send(
            clients, conn, creds, where, method="GET", path=f"{mount.path}data/{relative}"
        )
        body = answer.get("data") or {}
        if not isinstance(body.get("data"), dict):
            raise VaultError(NOT_FOUND, f"{where}: the latest version is deleted or destroyed")
        return {
            "data": body["data"],
            "secret_version": (body.get("metadata") or {}).get("version"),
        }, mount
    api_path = path
    if mount.kv_version == 1:
        api_path = mount.path + mount.secret(path, where)
    answer = send(clients, conn, creds, where, method="GET", path=api_path)
    if not isinstance(answer.get("data"), dict):
        raise VaultError(NOT_FOUND, f"{where}: no data at this path")
    return answer, mount
