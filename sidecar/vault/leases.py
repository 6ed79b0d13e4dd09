"""Leases of dynamic secrets: when to act on one next, renewing it, revoking it.

A dynamic secret is read once, then its lease is renewed (at `renew_fraction` of its
duration, and on each poll when `poll_period` is given) so that the same credentials are
served until max_ttl; it is read again when renewal fails or max_ttl would cut the renewed
lease short of the next renewal point.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import hvac
import hvac.exceptions

from mirrors.state import SourceState
from sidecar.vault.calls import call, request
from sidecar.vault.clients import Clients, Connection, Credentials
from sidecar.vault.errors import status_of, vault_messages
from sidecar.vault.times import format_time, parse_time

log = logging.getLogger("mirrors.sidecar.vault")

DEFAULT_RENEW_FRACTION = 2 / 3


def next_action_at(
    state: SourceState,
    *,
    poll_period: float | None,
    renew_fraction: float = DEFAULT_RENEW_FRACTION,
) -> datetime:
    """When `read_source` next has work for this source (pure).

    Static: the last read plus the poll period. Renewable lease: the earlier of the last
    read/renewal plus the poll period and the renewal point (`renew_fraction` of the lease
    duration after it was issued or last renewed). Lease that cannot be renewed: the renewal
    point only (reading earlier would only issue new credentials). No poll period: the
    renewal point, or the last read for a static source.
    Pass the same `poll_period` to `read_source`.
    """
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


def renew(
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

    def renew_once(client: hvac.Client) -> dict[str, Any] | None:
        try:
            return request(
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
                    "lease": lease_label(previous.leaseId),
                    "status": status_of(exc),
                    "error": vault_messages(exc),
                },
            )
            return None

    answer = call(clients, conn, creds, what, renew_once)
    if answer is None:
        return None
    duration = int(answer.get("lease_duration") or 0)
    fields = {
        "addr": conn.addr,
        "path": previous.path,
        "lease": lease_label(previous.leaseId),
        "lease_duration": duration,
    }
    if duration < renew_fraction * increment:
        # max_ttl caps the lease before the next renewal point: rotate now, while the
        # current credentials are still valid for the copies being updated.
        log.info("vault lease capped by max_ttl", extra=fields)
        return None
    log.info("vault lease renewed", extra=fields)
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


def revoke(clients: Clients, conn: Connection, creds: Credentials, lease_id: str) -> None:
    """Revoke a lease now (the credentials stop working). A lease already gone is fine.

    Needs `update` on `sys/leases/revoke`, which Vault's default policy does not grant.
    """
    if not lease_id:
        return
    what = f"revoking a lease of {lease_label(lease_id)!r} at {conn.addr}"

    def revoke_once(client: hvac.Client) -> None:
        try:
            request(client, "PUT", "sys/leases/revoke", {"lease_id": lease_id})
        except (hvac.exceptions.InvalidRequest, hvac.exceptions.InvalidPath) as exc:
            message = vault_messages(exc).lower()
            if "invalid lease" in message or "not found" in message:
                return
            raise

    call(clients, conn, creds, what, revoke_once)
    log.info("vault lease revoked", extra={"addr": conn.addr, "lease": lease_label(lease_id)})


def lease_label(lease_id: str) -> str:
    """The lease's path without its unique id, for logs."""
    return lease_id.rsplit("/", 1)[0] + "/..." if "/" in lease_id else "..."
