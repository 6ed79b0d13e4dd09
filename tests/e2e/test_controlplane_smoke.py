"""Smoke test of the real control plane used by the end-to-end suite.

Starts etcd + kube-apiserver + kube-controller-manager (tests/support/controlplane.py,
binaries from hack/build-tools.sh) and checks what the suite relies on: namespaces,
Secrets, CRDs with a status subresource, RBAC, TokenRequest + TokenReview, ownerReference
garbage collection, namespace finalization, and that helm runs. With ``KUBECONFIG_E2E``
set, the same checks run against that cluster instead (nothing is started).
Never skipped: if the binaries cannot be built, this fails with the build error.
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.controlplane import ControlPlane, existing_cluster, find_binaries

pytestmark = pytest.mark.e2e

KUBERNETES_VERSION = "v1.34.4"  # keep in step with hack/versions.env (checked below)
HELM_VERSION = "v4.3.2"

CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.smoke.mirrors.test"},
    "spec": {
        "group": "smoke.mirrors.test",
        "scope": "Cluster",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "properties": {"size": {"type": "integer"}},
                            },
                            "status": {
                                "type": "object",
                                "properties": {"phase": {"type": "string"}},
                            },
                        },
                    }
                },
            }
        ],
    },
}


@dataclass(frozen=True)
class Cluster:
    kubeconfig: Path
    bin_dir: Path
    namespace: str

    def run(self, tool: str, *args: str, stdin: str | None = None) -> str:
        argv = [str(self.bin_dir / tool), "--kubeconfig", str(self.kubeconfig), *args]
        res = subprocess.run(
            argv, input=stdin, capture_output=True, text=True, timeout=120, check=False
        )
        assert res.returncode == 0, f"{tool} {' '.join(args)} failed:\n{res.stderr}{res.stdout}"
        return res.stdout

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        return self.run("kubectl", *args, stdin=stdin)

    def kubectl_json(self, *args: str, stdin: str | None = None) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json", stdin=stdin))

    def can_i(self, verb: str, resource: str, namespace: str, who: str) -> bool:
        # `kubectl auth can-i` prints yes/no and exits 0/1.
        argv = [str(self.bin_dir / "kubectl"), "--kubeconfig", str(self.kubeconfig), "auth",
                "can-i", verb, resource, "-n", namespace, "--as", who]  # fmt: skip
        res = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        assert res.stdout.strip() in ("yes", "no"), res.stderr
        return res.stdout.strip() == "yes"

    def exists(self, *args: str) -> bool:
        out = self.kubectl("get", *args, "--ignore-not-found", "-o", "name")
        return bool(out.strip())


def eventually(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f}s waiting for {what}"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    bin_dir = find_binaries()
    namespace = f"smoke-{uuid.uuid4().hex[:8]}"
    existing = existing_cluster()
    if existing is not None:
        c = Cluster(existing, bin_dir, namespace)
        c.kubectl("create", "namespace", namespace)
        try:
            yield c
        finally:
            c.kubectl("delete", "namespace", namespace, "--ignore-not-found", "--wait=false")
        return
    with ControlPlane(bin_dir) as cp:
        c = Cluster(cp.kubeconfig, bin_dir, namespace)
        c.kubectl("create", "namespace", namespace)
        yield c


def test_versions(cluster: Cluster) -> None:
    versions = (Path(__file__).resolve().parents[2] / "hack" / "versions.env").read_text()
    assert f"KUBERNETES_VERSION={KUBERNETES_VERSION}" in versions
    assert f"HELM_VERSION={HELM_VERSION}" in versions
    out = cluster.kubectl_json("version")
    assert out["clientVersion"]["gitVersion"] == KUBERNETES_VERSION
    if existing_cluster() is None:
        assert out["serverVersion"]["gitVersion"] == KUBERNETES_VERSION


def test_helm_runs(cluster: Cluster) -> None:
    assert HELM_VERSION in cluster.run("helm", "version")
    # helm talks to the API server (no releases yet in our namespace).
    assert json.loads(cluster.run("helm", "list", "-n", cluster.namespace, "-o", "json")) == []


def test_secret_roundtrip(cluster: Cluster) -> None:
    ns = cluster.namespace
    cluster.kubectl(
        "create", "secret", "generic", "s1", "-n", ns, "--from-literal=password=hunter2"
    )
    secret = cluster.kubectl_json("get", "secret", "s1", "-n", ns)
    assert base64.b64decode(secret["data"]["password"]) == b"hunter2"
    assert secret["type"] == "Opaque"


def test_default_serviceaccount_created(cluster: Cluster) -> None:
    eventually(
        lambda: cluster.exists("serviceaccount", "default", "-n", cluster.namespace),
        30,
        "the default ServiceAccount (serviceaccount controller)",
    )


def test_crd_with_status_subresource(cluster: Cluster) -> None:
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(CRD))
    cluster.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s", "crd/widgets.smoke.mirrors.test"
    )
    name = f"w-{cluster.namespace}"
    obj = {
        "apiVersion": "smoke.mirrors.test/v1",
        "kind": "Widget",
        "metadata": {"name": name},
        "spec": {"size": 3},
        "status": {"phase": "ignored-on-create"},
    }
    try:
        created = cluster.kubectl_json("create", "-f", "-", stdin=json.dumps(obj))
        assert created["spec"] == {"size": 3}
        assert "status" not in created  # status subresource: main resource ignores status
        cluster.kubectl(
            "patch", "widget", name, "--subresource=status", "--type=merge",
            "-p", '{"status": {"phase": "Ready"}}',
        )  # fmt: skip
        got = cluster.kubectl_json("get", "widget", name)
        assert got["status"] == {"phase": "Ready"}
        assert "namespace" not in got["metadata"]  # cluster-scoped
    finally:
        cluster.kubectl("delete", "widget", name, "--ignore-not-found")


def test_rbac_is_enforced(cluster: Cluster) -> None:
    ns = cluster.namespace
    cluster.kubectl("create", "serviceaccount", "reader", "-n", ns)
    who = f"system:serviceaccount:{ns}:reader"
    assert not cluster.can_i("get", "secrets", ns, who)
    res = subprocess.run(
        [str(cluster.bin_dir / "kubectl"), "--kubeconfig", str(cluster.kubeconfig),
         "get", "secrets", "-n", ns, "--as", who],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert res.returncode != 0
    assert "forbidden" in res.stderr.lower()
    cluster.kubectl("create", "role", "secret-reader", "-n", ns, "--verb=get,list",
                    "--resource=secrets")  # fmt: skip
    cluster.kubectl("create", "rolebinding", "reader", "-n", ns, "--role=secret-reader",
                    f"--serviceaccount={ns}:reader")  # fmt: skip
    eventually(
        lambda: cluster.can_i("get", "secrets", ns, who), 10, "the RoleBinding to take effect"
    )


def test_aggregated_clusterroles_filled(cluster: Cluster) -> None:
    # admin/edit/view carry only an aggregationRule; the clusterrole-aggregation
    # controller copies the rules in. Without it, binding "edit" grants nothing.
    eventually(
        lambda: bool(cluster.kubectl_json("get", "clusterrole", "view").get("rules")),
        30,
        "ClusterRole view to be aggregated (clusterrole-aggregation controller)",
    )


def test_token_request_and_review(cluster: Cluster) -> None:
    ns = cluster.namespace
    cluster.kubectl("create", "serviceaccount", "vault-auth", "-n", ns)
    token = cluster.kubectl("create", "token", "vault-auth", "-n", ns, "--duration=10m").strip()
    assert token.count(".") == 2  # a JWT
    review = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": token},
    }
    out = cluster.kubectl_json("create", "-f", "-", stdin=json.dumps(review))
    status = out["status"]
    assert status.get("authenticated") is True, status
    assert status["user"]["username"] == f"system:serviceaccount:{ns}:vault-auth"
    assert f"system:serviceaccounts:{ns}" in status["user"]["groups"]

    bogus = {**review, "spec": {"token": token[:-4] + "AAAA"}}
    out = cluster.kubectl_json("create", "-f", "-", stdin=json.dumps(bogus))
    assert not out["status"].get("authenticated")


def test_garbage_collection(cluster: Cluster) -> None:
    ns = cluster.namespace
    owner = cluster.kubectl_json("create", "configmap", "owner", "-n", ns, "--from-literal=a=b")
    dependent = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "dependent",
            "namespace": ns,
            "ownerReferences": [
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "name": "owner",
                    "uid": owner["metadata"]["uid"],
                }
            ],
        },
        "data": {"c": "d"},
    }
    cluster.kubectl("create", "-f", "-", stdin=json.dumps(dependent))
    assert cluster.exists("configmap", "dependent", "-n", ns)
    cluster.kubectl("delete", "configmap", "owner", "-n", ns)
    eventually(
        lambda: not cluster.exists("configmap", "dependent", "-n", ns),
        30,
        "the garbage collector to delete the dependent ConfigMap",
    )


def test_namespace_deletion_finalizes(cluster: Cluster) -> None:
    ns = f"{cluster.namespace}-gone"
    cluster.kubectl("create", "namespace", ns)
    cluster.kubectl("create", "secret", "generic", "x", "-n", ns, "--from-literal=k=v")
    cluster.kubectl("delete", "namespace", ns, "--wait=false")
    eventually(
        lambda: not cluster.exists("namespace", ns),
        60,
        f"namespace {ns} to be finalized (namespace controller)",
    )
