"""Sync and finalize: a SecretMirror and what Metacontroller observed in, desired state out.

Every answer lists every child: Metacontroller deletes whatever is observed and not listed.
So every path that cannot compute the desired copies (bad spec, missing source) answers with
the observed copies unchanged; nothing is deleted because of an error.
"""

from __future__ import annotations

from typing import Any

import msgspec

from hooks import fanout, status, vault
from hooks.protocol import ObjectMeta, SyncRequest
from hooks.status import Outcome
from mirrors import api

Response = dict[str, Any]


def _respond(
    request: SyncRequest,
    outcome: Outcome,
    children: list[fanout.Child],
    now: str,
    resync_after: int,
) -> Response:
    return {
        "status": status.build(outcome, request.parent.status, now),
        "children": children,
        "resyncAfterSeconds": resync_after,
    }


def _secret_to_namespaces(
    request: SyncRequest, spec: api.MirrorSpec, targets: fanout.Targets, now: str
) -> Response:
    mirror = request.parent.metadata
    name = api.source_name(spec, mirror.name)
    source_ns = spec.source.namespace
    source = request.related.secrets.get(f"{source_ns}/{name}")
    if source is None:
        outcome = Outcome(
            "Pending", "SourceNotFound", f"secret {source_ns}/{name} not found, waiting to appear"
        )
        children = fanout.keep_observed(mirror, request.children.secrets)
        return _respond(request, outcome, children, now, spec.pollPeriodSeconds)
    payload = fanout.Payload(source.type, source.data, f"secret:{source_ns}/{name}")
    fan = fanout.plan(
        request, name=name, payload=payload, targets=targets, skip_namespace=source_ns
    )
    source_key = f"{source_ns}/{name}"
    if (own := request.children.secrets.get(source_key)) is not None:
        # source.namespace was moved to a namespace holding one of our copies: that copy is
        # the source now. Leaving it out would make Metacontroller delete it, so it is kept
        # as it is (it stays owned by the mirror; see docs/hooks.md).
        fan.children.extend(fanout.keep_observed(mirror, {source_key: own}))
    reason, message = fanout.summary(fan)
    outcome = Outcome(
        "Active",
        reason,
        message,
        source={
            "type": "secret",
            "namespace": source_ns,
            "name": name,
            "resourceVersion": source.metadata.resourceVersion,
        },
        fanout=fan,
    )
    return _respond(request, outcome, fan.children, now, spec.pollPeriodSeconds)


def _invalid(request: SyncRequest, error: api.SpecError, now: str) -> Response:
    outcome = Outcome("Error", "InvalidSpec", str(error))
    children = fanout.keep_observed(request.parent.metadata, request.children.secrets)
    return _respond(request, outcome, children, now, api.DEFAULT_POLL_PERIOD_SECONDS)


def _delete_policy(raw_spec: bytes) -> str:
    """deletePolicy from a spec that failed validation, read leniently (default delete)."""
    try:
        policy = msgspec.json.decode(raw_spec).get("deletePolicy")
    except (msgspec.DecodeError, AttributeError):
        return "delete"
    return "retain" if policy == "retain" else "delete"


def _finalize(request: SyncRequest, policy: str, now: str, released: bool = True) -> Response:
    mirror: ObjectMeta = request.parent.metadata
    observed = request.children.secrets
    previous = request.parent.status or {}
    phase: status.Phase = previous.get("mirrorStatus", "Pending")
    if phase not in ("Pending", "Active", "Error"):
        phase = "Pending"
    if policy == "retain":
        # The GC deletes every copy that still names the mirror as owner once the mirror is
        # gone, whatever finalizer kubectl's propagation policy leaves. So keep the copies and
        # hold the deletion until the sidecar has released them (removed the owner reference):
        # a released copy is no longer observed as a child.
        children = fanout.keep_observed(mirror, observed)
        message = f"deletePolicy retain: releasing {len(observed)} copies"
        if observed:
            message += " (waiting for the sidecar)"
    else:
        children = []
        message = f"deletePolicy delete: removing {len(observed)} copies"
    if not released:
        message += "; waiting for the sidecar to revoke the Vault lease"
    finalized = not observed and released
    outcome = Outcome(phase, "Deleting", message)
    return {
        "status": status.build(outcome, previous, now),
        "children": children,
        "finalized": finalized,
    }


def sync(
    request: SyncRequest, *, now: str, controller_namespace: str, finalizing: bool = False
) -> Response:
    raw_spec = bytes(request.parent.spec)
    finalizing = finalizing or request.finalizing
    try:
        spec = api.decode_spec(raw_spec)
        api.check_spec(spec)
        targets = fanout.Targets.of(spec.destination)
    except api.SpecError as error:
        if finalizing:
            return _finalize(request, _delete_policy(raw_spec), now)
        return _invalid(request, error, now)
    pub = vault.published(request, controller_namespace) if api.involves_vault(spec) else None
    if finalizing:
        released = pub is None or vault.lease_released(spec, pub)
        return _finalize(request, spec.deletePolicy, now, released)
    if pub is None:
        return _secret_to_namespaces(request, spec, targets, now)
    if spec.destination.type == "namespaces":
        outcome, children = vault.to_namespaces(request, spec, targets, pub)
    else:
        outcome, children = vault.to_vault(request, spec, pub)
    return _respond(request, outcome, children, now, spec.pollPeriodSeconds)
