"""What the sidecar should do about one SecretMirror. Pure: no Kubernetes, no Vault, no clock.

The reconciler feeds in the mirror as observed, its state (from the state Secret) and `now`;
this module answers with an `Action` and, after an action, when to look again. Everything
that decides behaviour lives here so that it is unit-tested without any server.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import msgspec

from mirrors import api, names
from mirrors.state import MirrorState, SourceState

ERROR_RETRY_SECONDS = 30.0  # a failed mirror is retried this often (or its poll period if shorter)
MIN_GAP_SECONDS = 1.0  # never schedule a mirror closer than this to its last action
JITTER = 0.1  # poll periods vary by +-10% so that mirrors created together spread out
RELEASE_RETRY_SECONDS = 3.0  # copies still owned or a release failed: look again this soon
RELEASE_RECHECK_SECONDS = 30.0  # none owned: look again at this pace until the mirror is gone

SecretKey = tuple[str, str]  # (namespace, name)
SecretData = Mapping[str, bytes]


class InputError(Exception):
    """What Vault needs is missing or unusable (a Secret, a key, a token file).

    `reason` is an Event/ErrorState reason: NoSecret, InvalidData, VaultAuthFailed...
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


_SECRET_KEY = re.compile(r"[-._a-zA-Z0-9]{1,253}")


def check_secret_keys(data: Mapping[str, bytes], path: str) -> None:
    """Vault keys become Secret keys (the copies, the state Secret); the API server refuses
    any other character, which would fail every write with a bare 422."""
    for key in sorted(data):
        if not _SECRET_KEY.fullmatch(key):
            raise InputError(
                "InvalidData",
                f"key {key!r} of {path} cannot be a Kubernetes Secret key "
                "(letters, digits, '-', '_' and '.' only)",
            )


@dataclass(frozen=True, slots=True)
class Mirror:
    """A SecretMirror as the sidecar needs it. `spec` is None when it does not validate."""

    name: str
    uid: str
    generation: int
    resource_version: str
    deleting: bool
    spec: api.MirrorSpec | None
    spec_error: str
    delete_policy: Literal["delete", "retain"]  # read leniently, also from an invalid spec
    ready_reason: str  # .status.conditions[Ready].reason, written by the hooks
    ready_message: str

    @property
    def involves_vault(self) -> bool:
        return self.spec is not None and api.involves_vault(self.spec)

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> Mirror:
        meta = obj.get("metadata") or {}
        raw_spec = obj.get("spec") or {}
        spec: api.MirrorSpec | None = None
        error = ""
        try:
            spec = api.decode_spec(msgspec.json.encode(raw_spec))
            api.check_spec(spec)
        except api.SpecError as exc:
            spec, error = None, str(exc)
        policy = raw_spec.get("deletePolicy") if isinstance(raw_spec, Mapping) else None
        reason, message = _ready(obj.get("status"))
        return cls(
            name=str(meta.get("name", "")),
            uid=str(meta.get("uid", "")),
            generation=int(meta.get("generation") or 0),
            resource_version=str(meta.get("resourceVersion", "")),
            deleting=bool(meta.get("deletionTimestamp")),
            spec=spec,
            spec_error=error,
            delete_policy="retain" if policy == "retain" else "delete",
            ready_reason=reason,
            ready_message=message,
        )


def _ready(status: object) -> tuple[str, str]:
    if not isinstance(status, Mapping):
        return "", ""
    for condition in status.get("conditions") or ():
        if isinstance(condition, Mapping) and condition.get("type") == "Ready":
            return str(condition.get("reason") or ""), str(condition.get("message") or "")
    return "", ""


# --- releasing the copies of a retained mirror ---------------------------------------------


def needs_release(mirror: Mirror) -> bool:
    """Whether the copies must be released from the mirror: it is being deleted under
    `deletePolicy: retain` (read leniently, so an invalid spec still keeps its copies).

    The garbage collector deletes every copy that still names the mirror as owner once the
    mirror is gone, whatever propagation policy the DELETE carried (kubectl sends Background,
    which drops the GC's `orphan` finalizer). So the copies lose that ownerReference while the
    Metacontroller finalizer holds the mirror; the finalize hook waits for it.
    """
    return mirror.deleting and mirror.delete_policy == "retain" and bool(mirror.uid)


def copies_selector(mirror: Mirror) -> str:
    """The label selector of a mirror's copies (Metacontroller's generated selector)."""
    return f"{names.CONTROLLER_UID_LABEL}={mirror.uid}"


def owned_by(obj: Mapping[str, Any], uid: str) -> bool:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or ()
    return any(isinstance(r, Mapping) and r.get("uid") == uid for r in refs)


