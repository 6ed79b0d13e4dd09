"""The chart against a real kube-apiserver (tests/support/controlplane.py).

* every rendered manifest (default and full values) passes `kubectl apply --dry-run=server`;
* `helm install` for real; the Pod template is admitted by the `restricted` Pod Security
  Standard (and a weakened one is refused, so the check has teeth);
* RBAC proof by impersonation (`kubectl auth can-i --as=system:serviceaccount:...`): each call
  of sidecar/kube.py is allowed, the neighbouring calls are refused;
* the sidecar itself, run with a token of the chart's ServiceAccount (`kubectl create token`)
  and Vault Kubernetes auth with the chart's audience-bound token, mirrors a Secret into a real
  OpenBao, writes its state Secret, Events and Lease, and releases a deleting retain mirror's
  copy: it works with exactly the chart's permissions; the same token is refused outside them
  (by RBAC, or by the chart's ValidatingAdmissionPolicy for Secret patches);
* `helm uninstall` keeps the CRD.

Metacontroller is not installed here: a stand-in CRD for `compositecontrollers.
metacontroller.k8s.io` (and one for the Prometheus Operator's `servicemonitors`) lets the
server validate those objects' envelope and the few fields typed below, not Metacontroller's
full schema.
"""

from __future__ import annotations

import json
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from sidecar.config import parse
from sidecar.kube import Kube
from sidecar.runtime import Sidecar, api_client
from tests.chart.conftest import (
    CHART,
    FULL_VALUES,
    NAMESPACE,
    RELEASE,
    Manifest,
    Tools,
    eventually,
)
from tests.support.controlplane import ControlPlane
from tests.support.openbao import OpenBao

pytestmark = pytest.mark.e2e

SA_USER = f"system:serviceaccount:{NAMESPACE}:{RELEASE}"

_HOOK = {
    "type": "object",
    "required": ["webhook", "version"],
    "properties": {
        "version": {"type": "string", "enum": ["v1", "v2"]},
        "webhook": {
            "type": "object",
            "required": ["url"],
            "properties": {"url": {"type": "string"}, "timeout": {"type": "string"}},
        },
    },
}


