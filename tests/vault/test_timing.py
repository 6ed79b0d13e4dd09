"""Pure parts of the core: when the next renewal/read is due, value encoding, timestamps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mirrors.state import SourceState
from sidecar.vault import Connection, Credentials, VaultError, format_time, next_action_at
from sidecar.vault.core import decode_values, encode_values

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


def test_times_are_utc_rfc3339_with_milliseconds() -> None:
    assert format_time(T0 + timedelta(microseconds=123456)) == "2026-01-02T03:04:05.123Z"
    assert format_time(datetime(2026, 1, 2, 3, 4, 5)) == "2026-01-02T03:04:05.000Z"


def test_encoding_is_text_both_ways() -> None:
    assert encode_values({"a": "dGVzdA==", "n": 1, "f": False, "o": {"x": [1]}}, "t") == {
        "a": b"dGVzdA==",
        "n": b"1",
        "f": b"false",
        "o": b'{"x": [1]}',
    }
    assert decode_values({"a": "é".encode()}, "t") == {"a": "é"}
    with pytest.raises(VaultError) as caught:
        decode_values({"ok": b"x", "bad": b"\xff"}, "writing kv/x")
    assert caught.value.reason == "InvalidData"
    assert "bad" in caught.value.message
    with pytest.raises(VaultError):
        encode_values({"lone": "\ud800"}, "t")


def test_secrets_stay_out_of_repr() -> None:
    creds = Credentials(method="approle", role_id="rid-123", secret_id="sid-456", jwt="jwt-789")
    conn = Connection(addr="https://vault:8200", ca_pem="-----BEGIN CERTIFICATE-----")
    text = repr(creds) + repr(conn)
    for secret in ("rid-123", "sid-456", "jwt-789", "BEGIN"):
        assert secret not in text
