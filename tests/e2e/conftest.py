"""Fixtures of the end-to-end suite: a real API server, the real hooks, Metacontroller's part.

Local (default): `ControlPlane` (etcd + kube-apiserver + kube-controller-manager for garbage
collection and namespace deletion), `python -m hooks` on a free 127.0.0.1 port, and the test
driver (tests/e2e/driver, a CompositeController stand-in) in a thread.

Real cluster: with `MIRRORS_E2E_KUBECONFIG` set, that cluster is used as it is: no control plane
and no driver are started; the suite applies the CRD and the CompositeController with its hook
URLs set to `MIRRORS_E2E_HOOKS_URL` (where that cluster's Metacontroller reaches the hooks) and
serves the hooks locally on `MIRRORS_E2E_HOOKS_HOST`:`MIRRORS_E2E_HOOKS_PORT`. See docs/e2e.md.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pytest
import yaml

from mirrors import logs
from tests.e2e.driver import CompositeDriver, Kube, with_hooks_url
from tests.support.controlplane import ControlPlane, find_binaries, free_port
from tests.support.process import Service

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
CRD = ROOT / "crds" / "secretmirrors.mirrors.kts.studio.yaml"
CONTROLLER = ROOT / "metacontroller" / "compositecontroller.yaml"
CRD_NAME = "secretmirrors.mirrors.kts.studio"

T = TypeVar("T")


def eventually(
    fn: Callable[[], T], timeout: float = 30.0, what: str = "", interval: float = 0.1
) -> T:
    """Poll `fn` until it returns something truthy without raising AssertionError; return it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = fn()
            if value:
                return value
            last = f"last result: {value!r}"
        except AssertionError as exc:
            last = f"last failure: {exc}"
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what or fn}; {last}")
        time.sleep(interval)


@dataclass
class Cluster:
    kubeconfig: Path
    kubectl_bin: str

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        argv = [self.kubectl_bin, "--kubeconfig", str(self.kubeconfig), *args]
        res = subprocess.run(
            argv, input=stdin, capture_output=True, text=True, timeout=180, check=False
        )
        if check and res.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({res.returncode}):\n{res.stderr}{res.stdout}"
            )
        return res.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json"))

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        ns = ["-n", namespace] if namespace else []
        out = self.kubectl("get", kind, name, *ns, "--ignore-not-found", "-o", "json")
        return json.loads(out) if out.strip() else None

    def secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        secret = self.get("secret", name, namespace)
        if secret is None:
            return None
        return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}


class Hooks(Service):
    """`python -m hooks` as a subprocess, stopped and killed by PID."""

    def __init__(self, host: str, port: int, log_path: Path) -> None:
        super().__init__("hooks", log_path)
        self.host, self.port = host, port

    @property
    def local_url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        args = ["-m", "hooks", "--host", self.host, "--port", str(self.port)]
        self.spawn(args, ready_url=self.local_url + "/healthz", timeout=timeout)


@dataclass
class Stack:
    cluster: Cluster
    hooks: Hooks
    driver: CompositeDriver | None  # None: real Metacontroller does the driving
    log_dir: Path


