"""Reading, writing, renewing and revoking: the Vault side of a SecretMirror, no Kubernetes.

* KV v1 / v2 is detected from the mount (`GET sys/internal/ui/mounts/<path>`, which answers
  any token with some capability under the mount); on a v2 mount `secret/data/x` and
  `secret/x` name the same secret. Any path that is not on a KV mount is read as is
  (`database/creds/<role>`...): when the answer has a lease, it is a dynamic secret.
* Values are text: a Vault string becomes its UTF-8 bytes, exactly (no base64 guessing);
  numbers, booleans, objects and null become their JSON text. Writing requires UTF-8 bytes.
* A dynamic secret is read once, then its lease is renewed (at `renew_fraction` of its
  duration, and on each poll when `poll_period` is given) so that the same credentials are
  served until max_ttl; it is read again when renewal fails or max_ttl would cut the renewed
  lease short of the next renewal point.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import hvac
import hvac.exceptions

from mirrors.state import DestinationState, SourceState, content_hash
from sidecar.vault.clients import Clients, Connection, Credentials
from sidecar.vault.errors import (
    ERROR,
    INVALID_DATA,
    NOT_FOUND,
    VaultError,
    status_of,
    translate,
    vault_messages,
)

log = logging.getLogger("mirrors.sidecar.vault")

T = TypeVar("T")

DEFAULT_RENEW_FRACTION = 2 / 3
KV_TYPES = frozenset({"kv", "generic"})


# -- time ----------------------------------------------------------------------------------


def format_time(moment: datetime) -> str:
    """RFC 3339, UTC, milliseconds: `2025-01-02T03:04:05.678Z`."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


# -- calling Vault -------------------------------------------------------------------------


def call(
    clients: Clients,
    conn: Connection,
    creds: Credentials,
    what: str,
    fn: Callable[[hvac.Client], T],
) -> T:
    """Run `fn` with the identity's client; on 403 check the token, log in again if it is no
    longer valid, and retry once. Every failure comes out as a VaultError."""
    client = clients.client(conn, creds)
    try:
        return fn(client)
    except hvac.exceptions.Forbidden as exc:
        if "preflight capability check" in vault_messages(exc):
            # The token is fine: no mount there, or the policy grants nothing under it.
            raise VaultError(
                NOT_FOUND,
                f"{what}: no secrets engine is mounted there, or the policy grants nothing "
                f"under it ({vault_messages(exc)})",
            ) from None
    except Exception as exc:
        raise translate(exc, what) from None
    fresh = clients.relogin(conn, creds)
    if fresh is None:
        raise VaultError(ERROR, f"{what}: permission denied by the token's policy")
    try:
        return fn(fresh)
    except Exception as exc:
        raise translate(exc, what) from None


def _request(client: hvac.Client, method: str, path: str, payload: Any = None) -> dict[str, Any]:
    """One Vault API call through hvac's adapter; {} for an empty (204) answer."""
    kwargs: dict[str, Any] = {}
    if payload is not None:
        kwargs["json"] = payload
    answer = client.adapter.request(method, f"/v1/{path}", **kwargs)
    if isinstance(answer, dict):
        return answer
    return {}


# -- mounts and paths ----------------------------------------------------------------------


@dataclass(frozen=True)
class Mount:
    path: str  # "secret/", prefixed by a namespace given in the path ("team/secret/")
    type: str  # "kv", "database", ...
    kv_version: int | None  # 1 or 2 on a KV mount, else None

    def relative(self, path: str) -> str:
        """`path` below the mount, with the KV v2 `data/` segment removed."""
        rest = path[len(self.path) :] if path.startswith(self.path) else path
        if self.kv_version == 2 and (rest == "data" or rest.startswith("data/")):
            rest = rest[len("data/") :]
        return rest.strip("/")


def normalize(path: str) -> str:
    return "/".join(part for part in path.split("/") if part)


