"""Timestamps in the states the core returns: RFC 3339, UTC, milliseconds."""

from __future__ import annotations

from datetime import UTC, datetime


def aware(moment: datetime) -> datetime:
    """`moment` with a time zone; a naive one is taken as UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def format_time(moment: datetime) -> str:
    """RFC 3339, UTC, milliseconds: `2025-01-02T03:04:05.678Z`."""
    return aware(moment).astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    return aware(datetime.fromisoformat(text))
