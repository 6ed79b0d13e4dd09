"""Scenario 4 (SCENARIOS.md §4): Vault dynamic secrets -> namespaces, with lease renewal.

examples/secretmirror-from-vault-mongo-to-ns.yaml with only `addr` changed (the local OpenBao,
whose database engine is mounted at `mongodb/` with PostgreSQL behind it). The copies
`default/mongo-creds` log in to PostgreSQL; the lease is renewed on each poll (same username,
`VaultLeaseRenewed`, the expiry in status moving); new credentials arrive before max_ttl; a
namespace added to the patterns gets the current credentials at once; deleting the mirror
revokes the lease. Then restarts: the sidecar SIGKILLed and started again resumes the *same*
lease from its state Secret (Vault lists one lease, the username is unchanged), and the hooks
killed and restarted lose nothing.
"""

from __future__ import annotations

import json
import re
import time
from datetime import datetime

import pytest

from tests.e2e.conftest import E2E, eventually
from tests.e2e.vault.conftest import (
    DB_DEFAULT_TTL,
    DB_MAX_TTL,
    DB_PATH,
    DB_SLOW_PATH,
    VaultE2E,
    apply_mirror,
    describe,
    event_count,
    events,
    example_with,
    reasons,
    state_of,
    wait_status,
)

pytestmark = pytest.mark.e2e

MIRROR = "secretmirror-from-vault-mongo-to-ns"
COPY = "mongo-creds"
POLL = 5
PROMPTLY = 5.0


def when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def creds(e2e: E2E, ns: str = "default") -> dict[str, str]:
    data = e2e.copy_data(ns, COPY)
    assert data is not None, f"no {ns}/{COPY}"
    assert set(data) >= {"username", "password"}, sorted(data)
    return data


def patch_namespaces(e2e: E2E, patterns: list[str]) -> None:
    patch = {"spec": {"destination": {"namespaces": patterns}}}
    e2e.kubectl("patch", "secretmirror", MIRROR, "--type=merge", "-p", json.dumps(patch))


def test_dynamic_credentials_renewed_rotated_and_revoked(e2e: E2E, ve: VaultE2E) -> None:
    bao = ve.world.bao
    manifest = example_with("secretmirror-from-vault-mongo-to-ns.yaml", addr=bao.addr)
    assert manifest["spec"]["source"]["vault"]["path"] == DB_PATH  # the example's own path
    apply_mirror(e2e, manifest, poll=POLL)

    first = eventually(lambda: creds(e2e), 30, "default/mongo-creds")
    ve.remember(first["password"])
    assert ve.world.can_login(first["username"], first["password"])
    state, _ = state_of(e2e.cluster, MIRROR)
    lease = state["source"]["leaseId"]
    ve.remember(lease)
    assert lease.startswith(DB_PATH + "/")
    status = wait_status(e2e, MIRROR, "Active")
    issued, expires = status["source"]["leaseIssuedAt"], status["source"]["leaseExpiresAt"]
    assert status["source"]["location"] == f"{bao.addr}/{DB_PATH}"

    # Renewed across several polls: same username, the expiry in status moving on.
    def renewed_twice() -> bool:
        assert creds(e2e) == first, "credentials changed before two renewals"
        return event_count(e2e.cluster, MIRROR, "VaultLeaseRenewed") >= 2

    eventually(renewed_twice, DB_MAX_TTL, "two VaultLeaseRenewed events", interval=0.5)
    status = eventually(
        lambda: e2e.status(MIRROR)["source"]["leaseExpiresAt"] != expires and e2e.status(MIRROR),
        10,
        "the lease expiry moving in status",
    )
    assert status["source"]["leaseIssuedAt"] == issued
    assert when(status["source"]["leaseExpiresAt"]) > when(expires)
    assert state_of(e2e.cluster, MIRROR)[0]["source"]["leaseId"] == lease

    # Before max_ttl ends, new credentials (a new lease) reach the copy.
    def rotated_creds() -> dict[str, str]:
        current = creds(e2e)
        return current if current["username"] != first["username"] else {}

    second = eventually(rotated_creds, DB_MAX_TTL + 10, "new credentials", interval=0.25)
    ve.remember(second["password"])
    state, _ = state_of(e2e.cluster, MIRROR)
    ve.remember(state["source"]["leaseId"])
    rotated = (when(state["source"]["leaseIssuedAt"]) - when(issued)).total_seconds()
    # Not early: renewals carry the first credentials until a renewed lease would end before
    # the next renewal point (2/3 of default_ttl before max_ttl); not late: before max_ttl.
    assert DB_MAX_TTL - DB_DEFAULT_TTL <= rotated < DB_MAX_TTL, rotated
    assert state["source"]["dataVersion"] == 2
    assert ve.world.can_login(second["username"], second["password"])
    assert event_count(e2e.cluster, MIRROR, "VaultNewCredentials") == 2

    # A namespace added to the patterns gets the *current* credentials at once; the spec
    # change issues none.
    lease2 = state["source"]["leaseId"]
    patch_namespaces(e2e, ["default", "db-client-.+"])
    e2e.create_namespace("db-client-a")
    eventually(lambda: creds(e2e, "db-client-a") == creds(e2e), PROMPTLY, "copy in db-client-a")
    assert creds(e2e) == second
    assert state_of(e2e.cluster, MIRROR)[0]["source"]["leaseId"] == lease2
    assert ve.world.leases(DB_PATH).count(lease2) == 1

    text = describe(e2e.cluster, MIRROR)
    seen = reasons(e2e.cluster, MIRROR)
    for reason in ("VaultNewCredentials", "VaultLeaseRenewed", "Active"):
        assert reason in seen, seen
        assert re.search(rf"Normal\s+{reason}\s", text), text
    found = events(e2e.cluster, MIRROR)
    ve.assert_no_values_leaked(json.dumps(e2e.status(MIRROR)), json.dumps(found), text)

    # Deleting the mirror (deletePolicy delete) revokes the lease before the mirror is gone.
    uid = e2e.mirror(MIRROR)["metadata"]["uid"]
    e2e.kubectl("delete", "secretmirror", MIRROR, "--timeout=60s")
    assert not ve.world.lease_alive(lease2)
    assert not ve.world.can_login(second["username"], second["password"])
    assert event_count(e2e.cluster, MIRROR, "VaultLeaseRevoked", uid) == 1
    eventually(lambda: e2e.copy_data("default", COPY) is None, 30, "copies deleted")