def find_mount(clients: Clients, conn: Connection, creds: Credentials, path: str) -> Mount:
    """The mount holding `path` (cached per identity for a few minutes)."""
    cached = clients.cached_mount(conn, creds, path)
    if isinstance(cached, Mount):
        return cached
    answer = call(
        clients,
        conn,
        creds,
        f"looking up the mount of {path!r} at {conn.addr}",
        lambda client: _request(client, "GET", f"sys/internal/ui/mounts/{path}"),
    )
    data = answer.get("data") or {}
    mount_path = str(data.get("path") or "").strip("/")
    if not mount_path:
        raise VaultError(NOT_FOUND, f"no secrets engine is mounted at {path!r} ({conn.addr})")
    mount_path += "/"
    # With a namespace in the path ("team/secret/x") Vault answers the mount path relative
    # to that namespace ("secret/"): keep the prefix.
    if not path.startswith(mount_path):
        index = f"/{path}".find(f"/{mount_path}")
        if index >= 0:
            mount_path = path[:index] + mount_path
    engine = str(data.get("type") or "")
    kv_version: int | None = None
    if engine in KV_TYPES:
        options = data.get("options") or {}
        kv_version = 2 if str(options.get("version") or "1") == "2" else 1
    mount = Mount(path=mount_path, type=engine, kv_version=kv_version)
    clients.remember_mount(conn, creds, path, mount)
    return mount


# -- values --------------------------------------------------------------------------------


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


# -- reading -------------------------------------------------------------------------------


