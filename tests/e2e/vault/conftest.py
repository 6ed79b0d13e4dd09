"""Fixtures of the Vault end-to-end tests: scenarios 2-5, Kubernetes auth, restarts.

Everything real: the control plane, the hooks and the driver come from tests/e2e/conftest.py
(`stack`, `e2e`); here are OpenBao (two dev servers, session-wide), PostgreSQL, and the
sidecar run as production runs it, `python -m sidecar --kubeconfig ...` in a subprocess that
a test may SIGKILL and start again (same identity: a restarted container keeps its pod name).

The sidecar's controller namespace is `mirrors`, the hooks' default, so that the hooks see the
state Secrets it writes. OpenBao dev mode forgets everything on restart: `World.seed()` sets up
mounts, policies and the AppRole with fixed role/secret ids, and runs again after a restart.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import E2E, EXAMPLES, Cluster, Stack, eventually
from tests.support.controlplane import free_port
from tests.support.openbao import OpenBao, scrubbed_env
from tests.support.postgres import Postgres
from tests.support.process import Service

CONTROLLER_NS = "mirrors"  # the hooks' default --controller-namespace
SIDECAR_IDENTITY = "e2e-vault-sidecar"
SIDECAR_SA = "mirrors-sidecar"  # the sidecar's ServiceAccount (Kubernetes auth)
REVIEWER_SA = "openbao-token-reviewer"  # bound to system:auth-delegator, used by OpenBao
K8S_AUDIENCE = "openbao"

# Fixed AppRole ids: after a dev-mode restart the same Secret logs in again.
ROLE_ID = "0e2e0000-0000-4000-8000-00000000a001"
SECRET_ID = "0e2e0000-0000-4000-8000-00000000a002"
ROLE_ID_2 = "0e2e0000-0000-4000-8000-00000000b001"
SECRET_ID_2 = "0e2e0000-0000-4000-8000-00000000b002"

# The database engine is mounted at `mongodb/`, so scenario 4's manifest keeps its path
# (`mongodb/creds/somedb`) unchanged; PostgreSQL plays MongoDB's part behind it.
DB_MOUNT = "mongodb"
DB_ROLE = "somedb"
DB_PATH = f"{DB_MOUNT}/creds/{DB_ROLE}"
DB_DEFAULT_TTL = 6
DB_MAX_TTL = 20
DB_SLOW_ROLE = "slowdb"  # long leases: restarts without racing max_ttl
DB_SLOW_PATH = f"{DB_MOUNT}/creds/{DB_SLOW_ROLE}"

POLICY = """
path "secret/data/*" { capabilities = ["create", "update", "read"] }
path "secret/metadata/*" { capabilities = ["read"] }
path "sys/internal/ui/mounts/*" { capabilities = ["read"] }
path "mongodb/creds/*" { capabilities = ["read"] }
path "sys/leases/renew" { capabilities = ["update"] }
path "sys/leases/revoke" { capabilities = ["update"] }
"""


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# --- OpenBao + PostgreSQL -------------------------------------------------------------------


@dataclass
class World:
    """The Vault side: `bao` (vault1 / the main server), `bao2` (vault2), PostgreSQL."""

    bao: OpenBao
    bao2: OpenBao
    pg: Postgres

    def seed(self) -> None:
        """Idempotent: mounts, policy, AppRole (fixed ids), database engine and roles."""
        seed_approle(self.bao, ROLE_ID, SECRET_ID)
        seed_approle(self.bao2, ROLE_ID_2, SECRET_ID_2)
        self.seed_database()

    def seed_database(self) -> None:
        _status, mounts = self.bao.request("GET", "sys/mounts")
        if f"{DB_MOUNT}/" not in (mounts.get("data") or mounts):
            self.bao.api("POST", f"sys/mounts/{DB_MOUNT}", {"type": "database"})
        self.bao.api(
            "POST",
            f"{DB_MOUNT}/config/pg",
            {
                "plugin_name": "postgresql-database-plugin",
                "connection_url": self.pg.connection_url() + "?sslmode=disable",
                "username": self.pg.superuser,
                "password": self.pg.password,
                "allowed_roles": "*",
                "verify_connection": True,
            },
        )
        for role, default_ttl, max_ttl in (
            (DB_ROLE, DB_DEFAULT_TTL, DB_MAX_TTL),
            (DB_SLOW_ROLE, 30, 600),
        ):
            self.bao.api(
                "POST",
                f"{DB_MOUNT}/roles/{role}",
                {
                    "db_name": "pg",
                    "creation_statements": [
                        "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' "
                        "VALID UNTIL '{{expiration}}';"
                    ],
                    "default_ttl": f"{default_ttl}s",
                    "max_ttl": f"{max_ttl}s",
                },
            )

    def kv_put(self, server: OpenBao, path: str, data: dict[str, str]) -> None:
        server.api("POST", f"secret/data/{path}", {"data": data})

    def kv_get(self, server: OpenBao, path: str) -> dict[str, str] | None:
        status, answer = server.request("GET", f"secret/data/{path}")
        return dict(answer["data"]["data"]) if status == 200 else None

    def kv_delete(self, server: OpenBao, path: str) -> None:
        server.request("DELETE", f"secret/metadata/{path}")

    def leases(self, prefix: str) -> list[str]:
        """Lease ids under `prefix` (e.g. mongodb/creds/somedb/), as Vault lists them."""
        status, answer = self.bao.request("LIST", f"sys/leases/lookup/{prefix.rstrip('/')}/")
        if status != 200:
            return []
        return [prefix.rstrip("/") + "/" + k for k in answer["data"]["keys"]]

    def lease_alive(self, lease_id: str) -> bool:
        status, _ = self.bao.request("PUT", "sys/leases/lookup", {"lease_id": lease_id})
        return status == 200

    def can_login(self, username: str, password: str) -> bool:
        result = self.pg.psql("SELECT current_user", user=username, password=password)
        return result.returncode == 0 and result.stdout.strip() == username


def seed_approle(server: OpenBao, role_id: str, secret_id: str) -> None:
    status, mounts = server.request("GET", "sys/auth")
    if "approle/" not in (mounts.get("data") or mounts):
        server.api("POST", "sys/auth/approle", {"type": "approle"})
    server.put_policy("mirrors", POLICY)
    server.api(
        "POST",
        "auth/approle/role/mirrors",
        {"token_policies": ["mirrors"], "token_ttl": "1h", "token_max_ttl": "4h"},
    )
    server.api("POST", "auth/approle/role/mirrors/role-id", {"role_id": role_id})
    status, _ = server.request(
        "POST", "auth/approle/role/mirrors/secret-id/lookup", {"secret_id": secret_id}
    )
    if status != 200:
        server.api("POST", "auth/approle/role/mirrors/custom-secret-id", {"secret_id": secret_id})


@pytest.fixture(scope="session")
def _scrub_vault_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """hvac reads VAULT_ADDR, VAULT_TOKEN and ~/.vault-token: nothing of the kind here."""
    saved = {k: v for k, v in os.environ.items() if k.startswith(("VAULT_", "BAO_"))}
    for key in saved:
        del os.environ[key]
    yield
    os.environ.update(saved)


@pytest.fixture(scope="session")
def world(_scrub_vault_env: None) -> Iterator[World]:
    bao, bao2, pg = OpenBao(), OpenBao(), Postgres()
    try:
        bao.start()
        bao2.start()
        pg.start()
        w = World(bao, bao2, pg)
        w.seed()
        yield w
    finally:
        bao.close()
        bao2.close()
        pg.close()


# --- the sidecar as a process ---------------------------------------------------------------


class SidecarProcess(Service):
    """`python -m sidecar --kubeconfig ...`, leader-elected, stopped and killed by PID."""

    def __init__(self, kubeconfig: Path, log_path: Path, sa_token_path: Path) -> None:
        super().__init__("sidecar", log_path, stop_timeout=20)
        self.kubeconfig, self.sa_token_path = kubeconfig, sa_token_path
        self.port = free_port()
        self.home = log_path.parent / "sidecar-home"
        self.home.mkdir(exist_ok=True)

    def start(self, timeout: float = 60.0) -> None:
        args = [
            "-m", "sidecar",
            "--kubeconfig", str(self.kubeconfig),
            "--controller-namespace", CONTROLLER_NS,
            "--host", "127.0.0.1", "--port", str(self.port),
            "--identity", SIDECAR_IDENTITY,
            "--sa-token-path", str(self.sa_token_path),
            "--log-level", "debug",
            "--vault-timeout", "5",
        ]  # fmt: skip
        env = scrubbed_env()
        env["HOME"] = str(self.home)  # no ~/.vault-token
        env.pop("KUBECONFIG", None)
        self.spawn(args, ready_url=f"http://127.0.0.1:{self.port}/readyz", timeout=timeout, env=env)

    def metrics(self) -> str:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as resp:
            return str(resp.read().decode())


@dataclass
class VaultE2E:
    """Per module: the cluster side of the Vault scenarios, and what to check afterwards."""

    stack: Stack
    world: World
    sidecar: SidecarProcess
    sa_token_path: Path
    secret_values: set[str] = field(default_factory=set)  # must appear in no log/status/event

    @property
    def cluster(self) -> Cluster:
        return self.stack.cluster

    def addr_of(self, server: OpenBao) -> str:
        return server.addr

    def approle_secret(self, name: str, role_id: str, secret_id: str) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": "default"},
            "type": "Opaque",
            "data": {"role-id": b64(role_id), "secret-id": b64(secret_id)},
        }
        self.cluster.kubectl("apply", "-f", "-", stdin=json.dumps(body))

    def remember(self, *values: str) -> None:
        self.secret_values.update(v for v in values if v)

    def assert_no_values_leaked(self, *texts: str) -> None:
        """No secret value (or lease id, token, role/secret id) in the sidecar's or the hooks'
        logs, nor in the given texts (statuses, events)."""
        logs = {
            "sidecar log": self.sidecar.log_text(),
            "hooks log": self.stack.hooks.log_path.read_text(errors="replace"),
        }
        for i, text in enumerate(texts):
            logs[f"text #{i}"] = text
        for where, text in logs.items():
            for value in sorted(self.secret_values):
                assert value not in text, f"a secret value ({len(value)} chars) is in the {where}"


def example_with(filename: str, **vault: str) -> dict[str, Any]:
    """examples/<filename> with only the given VaultSpec fields replaced (source and
    destination, e.g. addr=..., path=...; `dest_addr` for the destination of vault -> vault)."""
    manifest: dict[str, Any] = yaml.safe_load((EXAMPLES / filename).read_text())
    spec = manifest["spec"]
    for side in ("source", "destination"):
        v = spec.get(side, {}).get("vault")
        if v is None:
            continue
        for key, value in vault.items():
            if key.startswith("dest_"):
                if side == "destination":
                    v[key.removeprefix("dest_")] = value
            elif key.startswith("src_"):
                if side == "source":
                    v[key.removeprefix("src_")] = value
            else:
                v[key] = value
    return manifest


def apply_mirror(e2e: E2E, manifest: dict[str, Any], poll: int | None = 5) -> str:
    """`kubectl apply -f -` of the manifest, then (as a user tuning it would) a patch of
    `pollPeriodSeconds`. Remembered for cleanup."""
    name = str(manifest["metadata"]["name"])
    e2e.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(manifest))
    e2e.mirrors.append(name)
    if poll is not None:
        patch = json.dumps({"spec": {"pollPeriodSeconds": poll}})
        e2e.kubectl("patch", "secretmirror", name, "--type=merge", "-p", patch)
    return name


def uid_of(cluster: Cluster, mirror: str) -> str:
    obj = cluster.get("secretmirror", mirror)
    assert obj is not None, f"secretmirror {mirror} not found"
    return str(obj["metadata"]["uid"])


def events(cluster: Cluster, mirror: str, uid: str = "") -> list[dict[str, Any]]:
    """The Events of this mirror (by uid: an earlier mirror of the same name has others)."""
    found = cluster.json(
        "get", "events", "-n", "default",
        "--field-selector", f"involvedObject.uid={uid or uid_of(cluster, mirror)}",
    )  # fmt: skip
    return list(found["items"])


def reasons(cluster: Cluster, mirror: str, uid: str = "") -> list[str]:
    return [e["reason"] for e in events(cluster, mirror, uid)]


def event_count(cluster: Cluster, mirror: str, reason: str, uid: str = "") -> int:
    found = events(cluster, mirror, uid)
    return sum(int(e.get("count") or 1) for e in found if e["reason"] == reason)


def state_of(cluster: Cluster, mirror: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The sidecar's state (annotation, as a dict) and data (decoded) for `mirror`."""
    secret = cluster.get("secret", f"mirror-state-{mirror}", CONTROLLER_NS)
    assert secret is not None, f"no state Secret for {mirror}"
    annotation = secret["metadata"]["annotations"]["mirrors.kts.studio/state"]
    data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    return json.loads(annotation), data


