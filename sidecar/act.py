"""Carry out one planned action through the ports and say what the state becomes.

No I/O of its own: Vault and Secret reads go through `sidecar.port`; the caller stores the
resulting state and emits the events. A failure never blanks anything: the last good source,
destination and data stay, and the error is recorded next to them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import msgspec

from mirrors import api
from mirrors.state import DestinationState, ErrorState, MirrorState, SourceState, same_place
from sidecar import credentials, plan
from sidecar.plan import EventSpec, InputError
from sidecar.port import SecretReader, VaultPort
from sidecar.vault import Connection, Credentials, VaultError

# Revocation for a mirror being deleted is retried until the lease expires or, while Vault
# stays unusable, for this long: a deletion must not hang forever on a Vault that is gone.
REVOKE_GIVE_UP = timedelta(minutes=15)


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(slots=True)
class Result:
    state: MirrorState | None  # None: the state Secret is to be deleted
    data: dict[str, bytes]
    ok: bool = True
    events: list[EventSpec] = field(default_factory=list)
    vault_next: datetime | None = None  # the core's own deadline for this source
    # What happened, for metrics: read, renewed, new_credentials, written, revoked.
    done: list[str] = field(default_factory=list)
    error_reason: str = ""

    def fail(self, error: ErrorState) -> None:
        self.ok = False
        self.error_reason = error.reason
        self.vault_next = None
        self.events.append(plan.error_event(error.reason, error.message))


def _error(exc: Exception, now: datetime) -> ErrorState:
    if isinstance(exc, VaultError):
        return ErrorState(reason=exc.reason, message=str(exc), at=rfc3339(now))
    assert isinstance(exc, InputError)
    return ErrorState(reason=exc.reason, message=exc.message, at=rfc3339(now))


class Executor:
    def __init__(
        self,
        vault: VaultPort,
        secrets: SecretReader,
        *,
        service_account_token: Callable[[], str],
        timeout: float = 10.0,
    ) -> None:
        self.vault = vault
        self.secrets = secrets
        self.service_account_token = service_account_token
        self.timeout = timeout

    def _resolve(
        self, vault: api.VaultSpec, spec: api.MirrorSpec, field: str
    ) -> tuple[Connection, Credentials]:
        found = {key: self.secrets.secret_data(*key) for key in credentials.vault_refs(vault, spec)}
        conn = credentials.connection(vault, spec, found, field, timeout=self.timeout)
        creds = credentials.credentials(
            vault, spec, found, field, service_account_token=self.service_account_token
        )
        return conn, creds

    def run(
        self,
        mirror: plan.Mirror,
        action: plan.Action,
        state: MirrorState | None,
        data: Mapping[str, bytes],
        *,
        now: datetime,
    ) -> Result:
        if isinstance(action, plan.Sync):
            return self._sync(mirror, action, state, data, now)
        if isinstance(action, plan.Finalize):
            return self._finalize(mirror, action, state, data, now)
        if isinstance(action, plan.Retire):
            return Result(state=None, data={})
        return Result(state=state, data=dict(data))

    def _read_source(
        self,
        *,
        spec: api.MirrorSpec,
        vault: api.VaultSpec,
        source: SourceState | None,
        data: Mapping[str, bytes],
        result: Result,
        now: datetime,
    ) -> SourceState:
        conn, creds = self._resolve(vault, spec, "spec.source.vault")
        previous = source if source is not None and same_place(source, vault) else None
        read, new = self.vault.read_source(
            conn,
            creds,
            vault.path,
            previous,
            now=now,
            previous_data=data if previous is not None else None,
            poll_period=float(spec.pollPeriodSeconds),
        )
        plan.check_secret_keys(read, vault.path)
        result.data = read
        if new != previous:  # the core hands `previous` back when nothing was due
            event = plan.source_event(previous, new)
            if event is None:
                result.done.append("read")
            elif event.reason == "VaultNewCredentials":
                result.done += ["read", "new_credentials"]
            else:
                result.done.append("renewed")
            if event is not None:
                result.events.append(event)
        # A lease has its own deadlines (renewal, max_ttl); a static source is read on the poll.
        if new.leaseId:
            result.vault_next = self.vault.next_action_at(
                new, poll_period=float(spec.pollPeriodSeconds)
            )
        # Recorded so that the hooks and the next poll can tell a read of another Vault.
        return new if new.addr == vault.addr else msgspec.structs.replace(new, addr=vault.addr)

    def _write_destination(
        self,
        *,
        spec: api.MirrorSpec,
        vault: api.VaultSpec,
        destination: DestinationState | None,
        payload: Mapping[str, bytes],
        result: Result,
        now: datetime,
    ) -> DestinationState:
        conn, creds = self._resolve(vault, spec, "spec.destination.vault")
        before = destination if destination is not None and same_place(destination, vault) else None
        new = self.vault.write_destination(conn, creds, vault.path, payload, before, now=now)
        if before is None or (new.contentHash, new.writtenAt) != (
            before.contentHash,
            before.writtenAt,
        ):
            result.done.append("written")
            result.events.append(
                EventSpec("Normal", "VaultWritten", f"wrote {len(payload)} key(s) to {vault.path}")
            )
        return new if new.addr == vault.addr else msgspec.structs.replace(new, addr=vault.addr)

    def _sync(
        self,
        mirror: plan.Mirror,
        action: plan.Sync,
        state: MirrorState | None,
        data: Mapping[str, bytes],
        now: datetime,
    ) -> Result:
        spec = mirror.spec
        assert spec is not None  # plan.decide syncs only a valid spec
        source = state.source if state else None
        destination = state.destination if state else None
        # A Secret source is not copied into the state; a Vault source's last read is.
        result = Result(state=None, data=dict(data) if action.source_vault else {})
        error: ErrorState | None = None
        try:
            payload: Mapping[str, bytes]
            if action.source_vault is not None:
                source = self._read_source(
                    spec=spec,
                    vault=action.source_vault,
                    source=source,
                    data=data,
                    result=result,
                    now=now,
                )
                payload = result.data
            else:
                assert action.source_secret is not None
                namespace, name = action.source_secret
                found = self.secrets.secret_data(namespace, name)
                if found is None:
                    raise InputError(
                        "NoSecret", f"secret {namespace}/{name} not found, waiting to appear"
                    )
                payload = found
                result.done.append("read")
            if action.destination_vault is not None:
                destination = self._write_destination(
                    spec=spec,
                    vault=action.destination_vault,
                    destination=destination,
                    payload=payload,
                    result=result,
                    now=now,
                )
        except (VaultError, InputError) as exc:
            error = _error(exc, now)
        new = MirrorState(
            generation=mirror.generation, source=source, destination=destination, error=error
        )
        result.state = plan.settle(state, new)
        if error is not None:
            result.fail(error)
        return result

    def _finalize(
        self,
        mirror: plan.Mirror,
        action: plan.Finalize,
        state: MirrorState | None,
        data: Mapping[str, bytes],
        now: datetime,
    ) -> Result:
        base = state or MirrorState(generation=mirror.generation)
        result = Result(state=None, data=dict(data))
        revoked = action.revoked
        if action.revoke_lease and action.revoke_with is not None and mirror.spec is not None:
            try:
                conn, creds = self._resolve(action.revoke_with, mirror.spec, "spec.source.vault")
                self.vault.revoke(conn, creds, action.revoke_lease)
                result.done.append("revoked")
                result.events.append(
                    EventSpec(
                        "Normal",
                        "VaultLeaseRevoked",
                        f"revoked the lease of {action.revoke_with.path}",
                    )
                )
            except (VaultError, InputError) as exc:
                # A lease Vault no longer knows is as good as revoked.
                if not (isinstance(exc, VaultError) and exc.reason == "VaultNotFound"):
                    error = _error(exc, now)
                    failing = plan.settle(state, msgspec.structs.replace(base, error=error))
                    assert failing.error is not None
                    first = plan.parse_time(failing.error.at) or now
                    if now - first < REVOKE_GIVE_UP:
                        result.state = failing
                        result.fail(error)
                        return result
                    revoked = False  # given up: the lease ends at its own expiry
                    result.events.append(
                        EventSpec(
                            "Warning",
                            "VaultError",
                            f"gave up revoking the lease after {REVOKE_GIVE_UP}; it ends at "
                            "its expiry",
                        )
                    )
        result.state = msgspec.structs.replace(
            base, generation=mirror.generation, revoked=revoked, finalized=True, error=None
        )
        return result
