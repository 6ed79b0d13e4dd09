"""Timestamps in the states: RFC 3339, UTC, milliseconds (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sidecar.vault import format_time

pytestmark = pytest.mark.vault

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_times_are_utc_rfc3339_with_milliseconds() -> None:
    assert format_time(T0 + timedelta(microseconds=123456)) == "2026-01-02T03:04:05.123Z"
    assert format_time(datetime(2026, 1, 2, 3, 4, 5)) == "2026-01-02T03:04:05.000Z"