def describe(cluster: Cluster, mirror: str) -> str:
    return cluster.kubectl("describe", "secretmirror", mirror)


def mirror_status(e2e: E2E, name: str, expected: str) -> dict[str, Any]:
    status = e2e.status(name)
    assert status.get("mirrorStatus") == expected, status
    return status


def wait_status(e2e: E2E, name: str, expected: str, timeout: float = 30.0) -> dict[str, Any]:
    return eventually(
        lambda: mirror_status(e2e, name, expected), timeout, f"{name} {expected}", interval=0.25
    )


def _kubeconfig_cluster(kubeconfig: Path) -> tuple[str, str]:
    """(server URL, CA PEM) of the kubeconfig's current context."""
    config = yaml.safe_load(kubeconfig.read_text())
    context_name = config.get("current-context")
    contexts = {c["name"]: c["context"] for c in config.get("contexts") or []}
    clusters = {c["name"]: c["cluster"] for c in config["clusters"]}
    cluster = (
        clusters[contexts[context_name]["cluster"]]
        if context_name
        else config["clusters"][0]["cluster"]
    )
    if "certificate-authority-data" in cluster:
        ca = base64.b64decode(cluster["certificate-authority-data"]).decode()
    else:
        ca = Path(cluster["certificate-authority"]).read_text()
    return str(cluster["server"]), ca