def release_patch(obj: Mapping[str, Any], uid: str) -> list[dict[str, Any]] | None:
    """A JSON patch removing the ownerReferences to `uid` from `obj`, keeping every other one;
    None when `obj` has none.

    Guarded by a `test` on the resourceVersion read: if the object changed since, the API
    server refuses the whole patch (422) and the caller reads it again. Labels stay, the
    `controller-uid` one included: harmless once the owner is gone (nothing adopts for a
    deleted uid) and it shows where the copy came from.
    """
    meta = obj.get("metadata") or {}
    refs = [r for r in meta.get("ownerReferences") or () if isinstance(r, Mapping)]
    keep = [dict(r) for r in refs if r.get("uid") != uid]
    if len(keep) == len(refs):
        return None
    guard = {"op": "test", "path": "/metadata/resourceVersion", "value": meta["resourceVersion"]}
    if keep:
        return [guard, {"op": "replace", "path": "/metadata/ownerReferences", "value": keep}]
    return [guard, {"op": "remove", "path": "/metadata/ownerReferences"}]


def after_release(*, left: int, failed: bool) -> float:
    """Seconds until the copies of a deleting retain mirror are looked at again.

    Soon while any is still owned or a call failed. Once none is, Metacontroller sees no child
    and lets the mirror go (its DELETED event ends this); a slow re-check covers a copy created
    by a sync that was in flight when the deletion began.
    """
    return RELEASE_RETRY_SECONDS if left or failed else RELEASE_RECHECK_SECONDS


# --- actions ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Nothing:
    why: str


@dataclass(frozen=True, slots=True)
class Sync:
    """Read the source (Vault, or the source Secret) and write the Vault destination if any."""

    source_vault: api.VaultSpec | None
    source_secret: SecretKey | None  # type secret with a Vault destination
    destination_vault: api.VaultSpec | None


@dataclass(frozen=True, slots=True)
class Finalize:
    """The mirror is being deleted: revoke `revoke_lease` (if any), then mark the state final."""

    revoke_lease: str
    revoke_with: api.VaultSpec | None
    revoked: bool  # value of `revoked` once done (delete policy: True; retain: False)


@dataclass(frozen=True, slots=True)
class Retire:
    """The mirror no longer involves Vault: its state Secret is deleted."""


Action = Nothing | Sync | Finalize | Retire


def parse_time(text: str) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def live_lease(state: MirrorState | None, now: datetime) -> str:
    """The lease id still worth revoking: recorded, not revoked, not known to be expired."""
    if state is None or state.source is None or state.revoked or not state.source.leaseId:
        return ""
    expires = parse_time(state.source.leaseExpiresAt)
    if expires is not None and expires <= now:
        return ""
    return state.source.leaseId


def decide(mirror: Mirror, state: MirrorState | None, *, now: datetime) -> Action:
    spec = mirror.spec
    if mirror.deleting:
        if state is not None and state.finalized:
            return Nothing("finalized")
        if state is None and not mirror.involves_vault:
            return Nothing("not a Vault mirror")
        revoke_with = (
            spec.source.vault if spec is not None and spec.source.type == "vault" else None
        )
        lease = live_lease(state, now) if mirror.delete_policy == "delete" else ""
        if lease and revoke_with is None:
            # The spec no longer says how to reach Vault; the lease ends at its expiry.
            lease = ""
        return Finalize(
            revoke_lease=lease, revoke_with=revoke_with, revoked=mirror.delete_policy == "delete"
        )
    if spec is None:
        return Nothing(f"invalid spec: {mirror.spec_error}")
    if not api.involves_vault(spec):
        return Retire() if state is not None else Nothing("not a Vault mirror")
    source_secret = None
    if spec.source.type == "secret":
        source_secret = (spec.source.namespace, api.source_name(spec, mirror.name))
    return Sync(
        source_vault=spec.source.vault if spec.source.type == "vault" else None,
        source_secret=source_secret,
        destination_vault=spec.destination.vault if spec.destination.type == "vault" else None,
    )


def urgent(mirror: Mirror, state: MirrorState | None) -> bool:
    """Whether a change seen on the watch must be acted on now rather than at the next poll."""
    if mirror.deleting:
        return (
            needs_release(mirror)
            or (state is not None and not state.finalized)
            or (state is None and mirror.involves_vault)
        )
    if mirror.spec is None:
        return False
    if not mirror.involves_vault:
        return state is not None
    if mirror.spec.source.type == "secret" and mirror.ready_reason == "VaultPending":
        # The hooks saw the source Secret differ from what was written (Metacontroller
        # watches it; the sidecar only GETs it): push now, not at the next poll.
        return True
    return state is None or state.generation != mirror.generation


# --- scheduling -------------------------------------------------------------------------------


