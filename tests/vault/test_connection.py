"""Connections: Vault down and back, TLS, Vault namespaces, Vault -> Vault."""

from __future__ import annotations

import time

import pytest

from sidecar.vault import (
    Clients,
    Connection,
    Credentials,
    VaultError,
    read_source,
    revoke,
    write_destination,
)
from tests.support.openbao import OpenBao
from tests.support.postgres import Postgres
from tests.vault.conftest import approle_identity, now, root, unique
from tests.vault.test_dynamic import can_login, database_engine, sleep_until

pytestmark = pytest.mark.vault

ROLE_ID = "6a1f0c1e-0000-4000-8000-000000000001"
SECRET_ID = "6a1f0c1e-0000-4000-8000-000000000002"


def seed_restartable(server: OpenBao) -> None:
    """Everything the restart test needs, with fixed AppRole credentials (dev mode forgets
    all on restart, so this runs again afterwards and yields the same identity)."""
    server.enable_kv("app", 2)
    server.api("POST", "app/data/config", {"data": {"password": "test", "user": "admin"}})
    server.put_policy(
        "reader",
        'path "app/data/*" { capabilities = ["read", "create", "update"] }\n'
        'path "db/creds/*" { capabilities = ["read"] }\n',
    )
    server.api("POST", "sys/auth/approle", {"type": "approle"})
    server.api("POST", "auth/approle/role/sidecar", {"token_policies": ["reader"]})
    server.api("POST", "auth/approle/role/sidecar/role-id", {"role_id": ROLE_ID})
    server.api("POST", "auth/approle/role/sidecar/custom-secret-id", {"secret_id": SECRET_ID})


def test_vault_down_then_back(bao_own: OpenBao, postgres: Postgres) -> None:
    seed_restartable(bao_own)
    db = database_engine(bao_own, postgres, default_ttl=60)  # uses its own mount name
    conn = Connection(addr=bao_own.addr, timeout=5)
    creds = Credentials(method="approle", role_id=ROLE_ID, secret_id=SECRET_ID)
    clients = Clients()

    published, state = read_source(clients, conn, creds, "/app/data/config", None, now=now())
    assert published == {"password": b"test", "user": b"admin"}
    lease_data, lease = read_source(clients, db.conn, db.creds, db.path, None, now=now())

    bao_own.stop()
    started = time.monotonic()
    with pytest.raises(VaultError) as caught:
        published, state = read_source(clients, conn, creds, "app/config", state, now=now())
    assert caught.value.reason == "VaultUnreachable"
    assert time.monotonic() - started < 15  # bounded retries
    with pytest.raises(VaultError) as caught:
        write_destination(clients, conn, creds, "app/other", {"a": b"1"}, None, now=now())
    assert caught.value.reason == "VaultUnreachable"
    sleep_until(lease, poll_period=1)
    with pytest.raises(VaultError) as caught:  # a due renewal: reported, nothing re-read
        read_source(
            clients, db.conn, db.creds, db.path, lease, now=now(), previous_data=lease_data,
            poll_period=1,
        )  # fmt: skip
    assert caught.value.reason == "VaultUnreachable"
    # The caller still has the last good data.
    assert published == {"password": b"test", "user": b"admin"}
    assert can_login(postgres, lease_data)

    bao_own.start()  # same port, empty (dev mode)
    with pytest.raises(VaultError) as caught:
        read_source(clients, conn, creds, "app/config", state, now=now())
    assert caught.value.reason in {"VaultAuthFailed", "VaultNotFound"}

    seed_restartable(bao_own)
    data, after = read_source(clients, conn, creds, "app/config", state, now=now())
    assert data == published
    assert after.dataVersion == state.dataVersion  # same content: no data change
    # The dynamic source: the old lease is unknown to the new server, so new credentials.
    db_again = database_engine(bao_own, postgres, default_ttl=60)
    moved = db_again.path
    new_data, new_lease = read_source(
        clients, db_again.conn, db_again.creds, moved, None, now=now(), poll_period=1
    )
    assert can_login(postgres, new_data)
    revoke(clients, db_again.conn, db_again.creds, new_lease.leaseId)


