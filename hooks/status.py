"""The SecretMirror status the hooks return. Pure: times come in as arguments.

Metacontroller replaces `.status` with this and writes the parent only when it differs, so the
status must be stable: timestamps move only when something else in the status moved.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from hooks.fanout import Fanout

Phase = Literal["Pending", "Active", "Error"]
Status = dict[str, Any]

NEVER = "1970-01-01T00:00:00Z"  # what the original showed before the first sync
LIST_LIMIT = 500  # per list; counts stay exact. Keeps a 10,000-namespace mirror's status small.
READY = "Ready"
_VOLATILE = ("lastSyncTime", "observedGeneration")


@dataclass(frozen=True, slots=True)
class Outcome:
    phase: Phase
    reason: str
    message: str
    source: Mapping[str, Any] | None = None
    fanout: Fanout | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


def _listing(status: Status, key: str, names: Sequence[str]) -> None:
    if names:
        status[key] = list(names[:LIST_LIMIT])


def _ready(outcome: Outcome) -> dict[str, str]:
    pending = outcome.fanout.pending if outcome.fanout else ()
    ready = outcome.phase == "Active" and not pending
    return {
        "type": READY,
        "status": "True" if ready else "False",
        "reason": outcome.reason,
        "message": outcome.message,
    }


def _comparable(status: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in status.items() if k not in _VOLATILE}
    if isinstance(source := out.get("source"), Mapping):
        # A label edit moves the source's resourceVersion; a data change shows as pending
        # copies anyway, so only that counts as a sync.
        out["source"] = {k: v for k, v in source.items() if k != "resourceVersion"}
    out["conditions"] = [
        {k: v for k, v in c.items() if k != "lastTransitionTime"}
        for c in status.get("conditions") or ()
        if isinstance(c, Mapping)
    ]
    return out


def build(outcome: Outcome, previous: Mapping[str, Any] | None, now: str) -> Status:
    previous = previous or {}
    status: Status = {"mirrorStatus": outcome.phase, "message": outcome.message}
    if outcome.source is not None:
        status["source"] = dict(outcome.source)
    if (fanout := outcome.fanout) is not None:
        status["namespaces"] = {
            "synced": len(fanout.synced),
            "pending": len(fanout.pending),
            "conflicts": len(fanout.conflicts),
            "excluded": len(fanout.excluded),
        }
        _listing(status, "syncedNamespaces", fanout.synced)
        _listing(status, "pendingNamespaces", fanout.pending)
        _listing(status, "conflictNamespaces", fanout.conflicts)
        _listing(status, "excludedNamespaces", fanout.excluded)
    status.update(outcome.details)
    status["conditions"] = [_ready(outcome)]

    unchanged = _comparable(status) == _comparable(previous)
    last_sync = previous.get("lastSyncTime") or NEVER
    status["lastSyncTime"] = now if outcome.phase == "Active" and not unchanged else last_sync
    before = {c.get("type"): c for c in previous.get("conditions") or () if isinstance(c, Mapping)}
    for condition in status["conditions"]:
        old = before.get(condition["type"])
        same = old is not None and old.get("status") == condition["status"]
        condition["lastTransitionTime"] = (
            old.get("lastTransitionTime") or now if same and old is not None else now
        )
    return status