def _stand_in_crd(
    group: str, kind: str, plural: str, scope: str, spec: dict[str, Any] | None = None
) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    if spec is not None:
        schema = {
            "type": "object",
            "required": ["spec"],
            "properties": {"spec": {**spec, "x-kubernetes-preserve-unknown-fields": True}},
        }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{group}",
            # *.k8s.io groups are protected; Metacontroller's own CRDs carry the same value.
            "annotations": {"api-approved.kubernetes.io": "unapproved, request not yet submitted"},
        },
        "spec": {
            "group": group,
            "scope": scope,
            "names": {"kind": kind, "plural": plural, "listKind": f"{kind}List"},
            "versions": [
                {
                    "name": "v1alpha1" if group.startswith("metacontroller") else "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }


STAND_INS = [
    _stand_in_crd(
        "metacontroller.k8s.io",
        "CompositeController",
        "compositecontrollers",
        "Cluster",
        {
            "type": "object",
            "required": ["parentResource", "hooks"],
            "properties": {
                "generateSelector": {"type": "boolean"},
                "resyncPeriodSeconds": {"type": "integer"},
                "hooks": {
                    "type": "object",
                    "required": ["sync"],
                    "properties": dict.fromkeys(("customize", "sync", "finalize"), _HOOK),
                },
            },
        },
    ),
    _stand_in_crd("monitoring.coreos.com", "ServiceMonitor", "servicemonitors", "Namespaced"),
]


def as_list(items: list[Manifest]) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": items})


@pytest.fixture(scope="module")
def cluster(controlplane: ControlPlane) -> ControlPlane:
    """The API server with the stand-in CRDs and the chart's SecretMirror CRD established."""
    crd_file = CHART / "crds" / "secretmirrors.mirrors.kts.studio.yaml"
    controlplane.kubectl("apply", "-f", "-", input=as_list(STAND_INS))
    controlplane.kubectl("apply", "-f", str(crd_file))
    controlplane.kubectl(
        "wait",
        "--for=condition=Established",
        "crd/compositecontrollers.metacontroller.k8s.io",
        "crd/servicemonitors.monitoring.coreos.com",
        "crd/secretmirrors.mirrors.kts.studio",
    )
    return controlplane


@pytest.mark.parametrize("values", ["default", "full"])
def test_rendered_manifests_pass_server_dry_run(
    tools: Tools, cluster: ControlPlane, values: str
) -> None:
    extra = ["--values", str(FULL_VALUES)] if values == "full" else []
    namespace = f"dry-run-{values}"
    manifests = [
        m
        for m in tools.template(*extra, namespace=namespace)
        if m["kind"] != "CustomResourceDefinition"
    ]
    cluster.kubectl("create", "namespace", namespace)
    if values == "full":
        cluster.kubectl("create", "namespace", "mirrors-state")  # controllerNamespace
    res = cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=as_list(manifests))
    lines = res.stdout.strip().splitlines()
    assert len(lines) == len(manifests), res.stdout
    assert all(line.endswith("(server dry run)") for line in lines), res.stdout
    assert "Warning" not in res.stderr, res.stderr


@pytest.fixture(scope="module")
def installed(tools: Tools, cluster: ControlPlane) -> ControlPlane:
    """`helm install` of the default chart for real, as a user would run it."""
    tools.helm(
        "install", RELEASE, str(CHART),
        "--namespace", NAMESPACE, "--create-namespace",
        "--kubeconfig", str(cluster.kubeconfig),
    )  # fmt: skip
    return cluster


def test_pod_meets_the_restricted_pod_security_standard(installed: ControlPlane) -> None:
    installed.kubectl(
        "label", "namespace", NAMESPACE, "pod-security.kubernetes.io/enforce=restricted"
    )
    deploy = json.loads(
        installed.kubectl("get", "deployment", RELEASE, "-n", NAMESPACE, "-o", "json").stdout
    )
    template = deploy["spec"]["template"]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "restricted-check", "labels": template["metadata"]["labels"]},
        "spec": template["spec"],
    }
    ok = installed.kubectl("create", "--dry-run=server", "-n", NAMESPACE, "-f", "-",
                           input=json.dumps(pod))  # fmt: skip
    assert "created (server dry run)" in ok.stdout
    # The admission check is real: one weakened field and the same Pod is refused.
    pod["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    refused = installed.kubectl(
        "create", "--dry-run=server", "-n", NAMESPACE, "-f", "-",
        input=json.dumps(pod), check=False,
    )  # fmt: skip
    assert refused.returncode != 0
    assert 'violates PodSecurity "restricted' in refused.stderr


# (verb, resource[/name], namespace: None cluster-scoped, * all[, subresource])
Case = tuple[str, str, str | None] | tuple[str, str, str | None, str]

ALLOWED: list[Case] = [
    # sidecar/kube.py, call by call
    ("list", "secretmirrors.mirrors.kts.studio", None),  # list_mirrors
    ("watch", "secretmirrors.mirrors.kts.studio", None),  # watch_mirrors
    ("get", "secretmirrors.mirrors.kts.studio", None),
    ("get", "secrets", "team-a"),  # read_secret: sources and auth Secrets, any namespace
    ("get", "secrets", "kube-system"),
    ("get", "secrets", NAMESPACE),
    ("list", "secrets", "*"),  # list_secrets_everywhere: a retain mirror's copies
    ("list", "secrets", NAMESPACE),  # list_secrets (state, by label)
    ("patch", "secrets", "team-a"),  # patch_secret: release a copy (admission-limited)
    ("create", "secrets", NAMESPACE),  # create_secret (state)
    ("update", "secrets", NAMESPACE),  # replace_secret (state)
    ("delete", "secrets", NAMESPACE),  # delete_secret (state)
    ("create", "events", "default"),  # create_namespaced_event
    ("patch", "events", "default"),  # patch_namespaced_event
    ("create", "leases.coordination.k8s.io", NAMESPACE),  # create_lease
    ("get", "leases.coordination.k8s.io/mirrors-sidecar", NAMESPACE),  # read_lease
    ("update", "leases.coordination.k8s.io/mirrors-sidecar", NAMESPACE),  # replace_lease
]

