"""Leader election with a `coordination.k8s.io/v1` Lease, as client-go's leaderelection does it.

Every `retry_period` each replica reads the Lease. The holder renews it (`renewTime`);
another replica takes it over when the record has not changed for `lease_duration` *as seen
by its own monotonic clock* (no trust in other nodes' wall clocks). A leader that cannot
renew for `renew_deadline` steps down on its own, before anyone may take over. Writes use
the Lease's resourceVersion, so two replicas can never both win the same round.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

log = logging.getLogger("mirrors.sidecar.leader")


class LeaseAPI(Protocol):
    def read_lease(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    def create_lease(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]: ...

    def replace_lease(self, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]: ...


def micro_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    def __init__(
        self,
        api: LeaseAPI,
        namespace: str,
        name: str,
        identity: str,
        *,
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        on_started: Callable[[], None] = lambda: None,
        on_stopped: Callable[[], None] = lambda: None,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        assert renew_deadline < lease_duration, "a leader must give up before others take over"
        self.api = api
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.on_started = on_started
        self.on_stopped = on_stopped
        self.monotonic = monotonic
        self.wall = wall
        self.leading = threading.Event()
        self._observed: tuple[object, ...] | None = None
        self._observed_at = 0.0
        self._renewed_at = 0.0

    def is_leader(self) -> bool:
        return self.leading.is_set()

    def _spec(self, acquire: str, transitions: int) -> dict[str, Any]:
        now = micro_time(self.wall())
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": round(self.lease_duration),
            "acquireTime": acquire or now,
            "renewTime": now,
            "leaseTransitions": transitions,
        }

    def _set(self, leading: bool) -> None:
        if leading and not self.leading.is_set():
            self.leading.set()
            log.info("became leader", extra={"lease": self.name, "identity": self.identity})
            self.on_started()
        elif not leading and self.leading.is_set():
            self.leading.clear()
            log.warning("stepped down", extra={"lease": self.name, "identity": self.identity})
            self.on_stopped()

    def step(self) -> bool:
        """One round: acquire or renew. Returns whether this replica leads afterwards."""
        now = self.monotonic()
        try:
            self._round(now)
        except Exception as exc:
            log.warning("lease round failed", extra={"lease": self.name, "error": str(exc)})
            if self.is_leader() and now - self._renewed_at > self.renew_deadline:
                self._set(False)
        return self.is_leader()

    def _round(self, now: float) -> None:
        lease = self.api.read_lease(self.namespace, self.name)
        if lease is None:
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": self._spec("", 0),
            }
            self.api.create_lease(self.namespace, body)
            self._renewed_at = now
            self._set(True)
            return
        spec = lease.get("spec") or {}
        meta = lease.get("metadata") or {}
        holder = spec.get("holderIdentity") or ""
        # Any write moves the resourceVersion: a renewal is seen even if clocks stand still.
        record = (holder, spec.get("renewTime"), meta.get("resourceVersion"))
        if record != self._observed:
            self._observed, self._observed_at = record, now
        duration = float(spec.get("leaseDurationSeconds") or self.lease_duration)
        transitions = int(spec.get("leaseTransitions") or 0)
        if holder == self.identity:
            new_spec = self._spec(str(spec.get("acquireTime") or ""), transitions)
        elif not holder or now - self._observed_at >= duration:
            new_spec = self._spec("", transitions + 1)
            log.info("taking over the lease", extra={"lease": self.name, "from": holder})
        else:
            self._set(False)
            return
        body = {**lease, "spec": new_spec, "metadata": meta}
        self.api.replace_lease(self.namespace, self.name, body)  # 409 if someone was quicker
        self._renewed_at = now
        self._set(True)

    def release(self) -> None:
        """On shutdown: hand the lease back so another replica takes over at once."""
        if not self.is_leader():
            return
        try:
            lease = self.api.read_lease(self.namespace, self.name)
            if (
                lease is not None
                and (lease.get("spec") or {}).get("holderIdentity") == self.identity
            ):
                spec = {**lease["spec"], "holderIdentity": None, "leaseDurationSeconds": 1}
                self.api.replace_lease(self.namespace, self.name, {**lease, "spec": spec})
        except Exception as exc:
            log.warning("could not release the lease", extra={"error": str(exc)})
        self._set(False)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.step()
            stop.wait(self.retry_period)
        self.release()
