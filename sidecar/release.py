"""Releasing the copies of a `deletePolicy: retain` mirror: its ownerReference is removed
from each copy so that the garbage collector leaves them when the mirror is deleted.

The copies are found by Metacontroller's label (`plan.copies_selector`) and patched with a
JSON patch that tests the resourceVersion (`plan.release_patch`), so a copy changed
meanwhile is read again rather than overwritten. What to announce and when to look again is
the caller's (`sidecar.reconciler`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from sidecar import plan

ATTEMPTS = 3  # patches of one copy per round when it keeps changing under us


class CopiesAPI(Protocol):
    def list_secrets_everywhere(self, label_selector: str) -> list[dict[str, Any]]: ...

    def read_secret(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    def patch_secret(
        self, namespace: str, name: str, operations: list[dict[str, Any]]
    ) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class Outcome:
    owned: int  # copies the mirror still owned when listed
    released: int
    failure: str = ""  # what failed, for an Event; "" when nothing did


def release_copies(api: CopiesAPI, mirror: plan.Mirror) -> Outcome:
    """Remove the mirror's ownerReference from each of its copies. Never raises."""
    try:
        found = api.list_secrets_everywhere(plan.copies_selector(mirror))
    except Exception as exc:
        return Outcome(owned=0, released=0, failure=f"listing them: {describe(exc)}")
    owned = [obj for obj in found if plan.owned_by(obj, mirror.uid)]
    released, failed = 0, []
    for obj in owned:
        meta = obj.get("metadata") or {}
        where = f"{meta.get('namespace', '')}/{meta.get('name', '')}"
        try:
            if _release_one(api, obj, mirror.uid):
                released += 1
        except Exception as exc:
            failed.append(f"{where}: {describe(exc)}")
    failure = ""
    if failed:
        more = f" and {len(failed) - 1} more" if len(failed) > 1 else ""
        failure = f"{len(failed)} of {len(owned)} failed: {failed[0]}{more}"
    return Outcome(owned=len(owned), released=released, failure=failure)


def _release_one(api: CopiesAPI, obj: dict[str, Any], uid: str) -> bool:
    """Patch one copy free of `uid`; re-read and retry when it changed meanwhile.

    False when it is gone or no longer owned (e.g. the GC orphaned it first).
    """
    meta = obj["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    current: dict[str, Any] | None = obj
    for attempt in range(ATTEMPTS):
        if current is None or (operations := plan.release_patch(current, uid)) is None:
            return False
        try:
            api.patch_secret(namespace, name, operations)
            return True
        except Exception as exc:
            status = getattr(exc, "status", None)
            if status == 404:
                return False
            # 422: the `test` on resourceVersion failed; 409: a concurrent write.
            if status not in (409, 422) or attempt == ATTEMPTS - 1:
                raise
        current = api.read_secret(namespace, name)
    return False


def describe(exc: BaseException) -> str:
    """An API failure for an Event: the HTTP status, never the body (it may echo the object)."""
    status = getattr(exc, "status", None)
    return f"HTTP {status}" if isinstance(status, int) else type(exc).__name__
