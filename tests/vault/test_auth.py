"""Logins against a real OpenBao: token, AppRole, failures, caching, renewal, re-login."""

from __future__ import annotations

import logging
import time
from dataclasses import replace

import pytest

from mirrors.logs import JSONFormatter
from sidecar.vault import Clients, Connection, Credentials, VaultError, read_source
from tests.support.openbao import OpenBao
from tests.vault.conftest import approle_identity, now, unique

pytestmark = pytest.mark.vault


def seed(server: OpenBao, value: str = "s3cr3t-value") -> tuple[str, str]:
    """A fresh KV v2 mount with one secret; returns (mount, path)."""
    mount = unique("kv")
    server.enable_kv(mount, 2)
    server.api("POST", f"{mount}/data/app", {"data": {"password": value}})
    return mount, f"{mount}/app"


def test_token_auth_reads_with_one_lookup(bao: OpenBao, clients: Clients) -> None:
    mount, path = seed(bao)
    policy = unique("pol")
    bao.put_policy(policy, f'path "{mount}/data/*" {{ capabilities = ["read"] }}')
    creds = Credentials(method="token", token=bao.token([policy]))
    conn = Connection(addr=bao.addr)
    for _ in range(3):
        data, _ = read_source(clients, conn, creds, path, None, now=now())
        assert data == {"password": b"s3cr3t-value"}
    assert clients.stats["lookups"] == 1
    assert clients.stats["logins"] == 0


def test_approle_logs_in_once_for_many_reads(bao: OpenBao, clients: Clients) -> None:
    mount, path = seed(bao)
    conn, creds = approle_identity(bao, [mount])
    for _ in range(5):
        data, _ = read_source(clients, conn, creds, path, None, now=now())
        assert data == {"password": b"s3cr3t-value"}
    assert clients.stats["logins"] == 1


def test_approle_on_a_custom_mount(bao: OpenBao, clients: Clients) -> None:
    mount, path = seed(bao)
    approle_mount = unique("approle")
    policy = unique("pol")
    bao.put_policy(policy, f'path "{mount}/data/*" {{ capabilities = ["read"] }}')
    role_id, secret_id = bao.approle(unique("role"), [policy], mount=approle_mount)
    creds = Credentials(
        method="approle", role_id=role_id, secret_id=secret_id, approle_path=approle_mount
    )
    data, _ = read_source(clients, Connection(addr=bao.addr), creds, path, None, now=now())
    assert data == {"password": b"s3cr3t-value"}


def test_wrong_secret_id_is_auth_failed(bao: OpenBao, clients: Clients) -> None:
    _, path = seed(bao)
    conn, creds = approle_identity(bao, [path.split("/")[0]])
    wrong = replace(creds, secret_id="00000000-1111-2222-3333-444444444444")
    with pytest.raises(VaultError) as caught:
        read_source(clients, conn, wrong, path, None, now=now())
    assert caught.value.reason == "VaultAuthFailed"
    assert "AppRole login" in caught.value.message
    assert wrong.secret_id not in caught.value.message
    assert creds.role_id not in caught.value.message
    assert wrong.secret_id not in repr(wrong)


def test_invalid_token_is_auth_failed(bao: OpenBao, clients: Clients) -> None:
    _, path = seed(bao)
    creds = Credentials(method="token", token="hvs.not-a-real-token")
    with pytest.raises(VaultError) as caught:
        read_source(clients, Connection(addr=bao.addr), creds, path, None, now=now())
    assert caught.value.reason == "VaultAuthFailed"
    assert "hvs.not-a-real-token" not in caught.value.message


def test_kubernetes_auth_path_reaches_openbao(bao: OpenBao, clients: Clients) -> None:
    """The real test (TokenReview against an API server) is in the end-to-end suite; here
    the login request reaches OpenBao's kubernetes auth mount and its refusal is reported."""
    _, path = seed(bao)
    k8s_mount = unique("k8s")
    bao.api("POST", f"sys/auth/{k8s_mount}", {"type": "kubernetes"})
    creds = Credentials(method="kubernetes", k8s_role="reader", k8s_mount=k8s_mount, jwt="a.b.c")
    with pytest.raises(VaultError) as caught:
        read_source(clients, Connection(addr=bao.addr), creds, path, None, now=now())
    assert caught.value.reason == "VaultAuthFailed"
    assert f"auth/{k8s_mount}" in caught.value.message
    no_jwt = replace(creds, jwt="")
    with pytest.raises(VaultError) as caught:
        Clients().client(Connection(addr=bao.addr), no_jwt)
    assert caught.value.reason == "VaultAuthFailed"


