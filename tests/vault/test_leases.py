"""When the next renewal or read of a source is due (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mirrors.state import SourceState
from sidecar.vault import format_time, next_action_at

pytestmark = pytest.mark.vault

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def at(seconds: float) -> str:
    return format_time(T0 + timedelta(seconds=seconds))


def test_static_source_polls() -> None:
    state = SourceState(path="kv/x", readAt=at(0), contentHash="h", kvVersion=1)
    assert next_action_at(state, poll_period=180) == T0 + timedelta(seconds=180)


def test_renewable_lease_min_of_poll_and_renewal_point() -> None:
    state = SourceState(
        path="db/creds/r", readAt=at(0), contentHash="h", leaseId="db/creds/r/abc",
        leaseDuration=30, renewable=True, leaseIssuedAt=at(0), leaseExpiresAt=at(30),
    )  # fmt: skip
    assert next_action_at(state, poll_period=180) == T0 + timedelta(seconds=20)
    assert next_action_at(state, poll_period=5) == T0 + timedelta(seconds=5)
    assert next_action_at(state, poll_period=180, renew_fraction=0.5) == T0 + timedelta(seconds=15)
    renewed = SourceState(
        path="db/creds/r", readAt=at(0), contentHash="h", leaseId="db/creds/r/abc",
        leaseDuration=30, renewable=True, leaseIssuedAt=at(0), leaseExpiresAt=at(50),
        renewedAt=at(20),
    )  # fmt: skip
    assert next_action_at(renewed, poll_period=180) == T0 + timedelta(seconds=40)
    assert next_action_at(renewed, poll_period=5) == T0 + timedelta(seconds=25)


def test_non_renewable_lease_waits_for_the_renewal_point() -> None:
    state = SourceState(
        path="aws/creds/r", readAt=at(0), contentHash="h", leaseId="aws/creds/r/abc",
        leaseDuration=90, renewable=False, leaseIssuedAt=at(0), leaseExpiresAt=at(90),
    )  # fmt: skip
    assert next_action_at(state, poll_period=5) == T0 + timedelta(seconds=60)