REFUSED: list[Case] = [
    ("watch", "secrets", NAMESPACE),  # no informer on Secrets
    ("watch", "secrets", "*"),
    ("create", "secrets", "default"),  # no writes outside its namespace but the release patch
    ("create", "secrets", "team-a"),
    ("update", "secrets", "team-a"),
    ("delete", "secrets", "team-a"),
    ("deletecollection", "secrets", NAMESPACE),
    ("create", "secretmirrors.mirrors.kts.studio", None),  # SecretMirrors are read-only
    ("update", "secretmirrors.mirrors.kts.studio", None),
    ("patch", "secretmirrors.mirrors.kts.studio", None),
    ("delete", "secretmirrors.mirrors.kts.studio", None),
    ("update", "secretmirrors.mirrors.kts.studio", None, "status"),
    ("patch", "secretmirrors.mirrors.kts.studio", None, "status"),
    ("get", "leases.coordination.k8s.io/kube-controller-manager", NAMESPACE),
    ("update", "leases.coordination.k8s.io/other", NAMESPACE),
    ("delete", "leases.coordination.k8s.io/mirrors-sidecar", NAMESPACE),
    ("create", "leases.coordination.k8s.io", "default"),
    ("create", "events", NAMESPACE),
    ("create", "events", "team-a"),
    ("delete", "events", "default"),
    ("get", "configmaps", NAMESPACE),
    ("list", "namespaces", None),
    ("create", "pods", NAMESPACE),
    ("create", "serviceaccounts", NAMESPACE, "token"),
    ("create", "rolebindings.rbac.authorization.k8s.io", NAMESPACE),
    ("escalate", "clusterroles.rbac.authorization.k8s.io", None),
    ("impersonate", "users", None),
    ("update", "compositecontrollers.metacontroller.k8s.io", None),
]


def can_i(
    cluster: ControlPlane, verb: str, resource: str, namespace: str | None, subresource: str = ""
) -> bool:
    """`kubectl auth can-i` as the chart's ServiceAccount (`resource/name` names an object)."""
    where = ["--all-namespaces"] if namespace == "*" else ["-n", namespace] if namespace else []
    if subresource:
        where.append(f"--subresource={subresource}")
    res = cluster.kubectl("auth", "can-i", verb, resource, *where, f"--as={SA_USER}", check=False)
    answer = res.stdout.strip()
    assert answer in ("yes", "no"), res.stderr
    return answer == "yes"


def test_rbac_allows_exactly_the_sidecars_calls(installed: ControlPlane) -> None:
    denied = [case for case in ALLOWED if not can_i(installed, *case)]
    assert denied == [], "the sidecar needs these"
    granted = [case for case in REFUSED if can_i(installed, *case)]
    assert granted == [], "more than the sidecar needs"


def test_hooks_identity_has_no_token(installed: ControlPlane) -> None:
    sa = json.loads(
        installed.kubectl("get", "serviceaccount", RELEASE, "-n", NAMESPACE, "-o", "json").stdout
    )
    assert sa["automountServiceAccountToken"] is False
    deploy = json.loads(
        installed.kubectl("get", "deployment", RELEASE, "-n", NAMESPACE, "-o", "json").stdout
    )
    pod = deploy["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    hooks = next(c for c in pod["containers"] if c["name"] == "hooks")
    assert [m["mountPath"] for m in hooks["volumeMounts"]] == ["/tmp"]


# --- the sidecar with the chart's ServiceAccount -------------------------------------------------

MIRROR = "chart-rbac"
SOURCE_NS = "team-a"
COPY_NS = "team-b"
METACONTROLLER_FINALIZER = "metacontroller.io/compositecontroller-secretmirrors"
OWNER = {"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "0"}
VAULT_PATH = "secret/data/chart-rbac/pushed"
POLICY = """
path "secret/data/chart-rbac/*" { capabilities = ["create", "update", "read"] }
path "sys/internal/ui/mounts/*" { capabilities = ["read"] }
"""


def token_kubeconfig(cluster: ControlPlane, token: str, path: Path) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "c",
                "cluster": {
                    "server": cluster.server,
                    "certificate-authority": str(cluster.ca_file),
                },
            }
        ],
        "users": [{"name": "sidecar", "user": {"token": token}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "sidecar"}}],
        "current-context": "c",
    }
    path.write_text(json.dumps(config))
    return path


def create_token(cluster: ControlPlane, audience: str | None = None) -> str:
    args = ["create", "token", RELEASE, "-n", NAMESPACE, "--duration=1h"]
    if audience:
        args.append(f"--audience={audience}")
    return cluster.kubectl(*args).stdout.strip()