def test_tls_ca_insecure_and_server_name(bao_tls: OpenBao) -> None:
    mount = unique("kv")
    bao_tls.enable_kv(mount, 2)
    bao_tls.api("POST", f"{mount}/data/t", {"data": {"k": "v"}})
    creds = Credentials(method="token", token=bao_tls.root_token)
    path = f"{mount}/t"
    clients = Clients()
    for conn in (
        Connection(addr=bao_tls.addr, ca_pem=bao_tls.ca_pem),
        Connection(addr=bao_tls.addr, insecure_skip_verify=True),
        Connection(addr=bao_tls.addr, ca_pem=bao_tls.ca_pem, server_name="localhost"),
    ):
        data, _ = read_source(clients, conn, creds, path, None, now=now())
        assert data == {"k": b"v"}
    for conn in (
        Connection(addr=bao_tls.addr, retries=0),  # the system CAs do not know this one
        Connection(addr=bao_tls.addr, ca_pem=bao_tls.ca_pem, server_name="wrong.example"),
    ):
        with pytest.raises(VaultError) as caught:
            read_source(clients, conn, creds, path, None, now=now())
        assert caught.value.reason == "VaultUnreachable"
        assert "TLS" in caught.value.message


def test_vault_namespace(bao: OpenBao, clients: Clients) -> None:
    namespace = unique("team")
    bao.api("POST", f"sys/namespaces/{namespace}")
    mount = unique("kv")
    bao.enable_kv(mount, 2, namespace=namespace)
    bao.api("POST", f"{mount}/data/s", {"data": {"who": namespace}}, namespace=namespace)
    conn, creds = approle_identity(bao, [mount], write=True, namespace=namespace)
    assert conn.namespace == namespace

    data, state = read_source(clients, conn, creds, f"{mount}/s", None, now=now())
    assert data == {"who": namespace.encode()}
    assert state.kvVersion == 2
    written = write_destination(clients, conn, creds, f"{mount}/w", {"a": b"1"}, None, now=now())
    assert written.secretVersion == 1
    answer = bao.api("GET", f"{mount}/data/w", namespace=namespace)
    assert answer["data"]["data"] == {"a": "1"}

    # The same path outside the namespace does not exist.
    with pytest.raises(VaultError) as caught:
        read_source(clients, *root(bao), f"{mount}/s", None, now=now())
    assert caught.value.reason == "VaultNotFound"
    # The namespace may also lead the path (root token, no namespace header).
    data, _ = read_source(clients, *root(bao), f"{namespace}/{mount}/s", None, now=now())
    assert data == {"who": namespace.encode()}


def test_vault_to_vault(bao: OpenBao, bao2: OpenBao, postgres: Postgres, clients: Clients) -> None:
    source_mount = unique("src")
    bao.enable_kv(source_mount, 2)
    value = {"password": "test", "token": "dGVzdA==", "note": "ünïcödé"}
    bao.api("POST", f"{source_mount}/data/app", {"data": value})
    src_conn, src_creds = approle_identity(bao, [source_mount])

    dest_mount = unique("dst")
    bao2.enable_kv(dest_mount, 1)
    policy = unique("pol")
    bao2.put_policy(policy, f'path "{dest_mount}/*" {{ capabilities = ["create", "update"] }}')
    dst_conn = Connection(addr=bao2.addr)
    dst_creds = Credentials(method="token", token=bao2.token([policy]))

    data, source_state = read_source(clients, src_conn, src_creds, f"/{source_mount}/data/app",
                                     None, now=now())  # fmt: skip
    written = write_destination(
        clients, dst_conn, dst_creds, f"{dest_mount}/copy", data, None, now=now()
    )
    assert written.contentHash == source_state.contentHash
    assert bao2.api("GET", f"{dest_mount}/copy")["data"] == value
    # Nothing changed on the source: nothing written on the destination.
    data, source_state = read_source(clients, src_conn, src_creds, f"{source_mount}/app",
                                     source_state, now=now())  # fmt: skip
    assert (
        write_destination(
            clients, dst_conn, dst_creds, f"{dest_mount}/copy", data, written, now=now()
        )
        is written
    )

    # Dynamic credentials from one Vault into the KV of another.
    db = database_engine(bao, postgres, default_ttl=60)
    creds_data, lease = read_source(clients, db.conn, db.creds, db.path, None, now=now())
    write_destination(clients, dst_conn, dst_creds, f"{dest_mount}/db", creds_data, None, now=now())
    copied = bao2.api("GET", f"{dest_mount}/db")["data"]
    assert copied["username"] == creds_data["username"].decode()
    assert can_login(postgres, {k: v.encode() for k, v in copied.items()})
    revoke(clients, db.conn, db.creds, lease.leaseId)
