"""The chart as text: lint, schema, and what `helm template` renders (default and full values)."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest
import yaml

from tests.chart.conftest import CHART, FULL_VALUES, ROOT, Manifest, Tools, find, kinds

RESTRICTED_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "privileged": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}

# The exact rules the sidecar gets (sidecar/kube.py is the list of calls it makes).
CLUSTER_RULES = [
    {
        "apiGroups": ["mirrors.kts.studio"],
        "resources": ["secretmirrors"],
        "verbs": ["get", "list", "watch"],
    },
    {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "patch"]},
]


def namespace_rules(lease: str) -> list[dict[str, Any]]:
    return [
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "verbs": ["create", "update", "delete"],
        },
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": [lease],
            "verbs": ["get", "update"],
        },
    ]


EVENT_RULES = [{"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]}]


def containers(manifests: list[Manifest]) -> dict[str, Manifest]:
    pod = find(manifests, "Deployment")["spec"]["template"]["spec"]
    return {c["name"]: c for c in pod["containers"]}


def env(container: Manifest) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def test_chart_crd_is_the_repository_crd() -> None:
    name = "secretmirrors.mirrors.kts.studio.yaml"
    assert (CHART / "crds" / name).read_bytes() == (ROOT / "crds" / name).read_bytes(), (
        "charts/mirrors/crds drifted from crds/: cp crds/*.yaml charts/mirrors/crds/"
    )
    assert sorted(p.name for p in (CHART / "crds").iterdir()) == [name]


def test_app_version_is_the_package_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert chart["apiVersion"] == "v2"
    assert chart["appVersion"] == project["version"]


@pytest.mark.parametrize("values", ["default", "full"])
def test_helm_lint_strict(tools: Tools, values: str) -> None:
    extra = ["--values", str(FULL_VALUES)] if values == "full" else []
    out = tools.helm("lint", "--strict", str(CHART), *extra).stdout
    assert "0 chart(s) failed" in out


def test_default_render(default_manifests: list[Manifest]) -> None:
    assert kinds(default_manifests) == sorted(
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "CompositeController",
            "Deployment",
            "PodDisruptionBudget",
            "Role",
            "Role",
            "RoleBinding",
            "RoleBinding",
            "Service",
            "ServiceAccount",
            "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicyBinding",
        ]
    )
    deploy = find(default_manifests, "Deployment")
    assert deploy["spec"]["replicas"] == 2
    pod = deploy["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == "mirrors"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert find(default_manifests, "ServiceAccount")["automountServiceAccountToken"] is False

    cs = containers(default_manifests)
    assert list(cs) == ["hooks", "sidecar"]
    hooks, sidecar = cs["hooks"], cs["sidecar"]
    assert hooks["image"] == sidecar["image"] == "mirrors:0.1.0"
    assert hooks["command"] == ["python", "-m", "hooks"]
    assert sidecar["command"] == ["python", "-m", "sidecar"]
    for c in (hooks, sidecar):
        assert c["securityContext"] == RESTRICTED_CONTAINER
        assert set(c["resources"]) == {"requests", "limits"}
        assert "memory" in c["resources"]["limits"]
        assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert hooks["ports"] == [{"name": "hooks", "containerPort": 8080, "protocol": "TCP"}]
    assert sidecar["ports"] == [{"name": "sidecar", "containerPort": 8081, "protocol": "TCP"}]

    # The hooks container has no Kubernetes credentials; the sidecar gets the API token and a
    # separate audience-bound token for Vault's Kubernetes auth.
    assert [m["mountPath"] for m in hooks["volumeMounts"]] == ["/tmp"]
    mounts = {m["mountPath"]: m["name"] for m in sidecar["volumeMounts"]}
    assert mounts == {
        "/tmp": "tmp",
        "/var/run/secrets/kubernetes.io/serviceaccount": "kube-api-access",
        "/var/run/secrets/mirrors/vault": "vault-token",
    }
    volumes = {v["name"]: v for v in pod["volumes"]}
    api_sources = volumes["kube-api-access"]["projected"]["sources"]
    assert "audience" not in api_sources[0]["serviceAccountToken"]
    vault_token = volumes["vault-token"]["projected"]["sources"][0]["serviceAccountToken"]
    assert vault_token["audience"] == "vault"

    assert env(hooks)["MIRRORS_NAMESPACE"] == env(sidecar)["MIRRORS_NAMESPACE"] == "mirrors"
    assert env(sidecar)["MIRRORS_SA_TOKEN_PATH"] == "/var/run/secrets/mirrors/vault/token"
    assert env(sidecar)["MIRRORS_SIDECAR_PORT"] == "8081"
    assert env(sidecar)["MIRRORS_LEADER_ELECTION"] == "true"
    assert env(sidecar)["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert "REQUESTS_CA_BUNDLE" not in env(sidecar)

    svc = find(default_manifests, "Service")
    assert svc["metadata"]["name"] == "mirrors-hooks"
    assert svc["spec"]["ports"][0] == {
        "name": "hooks",
        "port": 80,
        "targetPort": "hooks",
        "protocol": "TCP",
    }
    assert find(default_manifests, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1


def test_default_compositecontroller(default_manifests: list[Manifest]) -> None:
    cc = find(default_manifests, "CompositeController")
    assert cc["apiVersion"] == "metacontroller.k8s.io/v1alpha1"
    assert cc["metadata"]["name"] == "secretmirrors"
    assert "namespace" not in cc["metadata"]
    spec = cc["spec"]
    # The same controller as metacontroller/compositecontroller.yaml, hooks at the Service.
    static = yaml.safe_load((ROOT / "metacontroller" / "compositecontroller.yaml").read_text())
    for key in ("generateSelector", "resyncPeriodSeconds", "parentResource", "childResources"):
        assert spec[key] == static["spec"][key], key
    assert spec["hooks"] == {
        hook: {
            "webhook": {"url": f"http://mirrors-hooks.mirrors.svc:80/{hook}", "timeout": "10s"},
            "version": "v2",
        }
        for hook in ("customize", "sync", "finalize")
    }


def test_default_rbac_is_exactly_the_sidecars_calls(default_manifests: list[Manifest]) -> None:
    assert find(default_manifests, "ClusterRole")["rules"] == CLUSTER_RULES
    state = find(default_manifests, "Role", "mirrors-sidecar")
    assert state["metadata"]["namespace"] == "mirrors"
    assert state["rules"] == namespace_rules("mirrors-sidecar")
    events = find(default_manifests, "Role", "mirrors-sidecar-events")
    assert events["metadata"]["namespace"] == "default"
    assert events["rules"] == EVENT_RULES
    subject = [{"kind": "ServiceAccount", "name": "mirrors", "namespace": "mirrors"}]
    for kind in ("ClusterRoleBinding", "RoleBinding"):
        for binding in (m for m in default_manifests if m["kind"] == kind):
            assert binding["subjects"] == subject
    # Nothing is aggregated into the admin/edit/view roles.
    for m in default_manifests:
        labels = m["metadata"].get("labels") or {}
        assert not any(k.startswith("rbac.authorization.k8s.io/aggregate") for k in labels)
        assert "aggregationRule" not in m


def test_default_admission_policy(default_manifests: list[Manifest]) -> None:
    policy = find(default_manifests, "ValidatingAdmissionPolicy")
    conditions = [c["expression"] for c in policy["spec"]["matchConditions"]]
    assert conditions == [
        'request.userInfo.username == "system:serviceaccount:mirrors:mirrors"',
        'request.namespace != "mirrors"',
    ]
    rule = policy["spec"]["matchConstraints"]["resourceRules"][0]
    assert (rule["resources"], rule["operations"]) == (["secrets"], ["UPDATE"])
    binding = find(default_manifests, "ValidatingAdmissionPolicyBinding")
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    assert binding["spec"]["validationActions"] == ["Deny"]


def test_full_values_render(full_manifests: list[Manifest]) -> None:
    assert "CustomResourceDefinition" in kinds(full_manifests)
    assert {"NetworkPolicy", "ServiceMonitor"} <= set(kinds(full_manifests))
    deploy = find(full_manifests, "Deployment", "smir")
    assert deploy["spec"]["replicas"] == 3
    pod = deploy["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "smir-sidecar"
    assert pod["priorityClassName"] == "system-cluster-critical"
    assert pod["terminationGracePeriodSeconds"] == 45
    spread = pod["topologySpreadConstraints"][0]
    assert spread["labelSelector"]["matchLabels"]["app.kubernetes.io/instance"] == "mirrors"
    cs = containers(full_manifests)
    digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    assert cs["hooks"]["image"] == f"registry.example.com/platform/mirrors@{digest}"
    assert cs["hooks"]["ports"][0]["containerPort"] == 9080
    assert cs["sidecar"]["ports"][0]["containerPort"] == 9081
    sidecar_env = env(cs["sidecar"])
    assert sidecar_env["MIRRORS_NAMESPACE"] == env(cs["hooks"])["MIRRORS_NAMESPACE"]
    assert sidecar_env["MIRRORS_NAMESPACE"] == "mirrors-state"
    assert sidecar_env["MIRRORS_LEASE_NAME"] == "smir-leader"
    assert sidecar_env["MIRRORS_SIDECAR_WORKERS"] == "8"
    assert sidecar_env["MIRRORS_RENEW_FRACTION"] == "0.5"
    assert sidecar_env["MIRRORS_VAULT_TIMEOUT"] == "20"
    assert sidecar_env["MIRRORS_LOG_LEVEL"] == "debug"
    assert sidecar_env["REQUESTS_CA_BUNDLE"] == "/etc/mirrors/vault-ca/bundle.pem"
    assert sidecar_env["HTTPS_PROXY"] == "http://proxy.example.com:3128"
    volumes = {v["name"]: v for v in pod["volumes"]}
    token = volumes["vault-token"]["projected"]["sources"][0]["serviceAccountToken"]
    assert token == {
        "path": "token",
        "audience": "https://vault.example.com",
        "expirationSeconds": 1800,
    }
    assert volumes["vault-ca"]["configMap"]["name"] == "corporate-ca"
    for c in cs.values():
        assert c["securityContext"] == RESTRICTED_CONTAINER

    cc = find(full_manifests, "CompositeController", "secretmirrors-test")
    assert cc["spec"]["resyncPeriodSeconds"] == 300
    assert cc["spec"]["hooks"]["sync"] == {
        "webhook": {"url": "http://smir-hooks.mirrors.svc:8443/sync", "timeout": "25s"},
        "version": "v2",
    }
    # State Secrets and the Lease live in controllerNamespace; the ServiceAccount does not.
    role = find(full_manifests, "Role", "smir-sidecar")
    assert role["metadata"]["namespace"] == "mirrors-state"
    assert role["rules"] == namespace_rules("smir-leader")
    binding = find(full_manifests, "RoleBinding", "smir-sidecar")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "smir-sidecar", "namespace": "mirrors"}
    ]

    policy = find(full_manifests, "NetworkPolicy")
    ingress = policy["spec"]["ingress"]
    assert ingress[0]["from"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "mc-system"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "metacontroller-helm"}},
        }
    ]
    assert ingress[0]["ports"] == [{"port": "hooks", "protocol": "TCP"}]
    assert [p["port"] for p in ingress[1]["ports"]] == ["hooks", "sidecar"]
    monitor = find(full_manifests, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["hooks", "sidecar"]


def test_options_off(tools: Tools) -> None:
    manifests = tools.template(
        "--set",
        "admissionPolicy.enabled=false,podDisruptionBudget.enabled=false",
        "--set",
        "sidecar.leaderElection.enabled=false,vault.kubernetesAuthAudience=",
    )
    assert not {"ValidatingAdmissionPolicy", "PodDisruptionBudget"} & set(kinds(manifests))
    role = find(manifests, "Role", "mirrors-sidecar")
    assert role["rules"] == namespace_rules("x")[:1]  # no Lease rules without election
    sidecar = containers(manifests)["sidecar"]
    assert env(sidecar)["MIRRORS_LEADER_ELECTION"] == "false"
    assert "MIRRORS_SA_TOKEN_PATH" not in env(sidecar)  # the API token, at the default path
    assert [m["name"] for m in sidecar["volumeMounts"]] == ["tmp", "kube-api-access"]


@pytest.mark.parametrize(
    "bad",
    [
        "replicaCount=-1",
        "logLevel=verbose",
        "sidecar.workers=0",
        "sidecar.renewFraction=1",
        "compositeController.webhookTimeout=10",
        "image.digest=latest",
        "controllerNamespace=Not_A_Namespace",
        "unknownKey=1",
        "hooks.resources.limits.memory=lots",
    ],
)
def test_schema_rejects(tools: Tools, bad: str) -> None:
    res = tools.helm("template", "x", str(CHART), "--set", bad, check=False)
    assert res.returncode != 0, f"--set {bad} rendered"
    assert "schema" in res.stderr.lower() or "values don't meet" in res.stderr.lower(), res.stderr


def test_notes_say_what_to_do_next(tools: Tools) -> None:
    out = tools.helm("install", "mirrors", str(CHART), "-n", "mirrors", "--dry-run=client").stdout
    notes = out.split("NOTES:", 1)[1]
    assert "kubectl get secretmirrors" in notes
    assert "kind: SecretMirror" in notes
    assert "http://mirrors-hooks.mirrors.svc:80/sync" in notes
