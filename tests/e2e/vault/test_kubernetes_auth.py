"""Vault's Kubernetes auth for real: OpenBao's kubernetes auth method configured against the
local API server (its URL and CA, a token-reviewer ServiceAccount bound to
system:auth-delegator), a role bound to the sidecar's ServiceAccount, and the sidecar logging
in with a token of that ServiceAccount (`kubectl create token --audience openbao`, the file
a projected volume would hold, read through `--sa-token-path`).
"""

from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import E2E, eventually
from tests.e2e.vault.conftest import (
    VaultE2E,
    apply_mirror,
    events,
    mint_sidecar_token,
    random_text,
    reasons,
    setup_kubernetes_auth,
    wait_status,
)

pytestmark = pytest.mark.e2e

MIRROR = "k8s-auth-mirror"
OTHER = "k8s-auth-wrong-role"
KV = "k8sauth/app"
READ_ONLY = """
path "secret/data/k8sauth/*" { capabilities = ["read"] }
path "sys/internal/ui/mounts/*" { capabilities = ["read"] }
"""


def mirror(name: str, addr: str, role: str) -> dict[str, object]:
    return {
        "apiVersion": "mirrors.kts.studio/v1alpha2",
        "kind": "SecretMirror",
        "metadata": {"name": name},
        "spec": {
            "source": {
                "name": "k8s-auth-copy",
                "type": "vault",
                "vault": {
                    "addr": addr,
                    "path": f"/secret/data/{KV}",
                    "auth": {"kubernetes": {"role": role}},
                },
            },
            "destination": {"namespaces": ["k8sauth-.+"]},
            "pollPeriodSeconds": 5,
        },
    }


def test_kubernetes_auth_with_a_service_account_token(e2e: E2E, ve: VaultE2E) -> None:
    bao = ve.world.bao
    setup_kubernetes_auth(e2e.cluster, bao, "mirrors-sidecar", READ_ONLY)
    # A role bound to another ServiceAccount: the same token must be refused there.
    bao.api(
        "POST",
        "auth/kubernetes/role/someone-else",
        {
            "bound_service_account_names": ["someone-else"],
            "bound_service_account_namespaces": ["mirrors"],
            "audience": "openbao",
            "token_policies": ["mirrors-sidecar-policy"],
        },
    )
    token = mint_sidecar_token(e2e.cluster, ve.sa_token_path)
    ve.remember(token)
    value = random_text("api-key")
    ve.remember(value)
    ve.world.kv_put(bao, KV, {"api-key": value})
    e2e.create_namespace("k8sauth-a")

    apply_mirror(e2e, mirror(MIRROR, bao.addr, "mirrors-sidecar"), poll=None)
    eventually(
        lambda: e2e.copy_data("k8sauth-a", "k8s-auth-copy") == {"api-key": value},
        30,
        "copy read with Kubernetes auth",
    )
    wait_status(e2e, MIRROR, "Active")
    assert not [r for r in reasons(e2e.cluster, MIRROR) if r.startswith("VaultAuth")]

    # The binding is enforced by OpenBao's TokenReview-backed login, not assumed.
    apply_mirror(e2e, mirror(OTHER, bao.addr, "someone-else"), poll=None)
    status = wait_status(e2e, OTHER, "Error")
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "VaultAuthFailed", status
    assert "auth/kubernetes" in status["message"] or "kubernetes" in status["message"], status
    eventually(lambda: "VaultAuthFailed" in reasons(e2e.cluster, OTHER), 15, "auth event")

    ve.assert_no_values_leaked(
        json.dumps(e2e.status(MIRROR)),
        json.dumps(e2e.status(OTHER)),
        json.dumps(events(e2e.cluster, MIRROR) + events(e2e.cluster, OTHER)),
    )
