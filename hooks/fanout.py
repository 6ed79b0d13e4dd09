"""Fan-out: which namespaces get a copy, and the copies themselves. Pure functions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from hooks.protocol import Namespace, ObjectMeta, Secret, SyncRequest
from mirrors import selectors
from mirrors.api import Destination, LabelSelector
from mirrors.names import (
    CONTROLLER_UID_LABEL,
    LAST_APPLIED_ANNOTATION,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    MIRROR_ANNOTATION,
    MIRROR_LABEL,
    SOURCE_ANNOTATION,
    label_value,
)
from mirrors.patterns import PatternSet, compile_patterns

Child = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Payload:
    """What every copy carries: the source's type and data, and where it came from."""

    type: str
    data: msgspec.Raw
    origin: str


@dataclass(frozen=True, slots=True)
class Targets:
    """The destination rules of a spec, compiled once (raises SpecError on a bad rule)."""

    include: PatternSet
    exclude: PatternSet
    selector: LabelSelector | None

    @classmethod
    def of(cls, destination: Destination) -> Targets:
        selector = destination.namespaceSelector
        if selector is not None:
            selectors.check_selector(selector, "spec.destination.namespaceSelector")
        return cls(
            include=compile_patterns(destination.namespaces, "spec.destination.namespaces"),
            exclude=compile_patterns(
                destination.excludeNamespaces, "spec.destination.excludeNamespaces"
            ),
            selector=selector,
        )

    def selects(self, namespace: Namespace) -> bool:
        """Patterns and selector combine by AND; either alone suffices."""
        name = namespace.metadata.name
        if self.include and not self.include.matches(name):
            return False
        return self.selector is None or selectors.matches(self.selector, namespace.metadata.labels)


@dataclass(slots=True)
class Fanout:
    children: list[Child] = field(default_factory=list)
    synced: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Copy:
    """One mirror's copy of one payload, ready to be placed in any namespace."""

    name: str
    payload: Payload
    labels: dict[str, str]
    annotations: dict[str, str]

    @classmethod
    def of(cls, mirror: ObjectMeta, name: str, payload: Payload) -> Copy:
        labels = {MANAGED_BY_LABEL: MANAGED_BY, CONTROLLER_UID_LABEL: mirror.uid}
        if (value := label_value(mirror.name)) is not None:
            labels[MIRROR_LABEL] = value
        annotations = {MIRROR_ANNOTATION: mirror.name, SOURCE_ANNOTATION: payload.origin}
        return cls(name, payload, labels, annotations)

    def into(self, namespace: str) -> Child:
        # labels/annotations are shared between children: they are only ever encoded.
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": self.name,
                "namespace": namespace,
                "labels": self.labels,
                "annotations": self.annotations,
            },
            "type": self.payload.type,
            "data": self.payload.data,
        }


def is_current(observed: Secret, payload: Payload) -> bool:
    # The API server writes map keys sorted, so equal data is equal bytes.
    return observed.type == payload.type and observed.data == payload.data


def keep_observed(mirror: ObjectMeta, observed: Mapping[str, Secret]) -> list[Child]:
    """The observed copies, unchanged: what an error answers so that nothing is deleted."""
    return [
        Copy.of(
            mirror,
            secret.metadata.name,
            Payload(secret.type, secret.data, secret.metadata.annotation(SOURCE_ANNOTATION)),
        ).into(secret.metadata.namespace)
        for _, secret in sorted(observed.items())
    ]


def plan(
    request: SyncRequest,
    *,
    name: str,
    payload: Payload,
    targets: Targets,
    skip_namespace: str = "",
) -> Fanout:
    """One copy per selected namespace, except where a Secret we do not own has the name.

    The request's children are our copies, its related Secrets every Secret of that name (both
    keyed ns/name). A terminating namespace gets nothing new (creating in it fails) and its
    copy goes with it.
    """
    mirror = request.parent.metadata
    observed = request.children.secrets
    existing = request.related.secrets
    namespaces = request.related.namespaces.values()
    out = Fanout()
    copy = Copy.of(mirror, name, payload)
    for namespace in sorted(namespaces, key=lambda n: n.metadata.name):
        ns = namespace.metadata.name
        if ns == skip_namespace or namespace.terminating or not targets.selects(namespace):
            continue
        if targets.exclude.matches(ns):
            out.excluded.append(ns)
            continue
        key = f"{ns}/{name}"
        mine = observed.get(key)
        if mine is None:
            other = existing.get(key)
            if other is not None and not other.metadata.owned_by(mirror.uid):
                out.conflicts.append(ns)
                continue
        if mine is not None and is_current(mine, payload):
            out.synced.append(ns)
            out.children.append(copy.into(ns))
            continue
        out.pending.append(ns)
        if mine is not None and mine.type != payload.type:
            # A Secret's type is immutable, so the update would fail forever: leave the copy
            # out once (Metacontroller deletes it) and the next sync creates it anew.
            continue
        strays = _stray_keys(mine, payload) if mine is not None else {}
        tidy = Copy.of(mirror, name, _with(payload, strays)) if strays else copy
        out.children.append(tidy.into(ns))
    return out


def _decode_data(raw: msgspec.Raw) -> dict[str, str]:
    return msgspec.json.decode(raw, type=dict[str, str])


def _stray_keys(observed: Secret, payload: Payload) -> dict[str, str]:
    """Keys someone added to a copy that Metacontroller's 3-way merge would otherwise keep.

    It removes a key only when the key is in its last-applied record and not desired. So a
    stray key not yet recorded is returned once as it is (recording it, changing nothing);
    the sync that follows leaves it out and Metacontroller deletes it.
    """
    wanted = _decode_data(payload.data)
    strays = {k: v for k, v in _decode_data(observed.data).items() if k not in wanted}
    if not strays:
        return {}
    record = observed.metadata.annotation(LAST_APPLIED_ANNOTATION)
    try:
        recorded = msgspec.json.decode(record or "{}", type=_Applied).data
    except (msgspec.DecodeError, msgspec.ValidationError):
        recorded = {}
    return {k: v for k, v in strays.items() if k not in recorded}


class _Applied(msgspec.Struct):
    data: dict[str, str] = {}


def _with(payload: Payload, extra: Mapping[str, str]) -> Payload:
    data = dict(sorted({**_decode_data(payload.data), **extra}.items()))
    return Payload(payload.type, msgspec.Raw(msgspec.json.encode(data)), payload.origin)


def summary(fan: Fanout) -> tuple[str, str]:
    """The Ready reason and the status message for a fan-out."""
    parts = [f"synced to {len(fan.synced)} namespace(s)"]
    if fan.pending:
        parts.append(f"{len(fan.pending)} pending")
    if fan.conflicts:
        parts.append(
            f"{len(fan.conflicts)} skipped: a Secret of the same name not managed by this mirror"
        )
    return ("Progressing" if fan.pending else "Synced"), ", ".join(parts)
