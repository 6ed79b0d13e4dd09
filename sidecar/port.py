"""The two ports the sidecar acts through: Vault (the core in `sidecar.vault`) and Kubernetes reads.

The executor (`sidecar.act`) depends only on these Protocols, so its unit tests use in-memory
fakes; `CoreVault` binds the real Vault core, `sidecar.kube.Kube` the real API server.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import datetime
from typing import Protocol

from mirrors.state import DestinationState, SourceState
from sidecar import vault
from sidecar.vault import Connection, Credentials


class VaultPort(Protocol):
    def read_source(
        self,
        conn: Connection,
        creds: Credentials,
        path: str,
        previous: SourceState | None,
        *,
        now: datetime,
        previous_data: Mapping[str, bytes] | None,
        poll_period: float,
    ) -> tuple[dict[str, bytes], SourceState]: ...

    def write_destination(
        self,
        conn: Connection,
        creds: Credentials,
        path: str,
        data: Mapping[str, bytes],
        previous: DestinationState | None,
        *,
        now: datetime,
    ) -> DestinationState: ...

    def revoke(self, conn: Connection, creds: Credentials, lease_id: str) -> None: ...

    def next_action_at(self, state: SourceState, *, poll_period: float) -> datetime: ...


class SecretReader(Protocol):
    def secret_data(self, namespace: str, name: str) -> dict[str, bytes] | None:
        """The Secret's data, or None when it does not exist."""
        ...


def _identity(conn: Connection, creds: Credentials) -> tuple[object, ...]:
    """Who logs in where, without the part that rotates (a token, a secret-id)."""
    return (conn, creds.method, creds.role_id, creds.approle_path, creds.k8s_role, creds.k8s_mount)


class CoreVault:
    """The Vault core with one client cache for the process.

    When the material of an identity changes (a secret-id or token Secret is updated), the
    client built from the old material is forgotten, so the cache holds one client per
    identity, not one per rotation. (The core itself ignores the rotating Kubernetes JWT.)
    """

    def __init__(self, *, renew_fraction: float) -> None:
        self.clients = vault.Clients(renew_fraction=renew_fraction)
        self.renew_fraction = renew_fraction
        self._lock = threading.Lock()
        self._current: dict[tuple[object, ...], Credentials] = {}

    def _track(self, conn: Connection, creds: Credentials) -> None:
        if creds.method == "kubernetes":
            return  # the core keys Kubernetes auth without the (rotating) JWT already
        key = _identity(conn, creds)
        with self._lock:
            old = self._current.get(key)
            self._current[key] = creds
        if old is not None and old != creds:
            self.clients.forget(conn, old)

    def read_source(
        self,
        conn: Connection,
        creds: Credentials,
        path: str,
        previous: SourceState | None,
        *,
        now: datetime,
        previous_data: Mapping[str, bytes] | None,
        poll_period: float,
    ) -> tuple[dict[str, bytes], SourceState]:
        self._track(conn, creds)
        return vault.read_source(
            self.clients,
            conn,
            creds,
            path,
            previous,
            now=now,
            previous_data=previous_data,
            renew_fraction=self.renew_fraction,
            poll_period=poll_period,
        )

    def write_destination(
        self,
        conn: Connection,
        creds: Credentials,
        path: str,
        data: Mapping[str, bytes],
        previous: DestinationState | None,
        *,
        now: datetime,
    ) -> DestinationState:
        self._track(conn, creds)
        return vault.write_destination(self.clients, conn, creds, path, data, previous, now=now)

    def revoke(self, conn: Connection, creds: Credentials, lease_id: str) -> None:
        self._track(conn, creds)
        vault.revoke(self.clients, conn, creds, lease_id)

    def next_action_at(self, state: SourceState, *, poll_period: float) -> datetime:
        return vault.next_action_at(
            state, poll_period=poll_period, renew_fraction=self.renew_fraction
        )