def setup_kubernetes_auth(cluster: Cluster, bao: OpenBao, role: str, policy: str) -> None:
    """OpenBao's kubernetes auth against this API server, as an operator would set it up:
    a token-reviewer ServiceAccount bound to system:auth-delegator, the API server's URL and
    CA, and a role bound to the sidecar's ServiceAccount (audience `openbao`)."""
    server, ca = _kubeconfig_cluster(cluster.kubeconfig)
    for sa in (REVIEWER_SA, SIDECAR_SA):
        cluster.kubectl("create", "serviceaccount", sa, "-n", CONTROLLER_NS, check=False)
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": f"{REVIEWER_SA}-e2e"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "system:auth-delegator",
        },
        "subjects": [{"kind": "ServiceAccount", "name": REVIEWER_SA, "namespace": CONTROLLER_NS}],
    }
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(binding))
    reviewer_jwt = cluster.kubectl(
        "create", "token", REVIEWER_SA, "-n", CONTROLLER_NS, "--duration", "1h"
    ).strip()
    _status, mounts = bao.request("GET", "sys/auth")
    if "kubernetes/" not in (mounts.get("data") or mounts):
        bao.api("POST", "sys/auth/kubernetes", {"type": "kubernetes"})
    bao.api(
        "POST",
        "auth/kubernetes/config",
        {
            "kubernetes_host": server,
            "kubernetes_ca_cert": ca,
            "token_reviewer_jwt": reviewer_jwt,
            "disable_local_ca_jwt": True,
        },
    )
    bao.put_policy(f"{role}-policy", policy)
    bao.api(
        "POST",
        f"auth/kubernetes/role/{role}",
        {
            "bound_service_account_names": [SIDECAR_SA],
            "bound_service_account_namespaces": [CONTROLLER_NS],
            "audience": K8S_AUDIENCE,
            "token_policies": [f"{role}-policy"],
            "token_ttl": "1h",
        },
    )


