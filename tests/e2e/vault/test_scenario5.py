"""Scenario 5 (SCENARIOS.md §5): Vault -> Vault, examples/secretmirror-from-vault-to-vault.yaml
with only the two `addr`s pointed at two local OpenBao servers (AppRole Secrets
`vault1-approle` and `vault2-approle`). No Kubernetes Secret is involved.
"""

from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import E2E, eventually
from tests.e2e.vault.conftest import (
    VaultE2E,
    apply_mirror,
    events,
    example_with,
    random_text,
    reasons,
    wait_status,
)

pytestmark = pytest.mark.e2e

MIRROR = "secretmirror-from-vault-to-vault"
KV = "mysecret"
POLL = 5
WITHIN_A_POLL = POLL * 1.1 + 6.0


def test_vault_to_vault(e2e: E2E, ve: VaultE2E) -> None:
    vault1, vault2 = ve.world.bao, ve.world.bao2
    first = {"username": "admin123", "password": random_text("pw")}
    ve.remember(first["password"])
    ve.world.kv_put(vault1, KV, first)
    ve.world.kv_delete(vault2, KV)

    manifest = example_with(
        "secretmirror-from-vault-to-vault.yaml", src_addr=vault1.addr, dest_addr=vault2.addr
    )
    apply_mirror(e2e, manifest, poll=POLL)
    eventually(lambda: ve.world.kv_get(vault2, KV) == first, 30, "copied to vault2")
    status = wait_status(e2e, MIRROR, "Active")
    assert status["destination"]["location"] == f"{vault2.addr}/secret/data/{KV}"
    assert status["message"] == f"written to {vault2.addr}/secret/data/{KV}"
    # Nothing written to vault1 by the destination side, nothing in the cluster.
    assert ve.world.kv_get(vault1, KV) == first
    assert e2e.cluster.get("secret", "mysecret", "default") is None
    uid = e2e.mirror(MIRROR)["metadata"]["uid"]
    made = [
        f"{m['namespace']}/{m['name']}"
        for m in (s["metadata"] for s in e2e.cluster.json("get", "secrets", "-A")["items"])
        if (m.get("labels") or {}).get("controller-uid") == uid
        or (m.get("annotations") or {}).get("mirrors.kts.studio/mirror") == MIRROR
    ]
    assert made == []  # no copy anywhere; only the sidecar's state Secret

    second = {"username": "admin123", "password": random_text("pw2")}
    ve.remember(second["password"])
    ve.world.kv_put(vault1, KV, second)
    eventually(lambda: ve.world.kv_get(vault2, KV) == second, WITHIN_A_POLL, "change copied")
    eventually(
        lambda: e2e.status(MIRROR).get("destination", {}).get("secretVersion") == 2,
        15,
        "status shows the second write",
    )
    assert reasons(e2e.cluster, MIRROR).count("VaultWritten") >= 1
    ve.assert_no_values_leaked(
        json.dumps(e2e.status(MIRROR)), json.dumps(events(e2e.cluster, MIRROR))
    )
