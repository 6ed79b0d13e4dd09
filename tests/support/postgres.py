"""A real PostgreSQL server for tests (Debian's `postgresql` package, version 15).

`Postgres.start()` runs `initdb` into a temporary directory owned by the `postgres` user
(PostgreSQL refuses to run as root), then `postgres` itself listening on 127.0.0.1 at a free
port with fsync off, and waits until it accepts connections. The superuser `postgres` logs in
over TCP with a random password (scram-sha-256), which is what Vault's database engine uses.
`stop()` ends the server by PID (SIGINT: fast shutdown). `psql()` runs a statement as any
role, to prove that dynamic credentials work (or no longer do).
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

PG_BIN = Path(os.environ.get("MIRRORS_PG_BIN", "/usr/lib/postgresql/15/bin"))
_READY_TIMEOUT = 60.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ensure_installed() -> None:
    """Install Debian's postgresql when its binaries are missing (as root only)."""
    if (PG_BIN / "postgres").exists():
        return
    if os.geteuid() != 0:
        raise RuntimeError(f"PostgreSQL is not installed ({PG_BIN}); apt-get install postgresql")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update"], check=True, env=env)
    subprocess.run(
        ["apt-get", "install", "-y", "--no-install-recommends", "postgresql"],
        check=True,
        env=env,
    )
    if not (PG_BIN / "postgres").exists():
        raise RuntimeError(f"postgresql installed but {PG_BIN}/postgres is missing")


class Postgres:
    def __init__(self) -> None:
        self.password = secrets.token_hex(16)
        self.port = 0
        self.host = "127.0.0.1"
        self.superuser = "postgres"
        self.workdir = Path(tempfile.mkdtemp(prefix="mirrors-postgres-"))
        self.proc: subprocess.Popen[bytes] | None = None
        # PostgreSQL will not run as root: run it as the `postgres` system user.
        self._user: str | None = None
        if os.geteuid() == 0:
            self._user = "postgres"
            entry = pwd.getpwnam(self._user)
            os.chown(self.workdir, entry.pw_uid, entry.pw_gid)
        self.workdir.chmod(0o700)

    @property
    def datadir(self) -> Path:
        return self.workdir / "data"

    @property
    def log_path(self) -> Path:
        return self.workdir / "postgres.log"

    def start(self) -> Postgres:
        ensure_installed()
        pwfile = self.workdir / "pw"
        pwfile.write_text(self.password + "\n")
        if self._user:
            entry = pwd.getpwnam(self._user)
            os.chown(pwfile, entry.pw_uid, entry.pw_gid)
        subprocess.run(
            [
                str(PG_BIN / "initdb"),
                "-D",
                str(self.datadir),
                "-U",
                self.superuser,
                f"--pwfile={pwfile}",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ],
            check=True,
            capture_output=True,
            user=self._user,
            cwd=self.workdir,
        )
        pwfile.unlink()
        last = ""
        for _ in range(3):
            self.port = _free_port()
            try:
                self._spawn()
                return self
            except RuntimeError as exc:
                last = str(exc)
                self.stop()
        raise RuntimeError(f"PostgreSQL did not start: {last}")

    def _spawn(self) -> None:
        with self.log_path.open("ab") as log:
            if self._user:
                entry = pwd.getpwnam(self._user)
                os.chown(self.log_path, entry.pw_uid, entry.pw_gid)
            self.proc = subprocess.Popen(
                [
                    str(PG_BIN / "postgres"),
                    "-D",
                    str(self.datadir),
                    "-p",
                    str(self.port),
                    "-c",
                    f"listen_addresses={self.host}",
                    "-c",
                    f"unix_socket_directories={self.workdir}",
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                user=self._user,
                cwd=self.workdir,
                start_new_session=True,
            )
        deadline = time.monotonic() + _READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited: {self._log_tail()}")
            ready = subprocess.run(
                [str(PG_BIN / "pg_isready"), "-h", self.host, "-p", str(self.port), "-q"],
                check=False,
            )
            if ready.returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError(f"postgres not ready after {_READY_TIMEOUT}s: {self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT)  # fast shutdown
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def connection_url(self) -> str:
        """For Vault's postgresql-database-plugin (`{{username}}`/`{{password}}` templated)."""
        return f"postgresql://{{{{username}}}}:{{{{password}}}}@{self.host}:{self.port}/postgres"

    def psql(self, sql: str, *, user: str, password: str) -> subprocess.CompletedProcess[str]:
        """Run `sql` as `user` over TCP with a password; check returncode yourself."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["PGPASSWORD"] = password
        return subprocess.run(
            [
                str(PG_BIN / "psql"),
                "-h",
                self.host,
                "-p",
                str(self.port),
                "-U",
                user,
                "-d",
                "postgres",
                "-v",
                "ON_ERROR_STOP=1",
                "-tAc",
                sql,
            ],
            check=False,
            capture_output=True,
            text=True,
            env=env,
            timeout=30,
        )
