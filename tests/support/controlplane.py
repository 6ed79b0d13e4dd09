"""A real, node-less Kubernetes control plane for tests (envtest style).

``ControlPlane`` starts ``etcd``, ``kube-apiserver`` and (optionally)
``kube-controller-manager`` from the binaries built by ``hack/build-tools.sh``,
all on 127.0.0.1 with free ports and a throw-away working directory, and writes
an admin kubeconfig (user ``mirrors-admin`` in ``system:masters``). Authorization
is real RBAC, service-account tokens are signed by a real key, so TokenRequest,
TokenReview, impersonation, namespace finalization and garbage collection behave
as in a cluster. There are no nodes: pods are never scheduled or run.

``existing_cluster()`` returns ``$KUBECONFIG_E2E`` (or ``$MIRRORS_E2E_KUBECONFIG``)
when the tests should run against a cluster that already exists (then nothing is
started).

See docs/controlplane.md.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "hack" / "build-tools.sh"
REQUIRED_BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kubectl", "helm")

#: Controllers run by kube-controller-manager: enough for namespace deletion to
#: finalize, ownerReference garbage collection, the ``default`` ServiceAccount in
#: every namespace, legacy service-account-token Secrets, and the aggregated
#: ClusterRoles (admin/edit/view are empty until clusterrole-aggregation fills them).
#: TokenRequest itself is served by kube-apiserver and needs no controller.
DEFAULT_CONTROLLERS = (
    "namespace-controller",
    "garbage-collector-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "clusterrole-aggregation-controller",
)

SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
ADMIN_USER = "mirrors-admin"
_LOG_TAIL_LINES = 40
_PORT_RETRIES = 3


class ControlPlaneError(RuntimeError):
    """The control plane (or its binaries) could not be provided."""


def existing_cluster() -> Path | None:
    """Kubeconfig of an existing cluster to test against, if one is configured.

    ``$KUBECONFIG_E2E`` or ``$MIRRORS_E2E_KUBECONFIG`` (the name tests/e2e/conftest.py
    uses); then nothing is started.
    """
    for var in ("KUBECONFIG_E2E", "MIRRORS_E2E_KUBECONFIG"):
        value = os.environ.get(var, "").strip()
        if value:
            path = Path(value).expanduser()
            if not path.is_file():
                raise ControlPlaneError(f"{var}={value!r} is not a file")
            return path
    return None


def find_binaries() -> Path:
    """Directory holding the control-plane binaries.

    ``$MIRRORS_TOOLS_BIN`` if set, else the last stdout line of
    ``hack/build-tools.sh`` (which builds whatever is missing; the first run takes
    a long time). Raises ``ControlPlaneError`` with the build error otherwise.
    """
    env = os.environ.get("MIRRORS_TOOLS_BIN", "").strip()
    if env:
        return _check_bin_dir(Path(env).expanduser(), "MIRRORS_TOOLS_BIN")
    proc = subprocess.Popen(
        ["bash", str(BUILD_SCRIPT)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    progress: list[str] = []
    # Progress goes to stderr (forwarded live); stdout is one line, so no deadlock.
    for line in proc.stderr:
        progress.append(line)
        sys.stderr.write(line)
        sys.stderr.flush()
    out = proc.stdout.read()
    rc = proc.wait()
    if rc != 0:
        raise ControlPlaneError(
            f"{BUILD_SCRIPT} failed (exit {rc}); cannot provide the control-plane binaries:\n"
            + "".join(progress[-_LOG_TAIL_LINES:])
        )
    lines = out.strip().splitlines()
    if not lines:
        raise ControlPlaneError(f"{BUILD_SCRIPT} printed no bin directory")
    return _check_bin_dir(Path(lines[-1]), str(BUILD_SCRIPT))


def _check_bin_dir(path: Path, source: str) -> Path:
    missing = [b for b in REQUIRED_BINARIES if not os.access(path / b, os.X_OK)]
    if missing:
        raise ControlPlaneError(f"{source}: {path} lacks executable(s): {', '.join(missing)}")
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def log_tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"
    return "\n".join(text.splitlines()[-lines:])


class _Proc:
    """One child process with its log file."""

    def __init__(self, name: str, argv: Sequence[str], log: Path, env: Mapping[str, str]) -> None:
        self.name = name
        self.log = log
        with log.open("wb") as fh:  # one attempt per log
            fh.write(("$ " + " ".join(argv) + "\n").encode())
            fh.flush()
            self.popen = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=fh,
                stderr=subprocess.STDOUT,
                env=dict(env),
                start_new_session=True,  # keep terminal signals away; we stop it ourselves
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def exited(self) -> int | None:
        return self.popen.poll()

    def port_clash(self) -> bool:
        return "address already in use" in log_tail(self.log, 200)

    def stop(self, timeout: float = 15.0) -> None:
        if self.popen.poll() is not None:
            return
        self.popen.terminate()
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(10)


class ControlPlane:
    """etcd + kube-apiserver (+ kube-controller-manager) on 127.0.0.1.

    Use as a context manager, or call ``start()`` / ``stop()``. After ``start()``:
    ``kubeconfig`` (admin, client certificate in ``system:masters``), ``server``
    (https URL), ``ca_file``, ``admin_token`` (a static bearer token for the same
    admin identity), ``sa_signing_key_file`` / ``sa_public_key_file`` and
    ``workdir`` (logs: ``<name>.log``).
    """

    def __init__(
        self,
        bin_dir: Path | None = None,
        *,
        controller_manager: bool = True,
        controllers: Sequence[str] = DEFAULT_CONTROLLERS,
        extra_apiserver_args: Sequence[str] = (),
        start_timeout: float = 120.0,
        keep_workdir: bool | None = None,
    ) -> None:
        self._bin_dir = bin_dir
        self.controller_manager = controller_manager
        self.controllers = tuple(controllers)
        self.extra_apiserver_args = tuple(extra_apiserver_args)
        self.start_timeout = start_timeout
        if keep_workdir is None:
            keep_workdir = os.environ.get("MIRRORS_KEEP_CONTROLPLANE_DIR", "") not in ("", "0")
        self.keep_workdir = keep_workdir
        self._procs: list[_Proc] = []
        self._workdir: Path | None = None
        self._server: str | None = None
        self._admin_token = base64.urlsafe_b64encode(os.urandom(24)).decode().rstrip("=")
        self._etcd_url = ""
        self._ssl: ssl.SSLContext | None = None

    # -- public attributes -------------------------------------------------

    @property
    def workdir(self) -> Path:
        if self._workdir is None:
            raise ControlPlaneError("control plane not started")
        return self._workdir

    @property
    def bin_dir(self) -> Path:
        if self._bin_dir is None:
            self._bin_dir = find_binaries()
        return self._bin_dir

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "admin.kubeconfig"

    @property
    def server(self) -> str:
        if self._server is None:
            raise ControlPlaneError("control plane not started")
        return self._server

    @property
    def ca_file(self) -> Path:
        return self.workdir / "pki" / "ca.crt"

    @property
    def sa_signing_key_file(self) -> Path:
        return self.workdir / "pki" / "sa.key"

    @property
    def sa_public_key_file(self) -> Path:
        return self.workdir / "pki" / "sa.pub"

    @property
    def admin_token(self) -> str:
        return self._admin_token

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs]

    # -- lifecycle ---------------------------------------------------------

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        if self._workdir is not None:
            raise ControlPlaneError("control plane already started")
        bin_dir = self.bin_dir
        self._workdir = Path(tempfile.mkdtemp(prefix="mirrors-cp-"))
        atexit.register(self.stop)
        try:
            self._make_pki()
            self._start_etcd(bin_dir)
            self._start_apiserver(bin_dir)
            self._write_kubeconfig()
            if self.controller_manager:
                self._start_controller_manager(bin_dir)
            self._wait_for_defaults()
        except BaseException:
            self._stop(keep_logs=True)
            raise

    def stop(self) -> None:
        """Stop every process this object started (by PID, newest first); remove the workdir."""
        self._stop(keep_logs=False)

    def _stop(self, *, keep_logs: bool) -> None:
        atexit.unregister(self.stop)
        while self._procs:
            proc = self._procs.pop()
            proc.stop()
        if self._workdir is not None:
            if self.keep_workdir:
                sys.stderr.write(f"control plane workdir kept: {self._workdir}\n")
            elif keep_logs:  # failed start: keep the logs the error message points to
                shutil.rmtree(self._workdir / "etcd-data", ignore_errors=True)
                sys.stderr.write(f"control plane start failed; logs kept in {self._workdir}\n")
            else:
                shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
        self._server = None

    # -- helpers for tests -------------------------------------------------

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run ``kubectl --kubeconfig <admin> ARGS``; raise with stderr when ``check`` fails."""
        argv = [str(self.bin_dir / "kubectl"), "--kubeconfig", str(self.kubeconfig), *args]
        res = subprocess.run(
            argv, input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and res.returncode != 0:
            raise ControlPlaneError(
                f"kubectl {' '.join(args)} failed (exit {res.returncode}):\n"
                f"{res.stderr}{res.stdout}"
            )
        return res

    def get(self, path: str, token: str | None = None) -> tuple[int, bytes]:
        """GET ``path`` from the apiserver as admin (or with ``token``): (status, body)."""
        return self._https_get(self.server + path, token or self._admin_token)

    # -- internals ---------------------------------------------------------

    def _child_env(self) -> dict[str, str]:
        # etcd reads ETCD_*; never let the caller's KUBECONFIG leak into the components.
        return {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("ETCD_") and k not in ("KUBECONFIG", "HTTPS_PROXY", "https_proxy")
        } | {"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}

    def _spawn(self, name: str, argv: Sequence[str]) -> _Proc:
        proc = _Proc(name, argv, self.workdir / f"{name}.log", self._child_env())
        self._procs.append(proc)
        return proc

    def _openssl(self, *args: str) -> None:
        res = subprocess.run(
            ["openssl", *args],
            capture_output=True,
            text=True,
            cwd=self.workdir / "pki",
            check=False,
        )
        if res.returncode != 0:
            raise ControlPlaneError(f"openssl {' '.join(args)} failed:\n{res.stderr}")

    def _make_pki(self) -> None:
        pki = self.workdir / "pki"
        pki.mkdir(mode=0o700)
        ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes")
        self._openssl(
            "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "3650",
            "-subj", "/CN=mirrors-test-ca",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
        )  # fmt: skip
        sans = ",".join(
            [
                "IP:127.0.0.1",
                "IP:10.0.0.1",
                "DNS:localhost",
                "DNS:kubernetes",
                "DNS:kubernetes.default",
                "DNS:kubernetes.default.svc",
                "DNS:kubernetes.default.svc.cluster.local",
            ]
        )
        # openssl >= 3.0: `req -x509 -CA` signs with the CA directly.
        self._openssl(
            "req", "-x509", *ec, "-CA", "ca.crt", "-CAkey", "ca.key",
            "-keyout", "apiserver.key", "-out", "apiserver.crt", "-days", "365",
            "-subj", "/CN=kube-apiserver",
            "-addext", f"subjectAltName={sans}",
            "-addext", "basicConstraints=critical,CA:FALSE",
            "-addext", "keyUsage=critical,digitalSignature,keyEncipherment",
            "-addext", "extendedKeyUsage=serverAuth",
        )  # fmt: skip
        self._openssl(
            "req", "-x509", *ec, "-CA", "ca.crt", "-CAkey", "ca.key",
            "-keyout", "admin.key", "-out", "admin.crt", "-days", "365",
            "-subj", f"/O=system:masters/CN={ADMIN_USER}",
            "-addext", "basicConstraints=critical,CA:FALSE",
            "-addext", "keyUsage=critical,digitalSignature,keyEncipherment",
            "-addext", "extendedKeyUsage=clientAuth",
        )  # fmt: skip
        # Front proxy (aggregation layer): its own CA and client cert. Without the
        # requestheader flags, kube-controller-manager logs "missing content for CA
        # bundle ... requestheader-client-ca-file" every few seconds.
        self._openssl(
            "req", "-x509", *ec, "-keyout", "front-proxy-ca.key", "-out", "front-proxy-ca.crt",
            "-days", "3650", "-subj", "/CN=mirrors-test-front-proxy-ca",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
        )  # fmt: skip
        self._openssl(
            "req", "-x509", *ec, "-CA", "front-proxy-ca.crt", "-CAkey", "front-proxy-ca.key",
            "-keyout", "front-proxy-client.key", "-out", "front-proxy-client.crt",
            "-days", "365", "-subj", "/CN=front-proxy-client",
            "-addext", "basicConstraints=critical,CA:FALSE",
            "-addext", "keyUsage=critical,digitalSignature,keyEncipherment",
            "-addext", "extendedKeyUsage=clientAuth",
        )  # fmt: skip
        # RSA like real clusters (RS256 service-account tokens).
        self._openssl(
            "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "sa.key"
        )
        self._openssl("pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub")
        (pki / "tokens.csv").write_text(
            f'{self._admin_token},{ADMIN_USER},{ADMIN_USER},"system:masters"\n'
        )
        self._ssl = ssl.create_default_context(cafile=str(pki / "ca.crt"))

    def _start_with_port_retry(
        self, name: str, launch: Callable[[], _Proc], ready: Callable[[], bool]
    ) -> None:
        for _attempt in range(_PORT_RETRIES):
            proc = launch()
            if self._wait(proc, ready):
                return
            self._procs.remove(proc)  # died of a port clash: pick new ports
        raise ControlPlaneError(
            f"{name} hit 'address already in use' {_PORT_RETRIES} times; last lines of "
            f"{proc.log}:\n{log_tail(proc.log)}"
        )

    def _wait(self, proc: _Proc, ready: Callable[[], bool]) -> bool:
        """True when ready; False if the process died from a port clash; raise otherwise."""
        deadline = time.monotonic() + self.start_timeout
        while True:
            rc = proc.exited()
            if rc is not None:
                if proc.port_clash():
                    return False
                raise ControlPlaneError(
                    f"{proc.name} exited with code {rc} during start-up; last lines of "
                    f"{proc.log}:\n{log_tail(proc.log)}"
                )
            if ready():
                return True
            if time.monotonic() > deadline:
                raise ControlPlaneError(
                    f"{proc.name} (pid {proc.pid}) not ready after {self.start_timeout:.0f}s; "
                    f"last lines of {proc.log}:\n{log_tail(proc.log)}"
                )
            time.sleep(0.2)

    def _start_etcd(self, bin_dir: Path) -> None:
        def launch() -> _Proc:
            client, peer = free_port(), free_port()
            self._etcd_url = f"http://127.0.0.1:{client}"
            peer_url = f"http://127.0.0.1:{peer}"
            return self._spawn(
                "etcd",
                [
                    str(bin_dir / "etcd"),
                    "--name=mirrors-test",
                    f"--data-dir={self.workdir / 'etcd-data'}",
                    f"--listen-client-urls={self._etcd_url}",
                    f"--advertise-client-urls={self._etcd_url}",
                    f"--listen-peer-urls={peer_url}",
                    f"--initial-advertise-peer-urls={peer_url}",
                    f"--initial-cluster=mirrors-test={peer_url}",
                    "--initial-cluster-state=new",
                    "--unsafe-no-fsync",
                    "--log-level=warn",
                ],
            )

        def ready() -> bool:
            status, body = self._http_get(self._etcd_url + "/health")
            return status == 200 and b'"health":"true"' in body

        self._start_with_port_retry("etcd", launch, ready)

    def _start_apiserver(self, bin_dir: Path) -> None:
        pki = self.workdir / "pki"

        def launch() -> _Proc:
            port = free_port()
            self._server = f"https://127.0.0.1:{port}"
            return self._spawn(
                "kube-apiserver",
                [
                    str(bin_dir / "kube-apiserver"),
                    f"--etcd-servers={self._etcd_url}",
                    "--bind-address=127.0.0.1",
                    "--advertise-address=127.0.0.1",
                    f"--secure-port={port}",
                    f"--cert-dir={self.workdir / 'apiserver-certs'}",
                    f"--tls-cert-file={pki / 'apiserver.crt'}",
                    f"--tls-private-key-file={pki / 'apiserver.key'}",
                    f"--client-ca-file={pki / 'ca.crt'}",
                    f"--token-auth-file={pki / 'tokens.csv'}",
                    f"--service-account-key-file={pki / 'sa.pub'}",
                    f"--service-account-signing-key-file={pki / 'sa.key'}",
                    f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
                    "--authorization-mode=RBAC",
                    f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
                    # 127.0.0.1 is not a valid Endpoints address: do not reconcile the
                    # `kubernetes` Service endpoints (else an error every 10 s).
                    "--endpoint-reconciler-type=none",
                    f"--requestheader-client-ca-file={pki / 'front-proxy-ca.crt'}",
                    "--requestheader-allowed-names=front-proxy-client",
                    "--requestheader-username-headers=X-Remote-User",
                    "--requestheader-group-headers=X-Remote-Group",
                    "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                    f"--proxy-client-cert-file={pki / 'front-proxy-client.crt'}",
                    f"--proxy-client-key-file={pki / 'front-proxy-client.key'}",
                    "--allow-privileged=true",
                    "--profiling=false",
                    *self.extra_apiserver_args,
                ],
            )

        def ready() -> bool:
            status, _ = self._https_get(self.server + "/readyz", self._admin_token)
            return status == 200

        self._start_with_port_retry("kube-apiserver", launch, ready)

    def _write_kubeconfig(self) -> None:
        pki = self.workdir / "pki"

        def b64(name: str) -> str:
            return base64.b64encode((pki / name).read_bytes()).decode()

        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "mirrors-test",
                    "cluster": {
                        "server": self.server,
                        "certificate-authority-data": b64("ca.crt"),
                    },
                }
            ],
            "users": [
                {
                    "name": ADMIN_USER,
                    "user": {
                        "client-certificate-data": b64("admin.crt"),
                        "client-key-data": b64("admin.key"),
                    },
                }
            ],
            "contexts": [
                {
                    "name": "mirrors-test",
                    "context": {"cluster": "mirrors-test", "user": ADMIN_USER},
                }
            ],
            "current-context": "mirrors-test",
        }
        # JSON is valid YAML: kubectl, helm and the Python client all read it.
        self.kubeconfig.write_text(json.dumps(config, indent=2) + "\n")
        self.kubeconfig.chmod(0o600)

    def _start_controller_manager(self, bin_dir: Path) -> None:
        pki = self.workdir / "pki"
        kcm_port = 0

        def launch() -> _Proc:
            nonlocal kcm_port
            kcm_port = free_port()
            return self._spawn(
                "kube-controller-manager",
                [
                    str(bin_dir / "kube-controller-manager"),
                    f"--kubeconfig={self.kubeconfig}",
                    f"--authentication-kubeconfig={self.kubeconfig}",
                    f"--authorization-kubeconfig={self.kubeconfig}",
                    "--bind-address=127.0.0.1",
                    f"--secure-port={kcm_port}",
                    f"--cert-dir={self.workdir / 'kcm-certs'}",
                    "--leader-elect=false",
                    f"--controllers={','.join(self.controllers)}",
                    f"--service-account-private-key-file={pki / 'sa.key'}",
                    f"--root-ca-file={pki / 'ca.crt'}",
                    "--use-service-account-credentials=false",
                    "--profiling=false",
                ],
            )

        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE  # KCM serves a self-signed cert

        def ready() -> bool:
            status, _ = self._http_get(f"https://127.0.0.1:{kcm_port}/healthz", ctx=insecure)
            return status == 200

        self._start_with_port_retry("kube-controller-manager", launch, ready)

    def _wait_for_defaults(self) -> None:
        """The ``default`` namespace (apiserver) and its ServiceAccount (KCM) exist."""
        paths = ["/api/v1/namespaces/default"]
        if self.controller_manager and "serviceaccount-controller" in self.controllers:
            paths.append("/api/v1/namespaces/default/serviceaccounts/default")
        deadline = time.monotonic() + self.start_timeout
        for path in paths:
            while (status := self.get(path)[0]) != 200:
                if time.monotonic() > deadline:
                    logs = "\n".join(f"--- {p.log}:\n{log_tail(p.log, 15)}" for p in self._procs)
                    raise ControlPlaneError(
                        f"GET {path} still returns {status} after {self.start_timeout:.0f}s\n{logs}"
                    )
                time.sleep(0.2)

    def _https_get(self, url: str, token: str) -> tuple[int, bytes]:
        return self._http_get(url, headers={"Authorization": f"Bearer {token}"}, ctx=self._ssl)

    @staticmethod
    def _http_get(
        url: str, headers: Mapping[str, str] | None = None, ctx: ssl.SSLContext | None = None
    ) -> tuple[int, bytes]:
        req = urllib.request.Request(url, headers=dict(headers or {}))
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ctx)
        )
        try:
            with opener.open(req, timeout=5) as resp:
                body: bytes = resp.read()
                return int(resp.status), body
        except urllib.error.HTTPError as exc:
            with contextlib.closing(exc):
                return exc.code, exc.read()
        except (urllib.error.URLError, OSError):
            return 0, b""
