"""The state Secrets in the controller namespace: read, write only on change, delete.

The contract is `mirrors.state` (read its docstring). The store keeps what it last read or
wrote, so a poll that changes nothing costs no API call at all; the leader is the only
writer, and `invalidate()` on gaining leadership drops everything learnt before.
"""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec

from mirrors import names, state
from mirrors.api import API_VERSION, KIND
from mirrors.state import MirrorState

log = logging.getLogger("mirrors.sidecar.state")


@dataclass(frozen=True, slots=True)
class Stored:
    """A state Secret as read. `state` is None when the annotation is missing or damaged."""

    state: MirrorState | None
    data: dict[str, bytes]
    body: dict[str, Any]  # what is on the server (metadata trimmed to what we manage)


class SecretsAPI(Protocol):
    """The part of `sidecar.kube.Kube` the store uses (plain dicts; errors carry `.status`)."""

    def read_secret(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    def create_secret(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]: ...

    def replace_secret(self, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]: ...

    def delete_secret(self, namespace: str, name: str) -> None: ...


def desired_body(
    mirror_name: str,
    mirror_uid: str,
    namespace: str,
    mirror_state: MirrorState,
    data: Mapping[str, bytes],
) -> dict[str, Any]:
    labels = {names.MANAGED_BY_LABEL: names.MANAGED_BY}
    if (value := names.label_value(mirror_name)) is not None:
        labels[state.STATE_OF_LABEL] = value
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": names.state_secret_name(mirror_name),
            "namespace": namespace,
            "labels": labels,
            "annotations": {state.STATE_ANNOTATION: state.encode(mirror_state)},
            # No `controller: true` and no controller-uid label: see mirrors.state.
            "ownerReferences": [
                {"apiVersion": API_VERSION, "kind": KIND, "name": mirror_name, "uid": mirror_uid}
            ],
        },
        "data": {k: base64.b64encode(v).decode() for k, v in sorted(data.items())},
    }


def _comparable(body: Mapping[str, Any]) -> tuple[object, ...]:
    meta = body.get("metadata") or {}
    owners = [
        {k: o.get(k) for k in ("apiVersion", "kind", "name", "uid")}
        for o in meta.get("ownerReferences") or ()
    ]
    return (
        body.get("type") or "Opaque",
        dict(meta.get("labels") or {}),
        dict(meta.get("annotations") or {}).get(state.STATE_ANNOTATION),
        owners,
        dict(body.get("data") or {}),
    )


def needs_write(existing: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> bool:
    """Whether the Secret on the server differs from `desired` in anything we manage."""
    if existing is None:
        return True
    have, want = _comparable(existing), _comparable(desired)
    labels_ok = all(have[1].get(k) == v for k, v in want[1].items())  # type: ignore[attr-defined]
    return not (labels_ok and have[0] == want[0] and have[2:] == want[2:])


def parse(body: Mapping[str, Any]) -> Stored:
    meta = body.get("metadata") or {}
    raw = (meta.get("annotations") or {}).get(state.STATE_ANNOTATION)
    decoded: MirrorState | None = None
    if raw:
        try:
            decoded = state.decode(raw)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            log.warning(
                "damaged state annotation; starting over",
                extra={"secret": meta.get("name"), "error": str(exc)},
            )
    data = {k: base64.b64decode(v) for k, v in (body.get("data") or {}).items()}
    return Stored(state=decoded, data=data, body=dict(body))


class StateStore:
    def __init__(self, api: SecretsAPI, namespace: str) -> None:
        self.api = api
        self.namespace = namespace
        self._cache: dict[str, Stored | None] = {}  # by mirror name; None: known absent
        self._complete = False  # primed from a LIST: a name not in the cache has no Secret
        self._lock = threading.Lock()

    def invalidate(self) -> None:
        with self._lock:
            self._cache.clear()
            self._complete = False

    def prime(self, bodies: list[dict[str, Any]]) -> dict[str, Stored]:
        """Fill the cache from a LIST of the namespace's managed Secrets (one call for all).

        Returns the state Secrets found by mirror name. Only names that map back to a mirror
        (`mirrors.kts.studio/state-of`) are primed; a mirror whose state Secret name is hashed
        (very long names) is still read on its own.
        """
        found: dict[str, Stored] = {}
        for body in bodies:
            meta = body.get("metadata") or {}
            mirror_name = (meta.get("labels") or {}).get(state.STATE_OF_LABEL)
            if mirror_name and names.state_secret_name(mirror_name) == meta.get("name"):
                found[mirror_name] = parse(body)
        with self._lock:
            self._cache = dict(found)
            self._complete = True
        return found

    def get(self, mirror_name: str) -> Stored | None:
        with self._lock:
            if mirror_name in self._cache:
                return self._cache[mirror_name]
            if self._complete and names.label_value(mirror_name) is not None:
                return None
        stored = self._read(mirror_name)
        with self._lock:
            self._cache[mirror_name] = stored
        return stored

    def _read(self, mirror_name: str) -> Stored | None:
        obj = self.api.read_secret(self.namespace, names.state_secret_name(mirror_name))
        return None if obj is None else parse(obj)

    def put(
        self,
        mirror_name: str,
        mirror_uid: str,
        mirror_state: MirrorState,
        data: Mapping[str, bytes],
    ) -> bool:
        """Store the state; True when the server was written (False: nothing changed)."""
        desired = desired_body(mirror_name, mirror_uid, self.namespace, mirror_state, data)
        current = self.get(mirror_name)
        if not needs_write(current.body if current else None, desired):
            return False
        name = desired["metadata"]["name"]
        try:
            if current is None:
                written = self.api.create_secret(self.namespace, desired)
            else:
                body = dict(desired)
                version = (current.body.get("metadata") or {}).get("resourceVersion")
                # Keep labels and annotations others added; ours win.
                meta = dict(desired["metadata"])
                old_meta = current.body.get("metadata") or {}
                meta["labels"] = {**(old_meta.get("labels") or {}), **meta["labels"]}
                meta["annotations"] = {
                    **(old_meta.get("annotations") or {}),
                    **meta["annotations"],
                }
                if version:
                    meta["resourceVersion"] = version
                body["metadata"] = meta
                written = self.api.replace_secret(self.namespace, name, body)
        except Exception as exc:
            # 404 (deleted behind us), 409 (changed behind us): re-read next time.
            with self._lock:
                self._cache.pop(mirror_name, None)
            if getattr(exc, "status", None) == 404 and current is not None:
                written = self.api.create_secret(self.namespace, desired)
            else:
                raise
        stored = parse(written)
        with self._lock:
            self._cache[mirror_name] = stored
        return True

    def delete(self, mirror_name: str, *, owner_uid: str = "") -> bool:
        """Delete a mirror's state Secret; with `owner_uid`, only one owned by it or by nobody."""
        current = self.get(mirror_name)
        with self._lock:
            self._cache.pop(mirror_name, None)
        if current is None:
            return False
        owners = (current.body.get("metadata") or {}).get("ownerReferences") or ()
        if owner_uid and owners and all(o.get("uid") != owner_uid for o in owners):
            return False
        self.api.delete_secret(self.namespace, names.state_secret_name(mirror_name))
        return True
