"""Vault mirrors, as the hooks see them: the sidecar's state Secret turned into copies and status.

The hooks never call Vault. The sidecar reads and writes Vault and records the outcome in the
mirror's state Secret (see `mirrors.state`), which Metacontroller hands us as a related object.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, replace
from typing import Any

import msgspec

from hooks import fanout
from hooks.protocol import EMPTY_DATA, Secret, SyncRequest
from hooks.status import Outcome
from mirrors import api, state
from mirrors.names import state_secret_name


@dataclass(frozen=True, slots=True)
class Published:
    """The state Secret: what the sidecar last did (None: it has not written one yet)."""

    state: state.MirrorState | None
    data: msgspec.Raw
    damaged: str = ""


def published(request: SyncRequest, controller_namespace: str) -> Published:
    parent = request.parent.metadata
    key = f"{controller_namespace}/{state_secret_name(parent.name)}"
    secret = request.related.secrets.get(key)
    # Only the state of this very mirror (its uid): a deleted mirror's state Secret may outlive
    # it (the GC is not instant; --cascade=orphan leaves it ownerless) and would hand the data
    # of another Vault path to a new mirror of the same name.
    if secret is None or not secret.metadata.owned_by(parent.uid):
        return Published(None, EMPTY_DATA)
    text = secret.metadata.annotation(state.STATE_ANNOTATION)
    try:
        return Published(state.decode(text), secret.data)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        return Published(None, secret.data, damaged=f"state Secret {key} is unreadable: {exc}")


def _read_of(current: state.MirrorState, vault: api.VaultSpec) -> state.MirrorState:
    """`current` without a read of a path or server the spec no longer names: that data must
    not reach new namespaces or the destination, nor status claim the new place, until the
    sidecar has read it."""
    if current.source is None or state.same_place(current.source, vault):
        return current
    return msgspec.structs.replace(current, source=None)


def location(vault: api.VaultSpec) -> str:
    return f"{vault.addr.rstrip('/')}/{vault.path.lstrip('/')}"


def secret_hash(secret: Secret) -> str:
    """The content hash of a Kubernetes Secret, as the sidecar computes it for Vault writes."""
    encoded = msgspec.json.decode(secret.data, type=dict[str, str])
    return state.content_hash({k: base64.b64decode(v) for k, v in encoded.items()})


def _waiting(what: str) -> Outcome:
    return Outcome("Pending", "VaultPending", f"waiting for the sidecar to {what}")


def _failed(error: state.ErrorState, good: str = "") -> Outcome:
    suffix = f"; {good}" if good else ""
    return Outcome("Error", error.reason, f"{error.message}{suffix}")


def source_status(vault: api.VaultSpec, source: state.SourceState) -> dict[str, Any]:
    """What status shows of a Vault read: only fields that change when the data or lease does."""
    out: dict[str, Any] = {"type": "vault", "location": location(vault)}
    out["dataVersion"] = source.dataVersion
    if source.secretVersion is not None:
        out["secretVersion"] = source.secretVersion
    if source.leaseIssuedAt:
        out["leaseIssuedAt"] = source.leaseIssuedAt
        out["leaseExpiresAt"] = source.leaseExpiresAt
    return out


def destination_status(vault: api.VaultSpec, written: state.DestinationState) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "vault", "location": location(vault)}
    out["writtenAt"] = written.writtenAt
    if written.secretVersion is not None:
        out["secretVersion"] = written.secretVersion
    return out


def to_namespaces(
    request: SyncRequest, spec: api.MirrorSpec, targets: fanout.Targets, pub: Published
) -> tuple[Outcome, list[fanout.Child]]:
    """Vault → namespaces: fan out the last good read; report errors beside it."""
    vault = spec.source.vault
    assert vault is not None  # checked by api.check_spec
    mirror = request.parent.metadata
    current = None if pub.state is None else _read_of(pub.state, vault)
    if current is None or current.source is None:
        if pub.damaged:
            outcome = Outcome("Error", "StateUnreadable", pub.damaged)
        elif current is not None and current.error is not None:
            outcome = _failed(current.error)
        else:
            outcome = _waiting(f"read {location(vault)}")
        return outcome, fanout.keep_observed(mirror, request.children.secrets)
    name = api.source_name(spec, mirror.name)
    payload = fanout.Payload("Opaque", pub.data, f"vault:{location(vault)}")
    fan = fanout.plan(request, name=name, payload=payload, targets=targets)
    reason, message = fanout.summary(fan)
    source = source_status(vault, current.source)
    if current.error is not None:
        outcome = _failed(current.error, f"serving the data read at {current.source.readAt}")
        return replace(outcome, source=source, fanout=fan), fan.children
    return Outcome("Active", reason, message, source, fan), fan.children


def to_vault(
    request: SyncRequest, spec: api.MirrorSpec, pub: Published
) -> tuple[Outcome, list[fanout.Child]]:
    """Secret → Vault and Vault → Vault: no copies in the cluster, the write's outcome in status."""
    vault = spec.destination.vault
    assert vault is not None  # checked by api.check_spec
    kept = fanout.keep_observed(request.parent.metadata, request.children.secrets)
    wanted = ""
    if spec.source.type == "secret":
        name = api.source_name(spec, request.parent.metadata.name)
        source = request.related.secrets.get(f"{spec.source.namespace}/{name}")
        if source is None:
            message = f"secret {spec.source.namespace}/{name} not found, waiting to appear"
            return Outcome("Pending", "SourceNotFound", message), kept
        wanted = secret_hash(source)
    current = pub.state
    if pub.damaged:
        return Outcome("Error", "StateUnreadable", pub.damaged), kept
    if current is None:
        return _waiting(f"write {location(vault)}"), kept
    if spec.source.type == "vault" and spec.source.vault is not None:
        current = _read_of(current, spec.source.vault)
        if current.source is None:
            return (_failed(current.error) if current.error else _waiting("read the source")), kept
        wanted = current.source.contentHash
    written = current.destination
    if written is not None and not state.same_place(written, vault):
        written = None  # written before the path changed: the new path is not written yet
    details = {"destination": destination_status(vault, written)} if written else {}
    if current.error is not None:
        outcome = _failed(current.error)
    elif written is None or written.contentHash != wanted:
        outcome = _waiting(f"write {location(vault)}")
    else:
        outcome = Outcome("Active", "Synced", f"written to {location(vault)}")
    # Copies left from a spec whose destination was namespaces go once the data is in Vault;
    # until then (and on any error) they stay, as every error path keeps them.
    children = [] if outcome.phase == "Active" else kept
    return replace(outcome, details=details), children


def lease_released(spec: api.MirrorSpec, pub: Published) -> bool:
    """Whether the sidecar is done with a deleted mirror (its lease revoked, if it had one)."""
    current = pub.state
    if current is None or current.finalized:
        return True
    leased = current.source is not None and bool(current.source.leaseId)
    return not (leased and spec.deletePolicy == "delete")
