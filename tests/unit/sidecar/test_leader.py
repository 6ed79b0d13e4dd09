"""Leader election over a Lease, with fake clocks."""

from __future__ import annotations

from datetime import UTC, datetime

from sidecar.leader import LeaderElector
from tests.unit.sidecar.fakes import ApiError, FakeKube


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def elector(kube: FakeKube, identity: str, clock: Clock, log: list[str]) -> LeaderElector:
    return LeaderElector(
        kube,
        "mirrors",
        "mirrors-sidecar",
        identity,
        lease_duration=15,
        renew_deadline=10,
        on_started=lambda: log.append(f"{identity} started"),
        on_stopped=lambda: log.append(f"{identity} stopped"),
        monotonic=clock,
        wall=lambda: datetime(2026, 12, 3, 12, 0, tzinfo=UTC),
    )


def test_one_leader_then_takeover_after_the_holder_goes_silent() -> None:
    kube, clock, log = FakeKube(), Clock(), []
    a, b = elector(kube, "a", clock, log), elector(kube, "b", clock, log)
    assert a.step()
    assert not b.step()
    lease = kube.objects[("Lease", "mirrors", "mirrors-sidecar")]
    assert lease["spec"]["holderIdentity"] == "a"
    assert lease["spec"]["renewTime"] == "2026-12-03T12:00:00.000000Z"
    for _ in range(10):  # a renews every 2 s: b never takes over
        clock.t += 2
        assert a.step()
        assert not b.step()
    clock.t += 14  # a is silent; not yet a full lease duration as b sees it
    assert not b.step()
    clock.t += 2
    assert b.step()
    assert kube.objects[("Lease", "mirrors", "mirrors-sidecar")]["spec"]["leaseTransitions"] == 1
    assert not a.step()  # a notices and steps down
    assert log == ["a started", "b started", "a stopped"]


def test_leader_steps_down_when_it_cannot_renew() -> None:
    kube, clock, log = FakeKube(), Clock(), []
    a = elector(kube, "a", clock, log)
    assert a.step()
    for _ in range(4):
        clock.t += 2
        kube.fail_next["read_lease"] = ApiError(500)
        assert a.step()  # still within the renew deadline
    clock.t += 3
    kube.fail_next["read_lease"] = ApiError(500)
    assert not a.step()
    assert log == ["a started", "a stopped"]


def test_release_hands_over_at_once() -> None:
    kube, clock, log = FakeKube(), Clock(), []
    a, b = elector(kube, "a", clock, log), elector(kube, "b", clock, log)
    a.step()
    b.step()
    a.release()
    assert not a.is_leader()
    assert b.step()  # no need to wait out the lease