def test_policy_denial_is_not_a_login_problem(bao: OpenBao, clients: Clients) -> None:
    mount, _ = seed(bao)
    other, other_path = seed(bao)
    conn, creds = approle_identity(bao, [mount])
    with pytest.raises(VaultError) as caught:
        read_source(clients, conn, creds, other_path, None, now=now())
    # Not logged in again (the token is valid): the policy denies the other mount.
    assert clients.stats["logins"] == 1
    assert caught.value.reason in {"VaultError", "VaultNotFound"}
    assert other in caught.value.message


def test_revoked_token_is_obtained_again(bao: OpenBao, clients: Clients) -> None:
    mount, path = seed(bao)
    conn, creds = approle_identity(bao, [mount])
    read_source(clients, conn, creds, path, None, now=now())
    token = clients.client(conn, creds).token
    bao.api("POST", "auth/token/revoke", {"token": token})
    data, _ = read_source(clients, conn, creds, path, None, now=now())
    assert data == {"password": b"s3cr3t-value"}
    assert clients.stats["logins"] == 2
    assert clients.client(conn, creds).token != token


def test_expired_token_is_obtained_again(bao: OpenBao) -> None:
    """A frozen clock: the client believes its token is fresh, Vault says it expired (403)."""
    mount, path = seed(bao)
    conn, creds = approle_identity(bao, [mount], token_ttl="1s")
    clients = Clients(clock=lambda: 1_000_000.0)
    read_source(clients, conn, creds, path, None, now=now())
    token = clients.client(conn, creds).token
    deadline = 50
    while deadline:
        status, _ = bao.request("GET", "auth/token/lookup-self", token=token)
        if status == 403:
            break
        deadline -= 1
        time.sleep(0.1)
    assert deadline, "the 1s token never expired"
    data, _ = read_source(clients, conn, creds, path, None, now=now())
    assert data == {"password": b"s3cr3t-value"}
    assert clients.stats["logins"] == 2


def test_token_is_renewed_before_it_expires(bao: OpenBao) -> None:
    mount, path = seed(bao)
    conn, creds = approle_identity(bao, [mount], token_ttl="60s")
    clock = [1_000_000.0]
    clients = Clients(clock=lambda: clock[0])
    read_source(clients, conn, creds, path, None, now=now())
    token = clients.client(conn, creds).token
    clock[0] += 30  # half the TTL: nothing to do
    read_source(clients, conn, creds, path, None, now=now())
    assert clients.stats["renewals"] == 0
    clock[0] += 15  # 3/4 of the TTL: renew-self
    read_source(clients, conn, creds, path, None, now=now())
    assert clients.stats["renewals"] == 1
    assert clients.stats["logins"] == 1
    assert clients.client(conn, creds).token == token


def test_static_token_past_its_ttl_is_auth_failed(bao: OpenBao) -> None:
    mount, path = seed(bao)
    policy = unique("pol")
    bao.put_policy(policy, f'path "{mount}/data/*" {{ capabilities = ["read"] }}')
    answer = bao.api(
        "POST", "auth/token/create", {"policies": [policy], "ttl": "60s", "renewable": False}
    )
    creds = Credentials(method="token", token=answer["auth"]["client_token"])
    clock = [1_000_000.0]
    clients = Clients(clock=lambda: clock[0])
    conn = Connection(addr=bao.addr)
    read_source(clients, conn, creds, path, None, now=now())
    clock[0] += 61
    with pytest.raises(VaultError) as caught:
        read_source(clients, conn, creds, path, None, now=now())
    assert caught.value.reason == "VaultAuthFailed"


def test_no_secret_in_logs_or_errors(
    bao: OpenBao, clients: Clients, caplog: pytest.LogCaptureFixture
) -> None:
    value = "do-not-log-me-42"
    mount, path = seed(bao, value)
    conn, creds = approle_identity(bao, [mount])
    caplog.set_level(logging.DEBUG)
    read_source(clients, conn, creds, path, None, now=now())
    token = clients.client(conn, creds).token
    bao.api("POST", "auth/token/revoke", {"token": token})
    read_source(clients, conn, creds, path, None, now=now())
    with pytest.raises(VaultError) as caught:
        read_source(clients, conn, replace(creds, secret_id="wrong"), path, None, now=now())
    formatter = JSONFormatter()
    text = "\n".join(formatter.format(r) for r in caplog.records) + str(caught.value)
    assert "vault login" in text
    for secret in (value, token, creds.secret_id, creds.role_id, clients.client(conn, creds).token):
        assert secret not in text


def test_secrets_stay_out_of_repr() -> None:
    creds = Credentials(method="approle", role_id="rid-123", secret_id="sid-456", jwt="jwt-789")
    conn = Connection(addr="https://vault:8200", ca_pem="-----BEGIN CERTIFICATE-----")
    text = repr(creds) + repr(conn)
    for secret in ("rid-123", "sid-456", "jwt-789", "BEGIN"):
        assert secret not in text