@pytest.fixture
def bao(installed: ControlPlane) -> Iterator[OpenBao]:
    """OpenBao with Kubernetes auth against the test API server, as the chart expects it: the
    role is bound to the chart's ServiceAccount and to the audience `vault`."""
    server = OpenBao().start()
    try:
        server.put_policy("pusher", POLICY)
        server.api("POST", "sys/auth/kubernetes", {"type": "kubernetes"})
        server.api(
            "POST",
            "auth/kubernetes/config",
            {
                "kubernetes_host": installed.server,
                "kubernetes_ca_cert": installed.ca_file.read_text(),
                "token_reviewer_jwt": installed.admin_token,
                "disable_local_ca_jwt": True,
            },
        )
        server.api(
            "POST",
            "auth/kubernetes/role/mirrors",
            {
                "bound_service_account_names": [RELEASE],
                "bound_service_account_namespaces": [NAMESPACE],
                "audience": "vault",
                "token_policies": ["pusher"],
                "token_ttl": "1h",
            },
        )
        yield server
    finally:
        server.close()


def mirror_manifest(bao: OpenBao) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "mirrors.kts.studio/v1alpha2",
            "kind": "SecretMirror",
            "metadata": {"name": MIRROR},
            "spec": {
                "source": {"name": "pushed", "namespace": SOURCE_NS},
                "destination": {
                    "type": "vault",
                    "vault": {
                        "addr": bao.addr,
                        "path": VAULT_PATH,
                        "auth": {"kubernetes": {"role": "mirrors"}},
                    },
                },
                "deletePolicy": "retain",
                "pollPeriodSeconds": 5,
            },
        }
    )


def status_of(call: Any) -> int:
    try:
        call()
    except client.ApiException as exc:
        return int(exc.status)
    return 200