@dataclass
class E2E:
    """What a test uses: the cluster, the hooks, and cleanup of what the test created."""

    stack: Stack
    mirrors: list[str] = field(default_factory=list)
    secrets: list[tuple[str, str]] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)

    @property
    def cluster(self) -> Cluster:
        return self.stack.cluster

    @property
    def hooks(self) -> Hooks:
        return self.stack.hooks

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        return self.cluster.kubectl(*args, stdin=stdin, check=check)

    def apply_example(self, filename: str) -> dict[str, Any]:
        """`kubectl apply -f examples/<filename>`, unchanged; remembered for cleanup."""
        path = EXAMPLES / filename
        manifest: dict[str, Any] = yaml.safe_load(path.read_text())
        self.kubectl("apply", "-f", str(path))
        meta = manifest["metadata"]
        if manifest["kind"] == "SecretMirror":
            self.mirrors.append(meta["name"])
        elif manifest["kind"] == "Secret":
            self.secrets.append((meta.get("namespace", "default"), meta["name"]))
        return manifest

    def create_namespace(self, name: str, labels: dict[str, str] | None = None) -> float:
        """`kubectl create ns`; returns the time.monotonic() just before the call."""
        self.namespaces.append(name)
        started = time.monotonic()
        self.kubectl("create", "namespace", name)
        if labels:
            self.kubectl("label", "namespace", name, *(f"{k}={v}" for k, v in labels.items()))
        return started

    def track_secret(self, namespace: str, name: str) -> None:
        self.secrets.append((namespace, name))

    def mirror(self, name: str) -> dict[str, Any]:
        obj = self.cluster.get("secretmirror", name)
        assert obj is not None, f"secretmirror {name} not found"
        return obj

    def status(self, name: str) -> dict[str, Any]:
        return dict(self.mirror(name).get("status") or {})

    def copy_data(self, namespace: str, name: str) -> dict[str, str] | None:
        return self.cluster.secret_data(namespace, name)

    def cleanup(self) -> None:
        if not self.hooks.running():
            self.hooks.start()
        for name in reversed(self.mirrors):
            self.kubectl("delete", "secretmirror", name, "--ignore-not-found", "--timeout=90s")
        for ns, name in self.secrets:
            self.kubectl("delete", "secret", name, "-n", ns, "--ignore-not-found")
        if self.namespaces:
            self.kubectl(
                "delete", "namespace", *self.namespaces, "--ignore-not-found", "--timeout=120s"
            )


def _kubectl_for_real_cluster() -> str:
    explicit = os.environ.get("MIRRORS_E2E_KUBECTL", "").strip()
    return explicit or shutil.which("kubectl") or str(find_binaries() / "kubectl")


def _install(cluster: Cluster) -> None:
    cluster.kubectl("apply", "-f", str(CRD))
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", f"crd/{CRD_NAME}")


def _driver_logs(log_dir: Path) -> logging.Handler:
    handler = logging.FileHandler(log_dir / "driver.log")
    handler.setFormatter(logs.JSONFormatter())
    logger = logging.getLogger("e2e.driver")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    return handler


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    log_dir = tmp_path_factory.mktemp("e2e-logs")
    controller = yaml.safe_load(CONTROLLER.read_text())
    kubeconfig = os.environ.get("MIRRORS_E2E_KUBECONFIG", "").strip()
    if kubeconfig:
        hooks_url = os.environ.get("MIRRORS_E2E_HOOKS_URL", "").strip()
        if not hooks_url:
            raise RuntimeError(
                "MIRRORS_E2E_KUBECONFIG needs MIRRORS_E2E_HOOKS_URL (see docs/e2e.md)"
            )
        port = os.environ.get("MIRRORS_E2E_HOOKS_PORT") or urlsplit(hooks_url).port or 8080
        hooks = Hooks(
            os.environ.get("MIRRORS_E2E_HOOKS_HOST", "127.0.0.1"), int(port), log_dir / "hooks.log"
        )
        cluster = Cluster(Path(kubeconfig).expanduser(), _kubectl_for_real_cluster())
        _install(cluster)
        hooks.start()
        cluster.kubectl("apply", "-f", "-", stdin=json.dumps(with_hooks_url(controller, hooks_url)))
        try:
            yield Stack(cluster, hooks, None, log_dir)
        finally:
            hooks.stop()
        return
    # Local: fails (never skips) with the build error when the binaries can't be had.
    bin_dir = find_binaries()
    with ControlPlane(bin_dir, controller_manager=True) as cp:
        cluster = Cluster(cp.kubeconfig, str(bin_dir / "kubectl"))
        _install(cluster)
        hooks = Hooks("127.0.0.1", free_port(), log_dir / "hooks.log")
        hooks.start()
        handler = _driver_logs(log_dir)
        driver = CompositeDriver(Kube(cp.kubeconfig), with_hooks_url(controller, hooks.local_url))
        try:
            with driver:
                yield Stack(cluster, hooks, driver, log_dir)
        finally:
            hooks.stop()
            logging.getLogger("e2e.driver").removeHandler(handler)


@pytest.fixture
def e2e(stack: Stack) -> Iterator[E2E]:
    env = E2E(stack)
    try:
        yield env
    finally:
        env.cleanup()
