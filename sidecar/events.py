"""core/v1 Events on SecretMirrors, deduplicated.

The same reason and message on the same mirror within `window` increments the count of the
Event already written instead of adding one (as `kubectl get events` shows: `x4 over 3m`),
so a mirror failing on every retry produces one Event, not one per retry. A SecretMirror is
cluster-scoped, so its Events live in `default`, as client-go records them.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

from mirrors.api import API_VERSION, KIND
from sidecar.plan import EventSpec

log = logging.getLogger("mirrors.sidecar.events")

EVENT_NAMESPACE = "default"
COMPONENT = "mirrors-sidecar"
REPORTING_CONTROLLER = "mirrors.kts.studio/sidecar"
MAX_MESSAGE = 1024
_MAX_NAME_PREFIX = 200

Key = tuple[str, str, str, str]  # (mirror uid, type, reason, message)


@dataclass(slots=True)
class _Seen:
    name: str
    count: int
    last: datetime


@dataclass(frozen=True, slots=True)
class Decision:
    op: Literal["create", "update"]
    name: str
    count: int


class Deduper:
    """Decides create-or-increment; remembers at most `capacity` keys (oldest dropped)."""

    def __init__(self, window: timedelta, capacity: int = 4096) -> None:
        self.window = window
        self.capacity = capacity
        self._seen: OrderedDict[Key, _Seen] = OrderedDict()

    def decide(self, key: Key, now: datetime, new_name: str) -> Decision:
        seen = self._seen.get(key)
        if seen is not None and now - seen.last < self.window:
            seen.count += 1
            seen.last = now
            self._seen.move_to_end(key)
            return Decision("update", seen.name, seen.count)
        self._seen[key] = _Seen(new_name, 1, now)
        self._seen.move_to_end(key)
        while len(self._seen) > self.capacity:
            self._seen.popitem(last=False)
        return Decision("create", new_name, 1)

    def forget(self, key: Key) -> None:
        """After a failed write: the next occurrence creates afresh."""
        self._seen.pop(key, None)


class EventsAPI(Protocol):
    def create_namespaced_event(self, namespace: str, body: dict[str, Any]) -> object: ...

    def patch_namespaced_event(self, name: str, namespace: str, body: dict[str, Any]) -> object: ...


def _time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def event_name(mirror_name: str) -> str:
    return f"{mirror_name[:_MAX_NAME_PREFIX]}.{uuid.uuid4().hex[:16]}"


def event_body(
    *, name: str, mirror_name: str, mirror_uid: str, event: EventSpec, now: datetime, instance: str
) -> dict[str, Any]:
    stamp = _time(now)
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": EVENT_NAMESPACE},
        "involvedObject": {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": mirror_name,
            "uid": mirror_uid,
        },
        "type": event.type,
        "reason": event.reason,
        "message": event.message[:MAX_MESSAGE],
        "count": 1,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "source": {"component": COMPONENT},
        "reportingComponent": REPORTING_CONTROLLER,
        "reportingInstance": instance,
    }


class Recorder:
    """Writes Events; never raises (an Event is not worth failing a reconcile for)."""

    def __init__(self, api: EventsAPI, instance: str, window: timedelta) -> None:
        self.api = api
        self.instance = instance
        self.deduper = Deduper(window)
        self._lock = threading.Lock()

    def emit(self, mirror_name: str, mirror_uid: str, event: EventSpec, now: datetime) -> None:
        key: Key = (mirror_uid, event.type, event.reason, event.message)
        with self._lock:
            decision = self.deduper.decide(key, now, event_name(mirror_name))
        log.info(
            "event",
            extra={
                "mirror": mirror_name,
                "reason": event.reason,
                "type": event.type,
                "event_message": event.message,
                "count": decision.count,
            },
        )
        try:
            if decision.op == "update":
                try:
                    patch = {"count": decision.count, "lastTimestamp": _time(now)}
                    self.api.patch_namespaced_event(decision.name, EVENT_NAMESPACE, patch)
                    return
                except Exception as exc:
                    if getattr(exc, "status", None) != 404:
                        raise
                    # Expired (events have a TTL): start a new one under a new name.
                    with self._lock:
                        self.deduper.forget(key)
                        decision = self.deduper.decide(key, now, event_name(mirror_name))
            body = event_body(
                name=decision.name,
                mirror_name=mirror_name,
                mirror_uid=mirror_uid,
                event=event,
                now=now,
                instance=self.instance,
            )
            self.api.create_namespaced_event(EVENT_NAMESPACE, body)
        except Exception as exc:
            with self._lock:
                self.deduper.forget(key)
            log.warning(
                "could not write event",
                extra={"mirror": mirror_name, "reason": event.reason, "error": str(exc)},
            )