def copy_manifest(uid: str) -> dict[str, Any]:
    """A copy as Metacontroller makes it: controller-uid label, controlling ownerReference."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "pushed",
            "namespace": COPY_NS,
            "labels": {"controller-uid": uid},
            "ownerReferences": [
                {
                    "apiVersion": "mirrors.kts.studio/v1alpha2",
                    "kind": "SecretMirror",
                    "name": MIRROR,
                    "uid": uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "stringData": {"password": "test"},
    }


def get_json(cluster: ControlPlane, *args: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(cluster.kubectl("get", *args, "-o", "json").stdout)
    return data


@pytest.mark.vault
def test_sidecar_works_with_the_charts_token_and_nothing_more(
    installed: ControlPlane, bao: OpenBao
) -> None:
    cluster = installed
    for ns in (SOURCE_NS, COPY_NS):
        cluster.kubectl("create", "namespace", ns)
    cluster.kubectl(
        "create", "secret", "generic", "pushed", "-n", SOURCE_NS,
        "--from-literal=password=test", "--from-literal=user=admin123",
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        kubeconfig = token_kubeconfig(cluster, create_token(cluster), Path(tmp) / "kubeconfig")
        # What the chart projects at /var/run/secrets/mirrors/vault/token.
        vault_jwt = Path(tmp) / "vault-token"
        vault_jwt.write_text(create_token(cluster, audience="vault"))
        cfg = parse(
            [
                "--controller-namespace", NAMESPACE, "--identity", "chart-rbac-sidecar",
                "--host", "127.0.0.1", "--port", "0", "--sa-token-path", str(vault_jwt),
            ],
            env={},
        )  # fmt: skip
        sidecar = Sidecar(cfg, api_client(str(kubeconfig)))
        sidecar.start()
        try:
            cluster.kubectl("apply", "-f", "-", input=mirror_manifest(bao))

            def vault_data() -> dict[str, str] | None:
                status, answer = bao.request("GET", VAULT_PATH)
                return answer["data"]["data"] if status == 200 else None

            # secrets get (another namespace); Vault Kubernetes auth with the audience token.
            eventually(lambda: vault_data() == {"password": "test", "user": "admin123"}, 60)
            # The state Secret, created in the controller namespace.
            eventually(
                lambda: (
                    cluster.kubectl(
                        "get", "secret", f"mirror-state-{MIRROR}", "-n", NAMESPACE, check=False
                    ).returncode
                    == 0
                ),
                20,
                "the state Secret",
            )
            # Events in default.
            events = get_json(
                cluster, "events", "-n", "default",
                "--field-selector", f"involvedObject.name={MIRROR}",
            )  # fmt: skip
            assert "VaultWritten" in [e["reason"] for e in events["items"]]
            lease = get_json(cluster, "lease", "mirrors-sidecar", "-n", NAMESPACE)
            assert lease["spec"]["holderIdentity"] == "chart-rbac-sidecar"

            # Retain: a deleting mirror's copies are listed everywhere and released (the
            # admission policy lets the ownerReference go). The Metacontroller finalizer, set
            # here by hand, holds the mirror as Metacontroller would.
            uid = get_json(cluster, "secretmirror", MIRROR)["metadata"]["uid"]
            cluster.kubectl("apply", "-f", "-", input=json.dumps(copy_manifest(uid)))
            finalizer = {"metadata": {"finalizers": [METACONTROLLER_FINALIZER]}}
            cluster.kubectl("patch", "secretmirror", MIRROR, "--type=merge",
                            "-p", json.dumps(finalizer))  # fmt: skip
            cluster.kubectl("delete", "secretmirror", MIRROR, "--wait=false")

            def released() -> bool:
                meta = get_json(cluster, "secret", "pushed", "-n", COPY_NS)["metadata"]
                return not meta.get("ownerReferences")

            eventually(released, 30, "the copy released from the deleted mirror")
            copy = get_json(cluster, "secret", "pushed", "-n", COPY_NS)
            assert copy["data"] == {"password": "dGVzdA=="}
            assert copy["metadata"]["labels"] == {"controller-uid": uid}

            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            url = f"http://127.0.0.1:{sidecar.port}/metrics"
            with opener.open(url, timeout=5) as resp:
                metrics = resp.read().decode()
            assert "mirrors_sidecar_errors_total{" not in metrics, "an action failed"
            assert "mirrors_sidecar_leader 1.0" in metrics
        finally:
            sidecar.stop()

        # The same token, outside the chart's permissions.
        kube = Kube(api_client(str(kubeconfig)))
        stray = {"metadata": {"name": "stray"}, "stringData": {"x": "y"}}
        assert status_of(lambda: kube.create_secret(SOURCE_NS, stray)) == 403
        assert status_of(lambda: kube.delete_secret(SOURCE_NS, "pushed")) == 403
        source = kube.read_secret(SOURCE_NS, "pushed")
        assert source is not None
        assert status_of(lambda: kube.replace_secret(SOURCE_NS, "pushed", source)) == 403
        # `patch` on Secrets is granted for the release; the admission policy refuses the rest.
        for operations in (
            [{"op": "replace", "path": "/data/password", "value": "aGlqYWNr"}],
            [{"op": "add", "path": "/metadata/labels", "value": {"hijack": "1"}}],
            [{"op": "add", "path": "/metadata/ownerReferences", "value": [OWNER]}],
        ):
            with pytest.raises(client.ApiException) as refused:
                kube.patch_secret(SOURCE_NS, "pushed", operations)
            assert refused.value.status == 403
            assert "may only remove ownerReferences" in str(refused.value.body)
        assert get_json(cluster, "secret", "pushed", "-n", SOURCE_NS)["data"]["password"] == (
            "dGVzdA=="
        )
        mirrors = kube.custom
        group = ("mirrors.kts.studio", "v1alpha2", "secretmirrors", MIRROR)
        spec_patch = {"spec": {"destination": {"vault": {"path": "secret/data/elsewhere"}}}}
        assert status_of(lambda: mirrors.patch_cluster_custom_object(*group, spec_patch)) == 403
        assert status_of(lambda: mirrors.delete_cluster_custom_object(*group)) == 403
        status_patch = {"status": {"mirrorStatus": "Active"}}
        assert (
            status_of(lambda: mirrors.patch_cluster_custom_object_status(*group, status_patch))
            == 403
        )
        # The token for Vault is useless against the Kubernetes API (wrong audience).
        vault_kube = Kube(
            api_client(str(token_kubeconfig(cluster, vault_jwt.read_text(), Path(tmp) / "v")))
        )
        assert status_of(lambda: vault_kube.read_secret(SOURCE_NS, "pushed")) == 401


def test_helm_uninstall_keeps_the_crd(tools: Tools, installed: ControlPlane) -> None:
    tools.helm("uninstall", RELEASE, "-n", NAMESPACE, "--kubeconfig", str(installed.kubeconfig))
    crd = installed.kubectl("get", "crd", "secretmirrors.mirrors.kts.studio", check=False)
    assert crd.returncode == 0, "helm uninstall must never delete the CRD (and every mirror)"
    gone = installed.kubectl("get", "clusterrole", f"{RELEASE}-sidecar", check=False)
    assert gone.returncode != 0