def test_restarts_keep_the_lease(e2e: E2E, ve: VaultE2E) -> None:
    """Long leases (30s, max 600s), so that only the restarts are under test."""
    bao = ve.world.bao
    manifest = example_with(
        "secretmirror-from-vault-mongo-to-ns.yaml", addr=bao.addr, path=DB_SLOW_PATH
    )
    apply_mirror(e2e, manifest, poll=POLL)
    patch_namespaces(e2e, ["default", "db-restart-.+"])
    first = eventually(lambda: creds(e2e), 30, "default/mongo-creds")
    ve.remember(first["password"])
    lease = state_of(e2e.cluster, MIRROR)[0]["source"]["leaseId"]
    ve.remember(lease)
    assert ve.world.leases(DB_SLOW_PATH) == [lease]
    eventually(lambda: event_count(e2e.cluster, MIRROR, "VaultLeaseRenewed") >= 1, 20, "a renewal")

    # The sidecar SIGKILLed mid-scenario; started again, it renews the lease recorded in the
    # state Secret: no new credentials.
    before = state_of(e2e.cluster, MIRROR)[0]["source"]
    ve.sidecar.kill()
    time.sleep(3)
    assert creds(e2e) == first  # the copies stay while the sidecar is down
    ve.sidecar.start()

    def renewed_after_restart() -> bool:
        source = state_of(e2e.cluster, MIRROR)[0]["source"]
        assert source["leaseId"] == lease, "new credentials after the restart"
        renewed = source.get("renewedAt")
        return bool(renewed) and when(renewed) > when(before["renewedAt"])

    eventually(renewed_after_restart, POLL * 1.1 + 10, "the same lease renewed after restart")
    assert ve.world.leases(DB_SLOW_PATH) == [lease]
    assert creds(e2e) == first
    assert event_count(e2e.cluster, MIRROR, "VaultNewCredentials") == 1
    assert ve.world.can_login(first["username"], first["password"])

    # The hooks killed mid-scenario: a renewal and a new namespace while they are down, then
    # they come back and everything converges.
    expires_before = state_of(e2e.cluster, MIRROR)[0]["source"]["leaseExpiresAt"]
    e2e.hooks.kill()
    e2e.create_namespace("db-restart-a")
    eventually(
        lambda: state_of(e2e.cluster, MIRROR)[0]["source"]["leaseExpiresAt"] != expires_before,
        POLL * 1.1 + 5,
        "a renewal while the hooks are down",
    )
    e2e.hooks.start()
    eventually(lambda: creds(e2e, "db-restart-a") == first, 15, "copy after the hooks restart")
    expires_now = state_of(e2e.cluster, MIRROR)[0]["source"]["leaseExpiresAt"]
    eventually(
        lambda: (
            e2e.status(MIRROR)["source"]["leaseExpiresAt"]
            in (expires_now, state_of(e2e.cluster, MIRROR)[0]["source"]["leaseExpiresAt"])
        ),
        15,
        "status converged on the current lease",
    )
    status = wait_status(e2e, MIRROR, "Active")
    assert status["syncedNamespaces"] == ["db-restart-a", "default"], status
    assert ve.world.leases(DB_SLOW_PATH) == [lease]
    assert creds(e2e) == first

    # Deleting revokes: with a 30 s lease renewed every poll, only revocation explains it.
    uid = e2e.mirror(MIRROR)["metadata"]["uid"]
    e2e.kubectl("delete", "secretmirror", MIRROR, "--timeout=60s")
    assert not ve.world.lease_alive(lease)
    assert ve.world.leases(DB_SLOW_PATH) == []
    assert not ve.world.can_login(first["username"], first["password"])
    assert event_count(e2e.cluster, MIRROR, "VaultLeaseRevoked", uid) == 1
    ve.assert_no_values_leaked(json.dumps(events(e2e.cluster, MIRROR, uid)))
