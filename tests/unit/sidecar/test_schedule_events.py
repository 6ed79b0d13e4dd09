"""The schedule heap and Event deduplication."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

import pytest

from mirrors import logs
from sidecar.events import Deduper, Recorder
from sidecar.plan import EventSpec
from sidecar.schedule import Schedule
from tests.unit.sidecar.fakes import ApiError, FakeKube

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


class TestSchedule:
    def test_pops_due_in_time_order_and_replaces_times(self) -> None:
        s = Schedule()
        s.put("b", at(20))
        s.put("a", at(10))
        s.put("c", at(30))
        s.put("c", at(5))  # moved earlier
        s.put("b", at(50))  # moved later
        assert s.next_time() == at(5)
        assert s.pop_due(at(25)) == ["c", "a"]
        assert s.pop_due(at(25)) == []
        assert s.due_at("b") == at(50)
        assert len(s) == 1

    def test_only_earlier_keeps_an_earlier_time(self) -> None:
        s = Schedule()
        s.put("a", at(10))
        s.put("a", at(60), only_earlier=True)
        assert s.due_at("a") == at(10)
        s.put("a", at(1), only_earlier=True)
        assert s.due_at("a") == at(1)

    def test_discard(self) -> None:
        s = Schedule()
        s.put("a", at(1))
        s.discard("a")
        assert s.pop_due(at(100)) == []
        assert s.next_time() is None


class TestDeduper:
    def test_repeats_within_the_window_increment(self) -> None:
        d = Deduper(timedelta(minutes=10))
        key = ("uid", "Warning", "VaultError", "down")
        assert d.decide(key, at(0), "e1").op == "create"
        second = d.decide(key, at(60), "e2")
        assert (second.op, second.name, second.count) == ("update", "e1", 2)
        # The window runs from the last occurrence.
        assert d.decide(key, at(60 + 599), "e3").count == 3
        assert d.decide(key, at(60 + 599 + 600), "e4").op == "create"

    def test_other_messages_or_mirrors_are_separate_and_capacity_is_bounded(self) -> None:
        d = Deduper(timedelta(minutes=10), capacity=2)
        d.decide(("u1", "Warning", "R", "a"), at(0), "e1")
        assert d.decide(("u1", "Warning", "R", "b"), at(0), "e2").op == "create"
        assert d.decide(("u2", "Warning", "R", "a"), at(0), "e3").op == "create"
        assert d.decide(("u1", "Warning", "R", "a"), at(1), "e4").op == "create"  # evicted


class TestRecorder:
    event = EventSpec("Warning", "VaultAuthFailed", "AppRole login at http://v: invalid secret id")

    def test_one_event_with_a_count(self) -> None:
        kube = FakeKube()
        rec = Recorder(kube, "sidecar-0", timedelta(minutes=10))
        for i in range(3):
            rec.emit("m", "uid-1", self.event, at(i * 30))
        [ev] = kube.events()
        assert ev["metadata"]["namespace"] == "default"
        assert ev["involvedObject"] == {
            "apiVersion": "mirrors.kts.studio/v1alpha2",
            "kind": "SecretMirror",
            "name": "m",
            "uid": "uid-1",
        }
        assert (ev["reason"], ev["type"], ev["count"]) == ("VaultAuthFailed", "Warning", 3)
        assert ev["lastTimestamp"] == "2026-12-03T12:01:00Z"
        assert ev["firstTimestamp"] == "2026-12-03T12:00:00Z"

    def test_expired_event_is_recreated_and_failures_never_raise(self) -> None:
        kube = FakeKube()
        rec = Recorder(kube, "sidecar-0", timedelta(minutes=10))
        rec.emit("m", "uid-1", self.event, at(0))
        kube.objects.clear()  # the Event TTL removed it
        rec.emit("m", "uid-1", self.event, at(30))
        assert [e["count"] for e in kube.events()] == [1]
        kube.fail_next["patch_event"] = ApiError(500)
        rec.emit("m", "uid-1", self.event, at(60))  # logged, not raised
        rec.emit("m", "uid-1", self.event, at(90))  # starts afresh
        assert len(kube.events()) == 2

    def test_emitting_logs_at_info_level_as_json(self, caplog: pytest.LogCaptureFixture) -> None:
        # Regression: an `extra` key named `message` made every emit raise at INFO level.
        rec = Recorder(FakeKube(), "sidecar-0", timedelta(minutes=10))
        with caplog.at_level(logging.INFO, logger="mirrors.sidecar"):
            rec.emit("m", "uid-1", self.event, at(0))
        [record] = [r for r in caplog.records if r.getMessage() == "event"]
        line = json.loads(logs.JSONFormatter().format(record))
        assert line["reason"] == "VaultAuthFailed"
        assert line["event_message"] == self.event.message