def mint_sidecar_token(cluster: Cluster, path: Path) -> str:
    """What the kubelet would project into the sidecar's pod: a token of its ServiceAccount."""
    token = cluster.kubectl(
        "create", "token", SIDECAR_SA, "-n", CONTROLLER_NS,
        "--audience", K8S_AUDIENCE, "--duration", "1h",
    ).strip()  # fmt: skip
    path.write_text(token + "\n")
    return token


@pytest.fixture(scope="module")
def vault_e2e(
    stack: Stack, world: World, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[VaultE2E]:
    """Per module: a seeded Vault, the AppRole Secrets of the examples in `default`, the
    controller namespace and a running sidecar (stopped afterwards, by PID)."""
    world.seed()
    cluster = stack.cluster
    if cluster.get("namespace", CONTROLLER_NS) is None:
        cluster.kubectl("create", "namespace", CONTROLLER_NS)
    log_dir = tmp_path_factory.mktemp("vault-e2e")
    token_path = log_dir / "sa-token"
    token_path.write_text("")
    sidecar = SidecarProcess(cluster.kubeconfig, log_dir / "sidecar.log", token_path)
    env = VaultE2E(stack, world, sidecar, token_path)
    env.approle_secret("vault-approle", ROLE_ID, SECRET_ID)
    env.approle_secret("vault1-approle", ROLE_ID, SECRET_ID)
    env.approle_secret("vault2-approle", ROLE_ID_2, SECRET_ID_2)
    env.remember(ROLE_ID, SECRET_ID, ROLE_ID_2, SECRET_ID_2, world.bao.root_token)
    env.remember(world.bao2.root_token, world.pg.password)
    sidecar.start()
    try:
        yield env
    finally:
        sidecar.stop()
        for name in ("vault-approle", "vault1-approle", "vault2-approle"):
            cluster.kubectl("delete", "secret", name, "-n", "default", "--ignore-not-found")


@pytest.fixture
def ve(vault_e2e: VaultE2E) -> Iterator[VaultE2E]:
    """The module's Vault e2e environment; a sidecar killed by the previous test is restarted."""
    if not vault_e2e.sidecar.running():
        vault_e2e.sidecar.start()
    yield vault_e2e
    # The e2e fixture's cleanup (deleting the mirrors) needs a sidecar: a deleted mirror with a
    # lease waits for its revocation.
    if not vault_e2e.sidecar.running():
        vault_e2e.sidecar.start()


def random_text(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(8)}"
