"""The sidecar's Kubernetes side against a real API server and a real OpenBao.

A secret -> Vault mirror (AppRole from a Secret, as in the examples): the sidecar, run
in-process with leader election on, writes the source Secret into OpenBao, publishes the
write in the mirror's state Secret, emits `VaultWritten`, follows a source change, and never
writes the SecretMirror itself (no finalizers: `deletePolicy: retain` is carried out by
releasing the copies, see tests/e2e/test_scenario1.py).
"""

from __future__ import annotations

import base64
import json
import urllib.request
from collections.abc import Iterator

import pytest

from mirrors import state
from sidecar.config import parse
from sidecar.runtime import Sidecar, api_client
from tests.e2e.conftest import E2E, eventually
from tests.support.openbao import OpenBao

pytestmark = pytest.mark.e2e

NS = "mirrors-sidecar-e2e"
NAME = "pushed-tls"
POLICY = """
path "secret/data/e2e-sidecar/*" { capabilities = ["create", "update", "read"] }
path "sys/internal/ui/mounts/*" { capabilities = ["read"] }
"""
PATH = "secret/data/e2e-sidecar/pushed"


@pytest.fixture
def bao() -> Iterator[OpenBao]:
    server = OpenBao().start()
    try:
        yield server
    finally:
        server.close()


def _mirror(bao: OpenBao, policy: str) -> str:
    return json.dumps(
        {
            "apiVersion": "mirrors.kts.studio/v1alpha2",
            "kind": "SecretMirror",
            "metadata": {"name": NAME},
            "spec": {
                "source": {"name": NAME},
                "destination": {
                    "type": "vault",
                    "vault": {
                        "addr": bao.addr,
                        "path": PATH,
                        "auth": {"approle": {"secretRef": {"name": "pusher-approle"}}},
                    },
                },
                "deletePolicy": policy,
                "pollPeriodSeconds": 5,
            },
        }
    )


def _vault_data(bao: OpenBao) -> dict[str, str] | None:
    status, answer = bao.request("GET", PATH)
    return answer["data"]["data"] if status == 200 else None


def test_secret_to_vault_through_the_api_server(e2e: E2E, bao: OpenBao) -> None:
    bao.put_policy("pusher", POLICY)
    role_id, secret_id = bao.approle("pusher", ["pusher"])
    e2e.create_namespace(NS)
    e2e.kubectl(
        "create",
        "secret",
        "generic",
        "pusher-approle",
        f"--from-literal=role-id={role_id}",
        f"--from-literal=secret-id={secret_id}",
    )
    e2e.track_secret("default", "pusher-approle")
    e2e.kubectl(
        "create",
        "secret",
        "generic",
        NAME,
        "--from-literal=password=test",
        "--from-literal=user=admin123",
    )
    e2e.track_secret("default", NAME)

    cfg = parse(
        [
            "--controller-namespace",
            NS,
            "--port",
            "0",
            "--identity",
            "e2e-sidecar",
            "--host",
            "127.0.0.1",
        ],
        env={},
    )
    sidecar = Sidecar(cfg, api_client(str(e2e.cluster.kubeconfig)))
    sidecar.start()
    try:
        e2e.kubectl("apply", "-f", "-", stdin=_mirror(bao, "retain"))
        e2e.mirrors.append(NAME)

        # Values are text both ways: nothing base64-decoded on the way.
        eventually(lambda: _vault_data(bao) == {"password": "test", "user": "admin123"}, timeout=30)
        secret = e2e.cluster.get("secret", f"mirror-state-{NAME}", NS)
        assert secret is not None
        meta = secret["metadata"]
        st = state.decode(meta["annotations"][state.STATE_ANNOTATION])
        assert st.destination is not None
        assert st.destination.path == PATH
        assert st.error is None
        assert [o.get("controller") for o in meta["ownerReferences"]] == [None]
        assert "controller-uid" not in meta.get("labels", {})
        assert not secret.get("data")  # a Secret source is not copied into the state

        events = e2e.cluster.json(
            "get", "events", "-n", "default", "--field-selector", f"involvedObject.name={NAME}"
        )
        assert "VaultWritten" in [e["reason"] for e in events["items"]]
        lease = e2e.cluster.get("lease", "mirrors-sidecar", NS)
        assert lease is not None
        assert lease["spec"]["holderIdentity"] == "e2e-sidecar"

        new = base64.b64encode(b"rotated").decode()
        e2e.kubectl("patch", "secret", NAME, "-p", json.dumps({"data": {"password": new}}))
        eventually(lambda: (_vault_data(bao) or {}).get("password") == "rotated", timeout=30)

        # The sidecar (the Python client: manager "OpenAPI-Generator") never wrote the mirror.
        meta = e2e.mirror(NAME)["metadata"]
        managers = {m["manager"] for m in meta.get("managedFields", [])}
        assert not [m for m in managers if m.startswith("OpenAPI-Generator")], managers
        assert "orphan" not in (meta.get("finalizers") or [])

        with urllib.request.urlopen(f"http://127.0.0.1:{sidecar.port}/readyz", timeout=5) as resp:
            assert resp.status == 200
        with urllib.request.urlopen(f"http://127.0.0.1:{sidecar.port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
        assert 'mirrors_sidecar_vault_operations_total{operation="written"}' in text
        assert "mirrors_sidecar_vault_logins_total 1.0" in text  # one login, reused
        assert "test" not in text
        assert "rotated" not in text
    finally:
        sidecar.stop()
