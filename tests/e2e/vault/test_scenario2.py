"""Scenario 2 (SCENARIOS.md §2): Vault -> namespaces, examples/myvaultsecret-mirror.yaml applied
with only `addr` pointed at the local OpenBao (AppRole from Secret `default/vault-approle`).

Copies appear in `project-c-*` namespaces (one created after the mirror: at once, not after a
poll), a change in Vault reaches them within a poll period, Vault stopped turns the status to
Error with the copies kept (and still served to a new namespace), Vault back recovers.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.e2e.conftest import E2E, eventually
from tests.e2e.vault.conftest import (
    VaultE2E,
    apply_mirror,
    describe,
    events,
    example_with,
    random_text,
    reasons,
    wait_status,
)

pytestmark = pytest.mark.e2e

MIRROR = "myvaultsecret-mirror"
COPY = "myvaultsecret-sync"
KV = "myvaultsecret"
POLL = 5
PROMPTLY = 5.0  # "immediately": no poll period involved
WITHIN_A_POLL = POLL * 1.1 + 6.0  # poll period + jitter, plus the hook and driver round trip


def pem(kind: str, body: str) -> str:
    return f"-----BEGIN {kind}-----\n{body}\n-----END {kind}-----\n"


def tls(ve: VaultE2E) -> dict[str, str]:
    crt, key = random_text("crt"), random_text("key")
    ve.remember(crt, key)
    return {"tls.crt": pem("CERTIFICATE", crt), "tls.key": pem("PRIVATE KEY", key)}


def copies_are(e2e: E2E, namespaces: tuple[str, ...], data: dict[str, str]) -> bool:
    return all(e2e.copy_data(ns, COPY) == data for ns in namespaces)


def test_vault_to_namespaces(e2e: E2E, ve: VaultE2E) -> None:
    bao = ve.world.bao
    first = tls(ve)
    ve.world.kv_put(bao, KV, first)
    e2e.create_namespace("project-c-before")
    e2e.create_namespace("project-d-other")

    apply_mirror(e2e, example_with("myvaultsecret-mirror.yaml", addr=bao.addr), poll=POLL)
    eventually(lambda: e2e.copy_data("project-c-before", COPY) == first, 30, "first copy")
    status = wait_status(e2e, MIRROR, "Active")
    assert status["source"]["type"] == "vault"
    assert status["source"]["location"] == f"{bao.addr}/secret/data/{KV}"
    assert status["source"]["secretVersion"] == 1
    row = [r for r in e2e.kubectl("get", "secretmirrors").splitlines() if r.startswith(MIRROR)]
    assert row[0].split()[1:6] == ["vault", COPY, "namespaces", "delete", str(POLL)], row

    # A namespace created after the mirror gets the copy at once (no poll period involved).
    e2e.create_namespace("project-c-after")
    started = time.monotonic()
    eventually(lambda: e2e.copy_data("project-c-after", COPY) == first, PROMPTLY, "new ns copy")
    print(f"copy in a new namespace after {time.monotonic() - started:.2f}s")  # noqa: T201
    assert e2e.copy_data("project-d-other", COPY) is None
    copy = e2e.cluster.get("secret", COPY, "project-c-after")
    assert copy is not None
    assert copy["type"] == "Opaque"
    assert copy["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "mirrors"
    assert copy["metadata"]["ownerReferences"][0]["name"] == MIRROR

    # A change in Vault reaches every copy within a poll period.
    second = tls(ve)
    ve.world.kv_put(bao, KV, second)
    started = time.monotonic()
    both = ("project-c-before", "project-c-after")
    eventually(lambda: copies_are(e2e, both, second), WITHIN_A_POLL, "Vault change in copies")
    print(f"Vault change in every copy after {time.monotonic() - started:.2f}s")  # noqa: T201
    status = eventually(
        lambda: e2e.status(MIRROR)["source"]["secretVersion"] == 2 and e2e.status(MIRROR),
        15,
        "status secretVersion 2",
    )
    assert status["source"]["dataVersion"] == 2

    # Vault stopped: Error with the reason, the copies kept, a new namespace still served.
    bao.stop()
    status = wait_status(e2e, MIRROR, "Error", timeout=WITHIN_A_POLL + 20)
    assert "127.0.0.1" in status["message"], status  # names the address that failed
    assert "serving the data read at" in status["message"], status
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False"
    assert ready["reason"] == "VaultUnreachable", ready
    assert copies_are(e2e, both, second)
    e2e.create_namespace("project-c-outage")
    eventually(lambda: e2e.copy_data("project-c-outage", COPY) == second, PROMPTLY, "outage copy")
    eventually(lambda: "VaultError" in reasons(e2e.cluster, MIRROR), 15, "VaultError event")

    # Vault back (dev mode: empty; re-seeded with the same AppRole ids): recovers by itself.
    bao.start()
    ve.world.seed()
    third = tls(ve)
    ve.world.kv_put(bao, KV, third)
    every = (*both, "project-c-outage")
    eventually(lambda: copies_are(e2e, every, third), 30 + WITHIN_A_POLL, "recovered copies")
    status = wait_status(e2e, MIRROR, "Active", timeout=15)
    assert status["message"].startswith("synced to 3 namespace(s)"), status

    found = events(e2e.cluster, MIRROR)
    text = describe(e2e.cluster, MIRROR)
    assert "VaultError" in text, text
    assert "Active" in {e["reason"] for e in found}
    ve.assert_no_values_leaked(json.dumps(e2e.status(MIRROR)), json.dumps(found), text)