def next_run(
    spec: api.MirrorSpec,
    *,
    now: datetime,
    ok: bool,
    jitter: float,
    vault_next: datetime | None = None,
) -> datetime:
    """When to act on a mirror again after acting at `now`.

    `jitter` in [-1, 1] scales the +-10% spread of the poll period. `vault_next` is the Vault
    core's own deadline (lease renewal, re-read before max_ttl); it wins when earlier, but
    never closer than MIN_GAP_SECONDS. A failure is retried after ERROR_RETRY_SECONDS (or the
    poll period when shorter).
    """
    period = float(spec.pollPeriodSeconds)
    if not ok:
        period = min(period, ERROR_RETRY_SECONDS)
    at = now + timedelta(seconds=period * (1 + JITTER * max(-1.0, min(1.0, jitter))))
    if vault_next is not None and vault_next < at:
        at = max(vault_next, now + timedelta(seconds=MIN_GAP_SECONDS))
    return at


def first_run(state: MirrorState | None, *, now: datetime, vault_next: datetime | None) -> datetime:
    """When to first act on a Vault mirror found at start-up (or on gaining leadership).

    A recorded source resumes at the core's deadline for it (renewing the recorded lease
    rather than issuing new credentials); anything else is looked at now.
    """
    if state is None or state.source is None or vault_next is None:
        return now
    return max(now, vault_next)


# --- state ------------------------------------------------------------------------------------


def settle(previous: MirrorState | None, new: MirrorState) -> MirrorState:
    """`new`, with the timestamps of `previous` where nothing but a timestamp moved.

    A poll that reads the same data, or writes nothing, then leaves the state Secret as it
    was: no API write per poll, and the hooks' status stays stable. The same error seen again
    keeps the time it was first seen.
    """
    if previous is None:
        return new
    source, destination, error = new.source, new.destination, new.error
    if (
        source is not None
        and previous.source is not None
        and msgspec.structs.replace(source, readAt=previous.source.readAt) == previous.source
    ):
        source = previous.source
    if destination is not None and previous.destination is not None:
        same = msgspec.structs.replace(destination, writtenAt=previous.destination.writtenAt)
        if same == previous.destination:
            destination = previous.destination
    if (
        error is not None
        and previous.error is not None
        and (error.reason, error.message) == (previous.error.reason, previous.error.message)
    ):
        error = previous.error
    return msgspec.structs.replace(new, source=source, destination=destination, error=error)


# --- events -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventSpec:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


# Event reasons for errors: the ErrorState keeps the precise reason, the Event uses the
# documented set (what a person filters on).
_ERROR_EVENT_REASON = {"VaultAuthFailed": "VaultAuthFailed", "NoSecret": "NoSecret"}


def error_event(reason: str, message: str) -> EventSpec:
    return EventSpec("Warning", _ERROR_EVENT_REASON.get(reason, "VaultError"), message)


def source_event(previous: SourceState | None, new: SourceState) -> EventSpec | None:
    """New credentials issued, or a lease renewed. Never a value or a lease id."""
    if new.leaseId and (previous is None or previous.leaseId != new.leaseId):
        return EventSpec(
            "Normal",
            "VaultNewCredentials",
            f"read new credentials from {new.path} (lease {new.leaseDuration}s)",
        )
    if (
        previous is not None
        and new.leaseId
        and new.leaseId == previous.leaseId
        and new.renewedAt
        and new.renewedAt != previous.renewedAt
    ):
        return EventSpec(
            "Normal",
            "VaultLeaseRenewed",
            f"renewed the lease of {new.path} for {new.leaseDuration}s",
        )
    return None


def status_event(previous_reason: str | None, mirror: Mirror) -> EventSpec | None:
    """An Event for a Ready-condition transition written by the hooks (every mirror).

    `previous_reason` None means the mirror was not seen before (start-up, or created while
    the watch re-listed): only a Warning then, so that a broken mirror says so in `kubectl
    describe` even if its transition happened while no sidecar led; a restart does not repeat
    the Normal ones.
    """
    reason = mirror.ready_reason
    if reason == previous_reason or (previous_reason is None and reason == "Synced"):
        return None
    if reason == "SourceNotFound":
        return EventSpec("Warning", "NoSecret", mirror.ready_message)
    if reason == "Synced":
        return EventSpec("Normal", "Active", "SecretMirror is synced")
    if reason == "InvalidSpec":
        return EventSpec("Warning", "InvalidSpec", mirror.ready_message)
    return None


def release_event(released: int) -> EventSpec:
    message = f"released {released} copies; they stay after the mirror is deleted"
    return EventSpec("Normal", "CopiesReleased", message)


def release_failed_event(detail: str) -> EventSpec:
    """`detail` names copies and HTTP statuses, never a response body (it could echo data)."""
    message = f"could not release the copies ({detail}); the deletion waits, retrying"
    return EventSpec("Warning", "ReleaseFailed", message)
