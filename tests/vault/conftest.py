"""Fixtures for the Vault core tests: real OpenBao servers and a real PostgreSQL.

Servers are session-scoped (one start each); every test creates its own mounts, policies and
roles under unique names (`unique()`), so tests stay independent and can run in any order.
The environment is scrubbed of VAULT_*/BAO_* and HOME points at an empty directory, because
hvac falls back to VAULT_ADDR, VAULT_TOKEN and ~/.vault-token.
"""

from __future__ import annotations

import itertools
import os
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from sidecar.vault import Clients, Connection, Credentials
from tests.support.openbao import OpenBao
from tests.support.postgres import Postgres

_counter = itertools.count(1)
_run = secrets.token_hex(2)


def unique(prefix: str) -> str:
    return f"{prefix}{_run}x{next(_counter)}"


def now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture(scope="session", autouse=True)
def _scrub_vault_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    saved = {k: v for k, v in os.environ.items() if k.startswith(("VAULT_", "BAO_"))}
    home = os.environ.get("HOME")
    for key in saved:
        del os.environ[key]
    os.environ["HOME"] = str(tmp_path_factory.mktemp("home"))
    yield
    os.environ.update(saved)
    if home is not None:
        os.environ["HOME"] = home


def _server(**kwargs: bool) -> Iterator[OpenBao]:
    server = OpenBao(**kwargs).start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def bao(_scrub_vault_env: None) -> Iterator[OpenBao]:
    """The main OpenBao server (shared: use unique mounts)."""
    yield from _server()


@pytest.fixture(scope="session")
def bao2(_scrub_vault_env: None) -> Iterator[OpenBao]:
    """A second OpenBao server, for Vault -> Vault."""
    yield from _server()


@pytest.fixture
def bao_own(_scrub_vault_env: None) -> Iterator[OpenBao]:
    """A server of the test's own, which it may stop and restart."""
    yield from _server()


@pytest.fixture(scope="session")
def bao_tls(_scrub_vault_env: None) -> Iterator[OpenBao]:
    yield from _server(tls=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    server = Postgres().start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def clients() -> Clients:
    return Clients()


def root(server: OpenBao, namespace: str = "") -> tuple[Connection, Credentials]:
    return Connection(addr=server.addr, namespace=namespace), Credentials(
        method="token", token=server.root_token
    )


def kv_policy(mount: str, *, write: bool = False) -> str:
    caps = '["create", "update", "read"]' if write else '["read"]'
    return (
        f'path "{mount}/*" {{ capabilities = {caps} }}\n'
        f'path "{mount}/data/*" {{ capabilities = {caps} }}\n'
    )


def approle_identity(
    server: OpenBao,
    mounts: list[str],
    *,
    write: bool = False,
    namespace: str = "",
    token_ttl: str = "1h",
) -> tuple[Connection, Credentials]:
    """An AppRole whose policy reads (and optionally writes) the given mounts only."""
    policy = unique("pol")
    server.put_policy(
        policy, "".join(kv_policy(m, write=write) for m in mounts), namespace=namespace
    )
    role_id, secret_id = server.approle(
        unique("role"), [policy], token_ttl=token_ttl, namespace=namespace
    )
    return Connection(addr=server.addr, namespace=namespace), Credentials(
        method="approle", role_id=role_id, secret_id=secret_id
    )