def _read_once(
    clients: Clients, conn: Connection, creds: Credentials, path: str
) -> tuple[dict[str, Any], Mount]:
    """Read `path`; returns (Vault's answer, mount). The answer's `data` is the secret."""
    mount = find_mount(clients, conn, creds, path)
    where = f"reading {path!r} at {conn.addr}"
    if mount.kv_version == 2:
        relative = mount.relative(path)
        if not relative:
            raise VaultError(ERROR, f"{where}: the path names the mount, not a secret")
        answer = call(
            clients,
            conn,
            creds,
            where,
            lambda client: _request(client, "GET", f"{mount.path}data/{relative}"),
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
        relative = mount.relative(path)
        if not relative:
            raise VaultError(ERROR, f"{where}: the path names the mount, not a secret")
        api_path = mount.path + relative
    answer = call(clients, conn, creds, where, lambda client: _request(client, "GET", api_path))
    if not isinstance(answer.get("data"), dict):
        raise VaultError(NOT_FOUND, f"{where}: no data at this path")
    return answer, mount


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
    now = _aware(now)
    key = normalize(path)
    if not key:
        raise VaultError(ERROR, "the Vault path is empty")
    if (
        previous is not None
        and previous.leaseId
        and previous.path == path
        and previous_data is not None
    ):
        if now < _next_action(previous, poll_period, renew_fraction):
            return dict(previous_data), previous
        if previous.renewable and now < parse_time(previous.leaseExpiresAt):
            renewed = _renew(clients, conn, creds, previous, now=now, renew_fraction=renew_fraction)
            if renewed is not None:
                return dict(previous_data), renewed
        log.info(
            "vault lease needs new credentials",
            extra={"addr": conn.addr, "path": path, "lease": _lease_label(previous.leaseId)},
        )

    answer, mount = _read_once(clients, conn, creds, key)
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
                "lease": _lease_label(lease_id),
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


def _renew(
    clients: Clients,
    conn: Connection,
    creds: Credentials,
    previous: SourceState,
    *,
    now: datetime,
    renew_fraction: float,
) -> SourceState | None:
    """Renew the lease; None when new credentials must be read instead."""
    increment = max(previous.leaseDuration, 1)
    what = f"renewing the lease of {previous.path!r} at {conn.addr}"

    def renew(client: hvac.Client) -> dict[str, Any] | None:
        try:
            return _request(
                client,
                "PUT",
                "sys/leases/renew",
                {"lease_id": previous.leaseId, "increment": increment},
            )
        except (hvac.exceptions.InvalidRequest, hvac.exceptions.InvalidPath) as exc:
            # Lease gone, expired, revoked or not renewable: read new credentials.
            log.info(
                "vault lease renewal refused",
                extra={
                    "addr": conn.addr,
                    "path": previous.path,
                    "lease": _lease_label(previous.leaseId),
                    "status": status_of(exc),
                    "error": vault_messages(exc),
                },
            )
            return None

    answer = call(clients, conn, creds, what, renew)
    if answer is None:
        return None
    duration = int(answer.get("lease_duration") or 0)
    if duration < renew_fraction * increment:
        # max_ttl caps the lease before the next renewal point: rotate now, while the
        # current credentials are still valid for the copies being updated.
        log.info(
            "vault lease capped by max_ttl",
            extra={
                "addr": conn.addr,
                "path": previous.path,
                "lease": _lease_label(previous.leaseId),
                "lease_duration": duration,
            },
        )
        return None
    log.info(
        "vault lease renewed",
        extra={
            "addr": conn.addr,
            "path": previous.path,
            "lease": _lease_label(previous.leaseId),
            "lease_duration": duration,
        },
    )
    return SourceState(
        path=previous.path,
        readAt=previous.readAt,
        contentHash=previous.contentHash,
        dataVersion=previous.dataVersion,
        kvVersion=previous.kvVersion,
        secretVersion=previous.secretVersion,
        leaseId=str(answer.get("lease_id") or previous.leaseId),
        leaseDuration=duration,
        renewable=bool(answer.get("renewable", previous.renewable)),
        leaseIssuedAt=previous.leaseIssuedAt,
        leaseExpiresAt=format_time(now + timedelta(seconds=duration)),
        renewedAt=format_time(now),
    )


def _lease_label(lease_id: str) -> str:
    """The lease's path without its unique id, for logs."""
    return lease_id.rsplit("/", 1)[0] + "/..." if "/" in lease_id else "..."


def _next_action(state: SourceState, poll_period: float | None, renew_fraction: float) -> datetime:
    read_at = parse_time(state.readAt)
    last = max(read_at, parse_time(state.renewedAt)) if state.renewedAt else read_at
    if state.leaseId and state.leaseDuration > 0:
        start = parse_time(state.renewedAt or state.leaseIssuedAt or state.readAt)
        renew_at = start + timedelta(seconds=renew_fraction * state.leaseDuration)
        if poll_period is None or not state.renewable:
            return renew_at
        return min(renew_at, last + timedelta(seconds=poll_period))
    if poll_period is None:
        return last
    return last + timedelta(seconds=poll_period)


def next_action_at(
    state: SourceState, *, poll_period: float, renew_fraction: float = DEFAULT_RENEW_FRACTION
) -> datetime:
    """When `read_source` next has work for this source (pure).

    Static: the last read plus the poll period. Renewable lease: the earlier of the last
    read/renewal plus the poll period and the renewal point (`renew_fraction` of the lease
    duration after it was issued or last renewed). Lease that cannot be renewed: the renewal
    point only (reading earlier would only issue new credentials).
    Pass the same `poll_period` to `read_source`.
    """
    return _next_action(state, poll_period, renew_fraction)


# -- writing -------------------------------------------------------------------------------


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
    now = _aware(now)
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
    if not key:
        raise VaultError(ERROR, "the Vault path is empty")
    mount = find_mount(clients, conn, creds, key)
    if mount.kv_version is None:
        raise VaultError(
            ERROR,
            f"{where}: only KV secrets engines can be written, and {mount.path!r} is a "
            f"{mount.type or 'unknown'!r} engine",
        )
    relative = mount.relative(key)
    if not relative:
        raise VaultError(ERROR, f"{where}: the path names the mount, not a secret")
    secret_version: int | None = None
    if mount.kv_version == 2:
        answer = call(
            clients,
            conn,
            creds,
            where,
            lambda client: _request(client, "POST", f"{mount.path}data/{relative}", {"data": text}),
        )
        version = (answer.get("data") or {}).get("version")
        secret_version = int(version) if isinstance(version, int) else None
    else:
        call(
            clients,
            conn,
            creds,
            where,
            lambda client: _request(client, "POST", mount.path + relative, text),
        )
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


# -- revoking ------------------------------------------------------------------------------


def revoke(clients: Clients, conn: Connection, creds: Credentials, lease_id: str) -> None:
    """Revoke a lease now (the credentials stop working). A lease already gone is fine.

    Needs `update` on `sys/leases/revoke`, which Vault's default policy does not grant.
    """
    if not lease_id:
        return
    what = f"revoking a lease of {_lease_label(lease_id)!r} at {conn.addr}"

    def do(client: hvac.Client) -> None:
        try:
            _request(client, "PUT", "sys/leases/revoke", {"lease_id": lease_id})
        except (hvac.exceptions.InvalidRequest, hvac.exceptions.InvalidPath) as exc:
            message = vault_messages(exc).lower()
            if "invalid lease" in message or "not found" in message:
                return
            raise

    call(clients, conn, creds, what, do)
    log.info("vault lease revoked", extra={"addr": conn.addr, "lease": _lease_label(lease_id)})
