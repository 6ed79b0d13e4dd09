"""The sidecar's loop: watch SecretMirrors, keep a schedule, act on what is due.

Three threads (plus a small worker pool):

* the **watch** lists SecretMirrors, then watches from the list's resourceVersion (bookmarks
  on; a 410 re-lists). Every replica watches: it makes `/readyz` honest and keeps the Ready
  reasons needed to turn status transitions into Events after a failover;
* the **dispatcher** pops due mirrors from the schedule and hands them to the worker pool,
  one action per mirror at a time (a mirror due again while in flight runs once more after);
* leadership (`sidecar.leader`) gates everything that writes: only the leader acts, releases
  the copies of retained mirrors being deleted, and emits Events.

One mirror's failure never stops the loop: Vault/Secret problems become the state's `error`
(the last good data stays) and an Event; anything unexpected is logged, recorded the same way
and retried.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import msgspec

from mirrors import names
from mirrors.state import ErrorState, MirrorState
from sidecar import metrics, plan
from sidecar.act import Executor, Result, rfc3339
from sidecar.events import Recorder
from sidecar.release import CopiesAPI, release_copies
from sidecar.schedule import Schedule
from sidecar.state_store import StateStore, Stored

log = logging.getLogger("mirrors.sidecar")

ORPHANED_ONLY = "-"  # as `owner_uid`: delete a state Secret only when nothing owns it


class MirrorAPI(CopiesAPI, Protocol):
    def list_mirrors(self) -> tuple[list[dict[str, Any]], str]: ...

    def watch_mirrors(self, resource_version: str, timeout_seconds: int) -> Any: ...

    def list_secrets(self, namespace: str, label_selector: str) -> list[dict[str, Any]]: ...


@dataclass(frozen=True, slots=True)
class Settings:
    controller_namespace: str
    workers: int = 4
    watch_timeout_seconds: int = 300
    startup_spread_seconds: float = 5.0  # first actions after start spread over this
    relist_backoff_seconds: float = 2.0


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Reconciler:
    def __init__(
        self,
        api: MirrorAPI,
        executor: Executor,
        store: StateStore,
        recorder: Recorder,
        settings: Settings,
        *,
        leading: Callable[[], bool] = lambda: True,
        clock: Callable[[], datetime] = _utc_now,
        rng: random.Random | None = None,
    ) -> None:
        self.api = api
        self.executor = executor
        self.store = store
        self.recorder = recorder
        self.settings = settings
        self.leading = leading
        self.clock = clock
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self.schedule = Schedule()
        self.synced = threading.Event()
        self.mirrors: dict[str, plan.Mirror] = {}
        self._reasons: dict[str, str] = {}  # last Ready reason seen, per mirror
        self._lock = threading.Lock()
        self._inflight: set[str] = set()
        self._again: set[str] = set()
        self._resume = threading.Event()  # set on gaining leadership
        self._pool = ThreadPoolExecutor(max(1, settings.workers), thread_name_prefix="mirror")

    # -- leadership ------------------------------------------------------------------------------

    def on_started_leading(self) -> None:
        self._resume.set()
        self.schedule.wake()

    def on_stopped_leading(self) -> None:
        self._resume.clear()
        for name in list(self.mirrors):
            self.schedule.discard(name)

    def resume(self) -> None:
        """On gaining leadership (after the watch synced): forget what the last term knew,
        load every state Secret with one LIST, clean up orphaned ones, and schedule."""
        self.store.invalidate()
        selector = f"{names.MANAGED_BY_LABEL}={names.MANAGED_BY}"
        found = self.store.prime(
            self.api.list_secrets(self.settings.controller_namespace, selector)
        )
        with self._lock:
            mirrors = dict(self.mirrors)
        for name in sorted(set(found) - set(mirrors)):
            # The mirror is gone; its state Secret was orphaned by the GC (--cascade=orphan).
            if self.store.delete(name, owner_uid=ORPHANED_ONLY):
                log.info("deleted the state of a deleted mirror", extra={"mirror": name})
        now = self.clock()
        for mirror in mirrors.values():
            self._consider(mirror, now, starting=True)

    # -- watch -----------------------------------------------------------------------------------

    def observe(self, obj: dict[str, Any]) -> None:
        """An added or modified SecretMirror (from the list or the watch)."""
        mirror = plan.Mirror.from_object(obj)
        if not mirror.name:
            return
        with self._lock:
            self.mirrors[mirror.name] = mirror
            previous_reason = self._reasons.get(mirror.name)
            if mirror.ready_reason != "Progressing" or previous_reason is None:
                # Progressing (copies written, not yet observed) is a step on the way: a new
                # namespace makes a Synced mirror pass through it, which is no news.
                self._reasons[mirror.name] = mirror.ready_reason
        metrics.mirrors.set(len(self.mirrors))
        if not self.leading():
            return
        if (event := plan.status_event(previous_reason, mirror)) is not None:
            self._emit(mirror, event, self.clock())
        if self.synced.is_set() and not self._resume.is_set():
            # Before the first sync, or while a new term starts, `resume` covers every mirror.
            self._consider(mirror, self.clock())

    def forget(self, obj: dict[str, Any]) -> None:
        """A SecretMirror is gone (deleted, or missing from a re-list)."""
        meta = obj.get("metadata") or {}
        name, uid = str(meta.get("name", "")), str(meta.get("uid", ""))
        with self._lock:
            self.mirrors.pop(name, None)
            self._reasons.pop(name, None)
        self.schedule.discard(name)
        metrics.forget_mirror(name)
        metrics.mirrors.set(len(self.mirrors))
        if self.leading():
            try:
                # The GC deletes an owned state Secret; --cascade=orphan leaves it ownerless.
                self.store.delete(name, owner_uid=uid or ORPHANED_ONLY)
            except Exception as exc:
                log.warning("could not delete state", extra={"mirror": name, "error": str(exc)})

    def relist(self) -> str:
        items, version = self.api.list_mirrors()
        seen = set()
        for obj in items:
            seen.add((obj.get("metadata") or {}).get("name"))
            self.observe(obj)
        with self._lock:
            gone = [m for m in self.mirrors.values() if m.name not in seen]
        for mirror in gone:
            self.forget({"metadata": {"name": mirror.name, "uid": mirror.uid}})
        if not self.synced.is_set():
            self.synced.set()
            log.info("watch synced", extra={"mirrors": len(items)})
        self.schedule.wake()
        return version

    def run_watch(self, stop: threading.Event) -> None:
        version = ""
        while not stop.is_set():
            try:
                if not version:
                    version = self.relist()
                for event in self.api.watch_mirrors(version, self.settings.watch_timeout_seconds):
                    if stop.is_set():
                        break
                    obj = event.get("raw_object") or {}
                    version = (obj.get("metadata") or {}).get("resourceVersion") or version
                    kind = event.get("type")
                    if kind == "DELETED":
                        self.forget(obj)
                    elif kind in ("ADDED", "MODIFIED"):
                        self.observe(obj)
            except Exception as exc:
                if getattr(exc, "status", None) == 410:
                    log.info("watch expired; listing again")
                else:
                    log.warning("watch failed; listing again", extra={"error": str(exc)})
                    stop.wait(self.settings.relist_backoff_seconds)
                version = ""

    # -- scheduling ------------------------------------------------------------------------------

    def _stored(self, mirror: plan.Mirror) -> Stored | None:
        """The mirror's state Secret, if it is this mirror's (owned by its uid).

        A state Secret of a former mirror of the same name (not yet collected by the GC, or
        left ownerless by --cascade=orphan) holds another source's data and lease: the new
        mirror starts afresh instead, and its first write takes the Secret over.
        """
        stored = self.store.get(mirror.name)
        if stored is None or not plan.owned_by(stored.body, mirror.uid):
            return None
        return stored

    def _consider(self, mirror: plan.Mirror, now: datetime, *, starting: bool = False) -> None:
        """Put a mirror in the schedule as its latest version requires."""
        try:
            stored = self._stored(mirror)
        except Exception as exc:
            log.warning("could not read state", extra={"mirror": mirror.name, "error": str(exc)})
            self.schedule.put(mirror.name, now + timedelta(seconds=plan.ERROR_RETRY_SECONDS))
            return
        state = stored.state if stored else None
        if plan.urgent(mirror, state):
            self.schedule.put(mirror.name, now, only_earlier=True)
        elif mirror.involves_vault and not mirror.deleting:
            if starting or self.schedule.due_at(mirror.name) is None:
                with self._lock:
                    busy = mirror.name in self._inflight
                if busy and not starting:
                    return  # the running action schedules the next one
                first = self._first_run(mirror, state, now)
                leased = state is not None and state.source is not None and state.source.leaseId
                if not (leased and first <= now):
                    # Spread the polls of a restart; a lease already due must not wait.
                    first += timedelta(
                        seconds=self.rng.uniform(0, self.settings.startup_spread_seconds)
                    )
                self.schedule.put(mirror.name, first)
        else:
            self.schedule.discard(mirror.name)

    def _first_run(self, mirror: plan.Mirror, state: MirrorState | None, now: datetime) -> datetime:
        vault_next = None
        source = state.source if state is not None else None
        if mirror.spec is not None and source is not None and source.leaseId:
            vault_next = self.executor.vault.next_action_at(
                source, poll_period=float(mirror.spec.pollPeriodSeconds)
            )
        return plan.first_run(state, now=now, vault_next=vault_next)

    def run_dispatcher(self, stop: threading.Event) -> None:
        while not stop.is_set():
            if not self.leading() or not self.synced.is_set():
                self.schedule.wait(0.5)
                continue
            if self._resume.is_set():
                try:
                    self.resume()
                    self._resume.clear()
                except Exception as exc:
                    log.warning("could not resume as leader", extra={"error": str(exc)})
                    stop.wait(self.settings.relist_backoff_seconds)
                    continue
            now = self.clock()
            for name in self.schedule.pop_due(now):
                with self._lock:
                    if name in self._inflight:
                        self._again.add(name)
                        continue
                    self._inflight.add(name)
                self._pool.submit(self._work, name)
            metrics.scheduled.set(len(self.schedule))
            upcoming = self.schedule.next_time()
            wait = 1.0 if upcoming is None else (upcoming - self.clock()).total_seconds()
            self.schedule.wait(min(1.0, max(0.01, wait)))
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _work(self, name: str) -> None:
        try:
            self.act(name)
        except Exception:
            log.exception("acting on a mirror failed", extra={"mirror": name})
            self.schedule.put(
                name, self.clock() + timedelta(seconds=plan.ERROR_RETRY_SECONDS), only_earlier=True
            )
        finally:
            with self._lock:
                self._inflight.discard(name)
                again = name in self._again
                self._again.discard(name)
            if again:
                self.schedule.put(name, self.clock(), only_earlier=True)

    # -- acting ----------------------------------------------------------------------------------

    def act(self, name: str) -> Result | None:
        """Decide and carry out what one mirror needs now; store, emit, schedule. Leader only."""
        with self._lock:
            mirror = self.mirrors.get(name)
        if mirror is None or not self.leading():
            return None
        now = self.clock()
        result = self._act_on_vault(mirror, now)
        if plan.needs_release(mirror):
            self.release(mirror, now)
        return result

    def _act_on_vault(self, mirror: plan.Mirror, now: datetime) -> Result | None:
        name = mirror.name
        stored = self._stored(mirror)
        state = stored.state if stored else None
        data = stored.data if stored else {}
        action = plan.decide(mirror, state, now=now)
        if isinstance(action, plan.Nothing):
            log.debug("nothing to do", extra={"mirror": name, "why": action.why})
            return None
        kind = type(action).__name__.lower()
        metrics.actions.labels(kind).inc()
        try:
            result = self.executor.run(mirror, action, state, data, now=now)
        except Exception as exc:
            log.exception("unexpected failure", extra={"mirror": name})
            error = ErrorState(
                reason="SidecarError",
                message=f"unexpected {type(exc).__name__}; see the sidecar's log",
                at=rfc3339(now),
            )
            base = state or MirrorState(generation=mirror.generation)
            result = Result(
                state=plan.settle(state, msgspec.structs.replace(base, error=error)),
                data=dict(data),
            )
            result.fail(error)
        for done in result.done:
            metrics.vault_operations.labels(done).inc()
        if result.error_reason:
            metrics.errors.labels(result.error_reason).inc()
        for event in result.events:
            self._emit(mirror, event, now)
        self._store(mirror, result)
        self._reschedule(mirror, action, result, now)
        if result.done or not result.ok:
            failure = result.state.error if result.state else None
            log.info(
                "acted",
                extra={
                    "mirror": name,
                    "action": kind,
                    "ok": result.ok,
                    "done": result.done,
                    "error": failure.message if failure else "",
                },
            )
        return result

    def _store(self, mirror: plan.Mirror, result: Result) -> None:
        if result.state is None:
            self.store.delete(mirror.name, owner_uid=mirror.uid)
            metrics.forget_mirror(mirror.name)
            return
        if self.store.put(mirror.name, mirror.uid, result.state, result.data):
            metrics.state_writes.inc()
        source = result.state.source
        expires = plan.parse_time(source.leaseExpiresAt) if source and source.leaseId else None
        metrics.leases.set(mirror.name, None if result.state.revoked else expires)

    def _reschedule(
        self, mirror: plan.Mirror, action: plan.Action, result: Result, now: datetime
    ) -> None:
        if isinstance(action, plan.Sync) and mirror.spec is not None:
            at = plan.next_run(
                mirror.spec,
                now=now,
                ok=result.ok,
                jitter=self.rng.uniform(-1.0, 1.0),
                vault_next=result.vault_next,
            )
            self.schedule.put(mirror.name, at)
        elif isinstance(action, plan.Finalize) and not result.ok:
            self.schedule.put(mirror.name, now + timedelta(seconds=plan.ERROR_RETRY_SECONDS))
        else:
            self.schedule.discard(mirror.name)

    # -- releasing the copies of retained mirrors ----------------------------------------------

    def release(self, mirror: plan.Mirror, now: datetime) -> int:
        """Release the mirror's copies (`sidecar.release`); announce it, schedule a look again.

        Runs while a `deletePolicy: retain` mirror is being deleted (see plan.needs_release),
        again on each watch event and on a short retry while any copy is still owned. Never
        raises: failures are a Warning Event and a retry. Returns how many were released.
        """
        metrics.actions.labels("release").inc()
        outcome = release_copies(self.api, mirror)
        if outcome.released:
            log.info("released copies", extra={"mirror": mirror.name, "copies": outcome.released})
            self._emit(mirror, plan.release_event(outcome.released), now)
        if outcome.failure:
            log.warning(
                "could not release copies", extra={"mirror": mirror.name, "error": outcome.failure}
            )
            metrics.errors.labels("ReleaseFailed").inc()
            self._emit(mirror, plan.release_failed_event(outcome.failure), now)
            wait = plan.after_release(left=1, failed=True)
        else:
            wait = plan.after_release(left=outcome.owned - outcome.released, failed=False)
        self.schedule.put(mirror.name, now + timedelta(seconds=wait), only_earlier=True)
        return outcome.released

    # -- events ----------------------------------------------------------------------------------

    def _emit(self, mirror: plan.Mirror, event: plan.EventSpec, now: datetime) -> None:
        metrics.events.labels(event.reason).inc()
        self.recorder.emit(mirror.name, mirror.uid, event, now)
