"""Scenario 3 (SCENARIOS.md §3): namespace -> Vault, examples/myvaultsecret-mirror-reverse.yaml
with only `addr` pointed at the local OpenBao.

`default/mysecret` is pushed to `secret/myvaultsecret` byte for byte (values such as `test`
and `admin123`, which the original base64-decoded), a source change reaches Vault within a
poll period, the status says Active with the destination, Events tell the story.
"""

from __future__ import annotations

import base64
import json

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

MIRROR = "myvaultsecret-mirror-reverse"
KV = "myvaultsecret"
POLL = 5
WITHIN_A_POLL = POLL * 1.1 + 6.0


def test_namespace_to_vault(e2e: E2E, ve: VaultE2E) -> None:
    bao = ve.world.bao
    ve.world.kv_delete(bao, KV)
    apply_mirror(e2e, example_with("myvaultsecret-mirror-reverse.yaml", addr=bao.addr), poll=POLL)

    # No source yet: Pending with the original's message, and a NoSecret Warning.
    status = wait_status(e2e, MIRROR, "Pending")
    assert status["message"] == "secret default/mysecret not found, waiting to appear"
    eventually(lambda: "NoSecret" in reasons(e2e.cluster, MIRROR), 20, "NoSecret event")

    unique = random_text("admin123")
    ve.remember(unique)
    values = {
        "username": "admin123",
        "password": "test",  # valid base64: the original decoded it into garbage
        "looks-base64": "dGVzdA==",
        "unique": unique,
        "multi-line": "line one\nline two\n",
        "spaces": "  padded  ",
        "unicode": "pässwörd ✓",
    }
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "mysecret", "namespace": "default"},
        "type": "Opaque",
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in values.items()},
    }
    e2e.kubectl("apply", "-f", "-", stdin=json.dumps(secret))
    e2e.track_secret("default", "mysecret")

    eventually(lambda: ve.world.kv_get(bao, KV) == values, 30, "mysecret in Vault, byte-exact")
    status = wait_status(e2e, MIRROR, "Active")
    location = f"{bao.addr}/secret/data/{KV}"
    assert status["message"] == f"written to {location}"
    assert status["destination"]["type"] == "vault"
    assert status["destination"]["location"] == location
    assert status["destination"]["secretVersion"] == 1
    assert status["destination"]["writtenAt"]
    eventually(lambda: "VaultWritten" in reasons(e2e.cluster, MIRROR), 10, "VaultWritten event")

    # A source change reaches Vault within a poll period; the status follows.
    changed = {**values, "password": "test-2", "unique": unique + "-2"}
    patch = {"data": {k: base64.b64encode(changed[k].encode()).decode() for k in changed}}
    e2e.kubectl("patch", "secret", "mysecret", "-n", "default", "-p", json.dumps(patch))
    eventually(lambda: ve.world.kv_get(bao, KV) == changed, WITHIN_A_POLL, "change in Vault")
    status = eventually(
        lambda: (
            e2e.status(MIRROR).get("destination", {}).get("secretVersion") == 2
            and e2e.status(MIRROR)
        ),
        15,
        "status secretVersion 2",
    )
    assert status["mirrorStatus"] == "Active"

    # And at once, not at the next poll: Metacontroller sees the source change, the hooks say
    # the Vault copy is behind, the sidecar sees that on its watch and pushes.
    slow = json.dumps({"spec": {"pollPeriodSeconds": 600}})
    e2e.kubectl("patch", "secretmirror", MIRROR, "--type=merge", "-p", slow)
    eventually(
        lambda: (
            e2e.status(MIRROR).get("observedGeneration")
            == e2e.mirror(MIRROR)["metadata"]["generation"]
            and e2e.status(MIRROR).get("mirrorStatus") == "Active"
        ),
        15,
        "the slow poll period seen",
    )
    third = {**changed, "password": "test-3"}
    patch = {"data": {k: base64.b64encode(third[k].encode()).decode() for k in third}}
    e2e.kubectl("patch", "secret", "mysecret", "-n", "default", "-p", json.dumps(patch))
    eventually(lambda: ve.world.kv_get(bao, KV) == third, 10, "change in Vault, promptly")
    wait_status(e2e, MIRROR, "Active")

    # Nothing is written in the cluster by a Vault destination.
    mirror_uid = e2e.mirror(MIRROR)["metadata"]["uid"]
    owned = e2e.cluster.json("get", "secrets", "-A", "-l", f"controller-uid={mirror_uid}")
    assert owned["items"] == []

    text = describe(e2e.cluster, MIRROR)
    assert "VaultWritten" in text
    assert "NoSecret" in text
    ve.assert_no_values_leaked(
        json.dumps(e2e.status(MIRROR)), json.dumps(events(e2e.cluster, MIRROR)), text
    )
    for text in (json.dumps(e2e.status(MIRROR)), json.dumps(events(e2e.cluster, MIRROR))):
        assert "admin123" not in text
        assert '"test"' not in text
