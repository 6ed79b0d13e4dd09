"""Dynamic PostgreSQL credentials from OpenBao's database engine, with a real PostgreSQL.

The role has default_ttl 4s and max_ttl 12s: renewals keep the same username until max_ttl
is near, then new credentials are read; revocation drops the role in PostgreSQL.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta

import pytest

from mirrors.state import SourceState
from sidecar.vault import (
    Clients,
    Connection,
    Credentials,
    next_action_at,
    parse_time,
    read_source,
    revoke,
)
from tests.support.openbao import OpenBao
from tests.support.postgres import Postgres
from tests.vault.conftest import now, unique

pytestmark = pytest.mark.vault

DEFAULT_TTL = 4
MAX_TTL = 12
FAR = 3600.0  # a poll period that never comes first


@dataclass
class DB:
    mount: str
    path: str  # <mount>/creds/<role>
    conn: Connection
    creds: Credentials


def database_engine(bao: OpenBao, pg: Postgres, *, default_ttl: int = DEFAULT_TTL) -> DB:
    mount = unique("db")
    bao.api("POST", f"sys/mounts/{mount}", {"type": "database"})
    bao.api(
        "POST",
        f"{mount}/config/pg",
        {
            "plugin_name": "postgresql-database-plugin",
            "connection_url": pg.connection_url() + "?sslmode=disable",
            "username": pg.superuser,
            "password": pg.password,
            "allowed_roles": "*",
            "verify_connection": True,
        },
    )
    bao.api(
        "POST",
        f"{mount}/roles/app",
        {
            "db_name": "pg",
            "creation_statements": [
                "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' "
                "VALID UNTIL '{{expiration}}';"
            ],
            "default_ttl": f"{default_ttl}s",
            "max_ttl": f"{MAX_TTL}s",
        },
    )
    policy = unique("pol")
    bao.put_policy(
        policy,
        f'path "{mount}/creds/app" {{ capabilities = ["read"] }}\n'
        'path "sys/leases/revoke" { capabilities = ["update"] }\n',
    )
    role_id, secret_id = bao.approle(unique("role"), [policy])
    return DB(
        mount=mount,
        path=f"{mount}/creds/app",
        conn=Connection(addr=bao.addr),
        creds=Credentials(method="approle", role_id=role_id, secret_id=secret_id),
    )


def can_login(pg: Postgres, data: dict[str, bytes]) -> bool:
    result = pg.psql(
        "SELECT current_user", user=data["username"].decode(), password=data["password"].decode()
    )
    return result.returncode == 0 and result.stdout.strip() == data["username"].decode()


def lease_exists(bao: OpenBao, lease_id: str) -> bool:
    status, _ = bao.request("PUT", "sys/leases/lookup", {"lease_id": lease_id})
    return status == 200


def sleep_until(state: SourceState, poll_period: float = FAR) -> None:
    delay = (next_action_at(state, poll_period=poll_period) - now()).total_seconds()
    if delay > 0:
        time.sleep(delay + 0.02)


def test_same_credentials_until_max_ttl_then_new_ones_then_revoked(
    bao: OpenBao, postgres: Postgres, clients: Clients
) -> None:
    db = database_engine(bao, postgres)
    data, state = read_source(clients, db.conn, db.creds, db.path, None, now=now())
    issued = parse_time(state.leaseIssuedAt)
    first_user = data["username"]
    assert state.leaseId.startswith(f"{db.mount}/creds/app/")
    assert state.renewable
    assert state.leaseDuration == DEFAULT_TTL
    assert state.kvVersion is None
    assert state.dataVersion == 1
    assert can_login(postgres, data)

    # Before the renewal point nothing happens (no Vault call, same state object).
    again, same = read_source(
        clients, db.conn, db.creds, db.path, state, now=now(), previous_data=data
    )
    assert same is state
    assert again == data

    renewals = 0
    first_data = data
    deadline = issued + timedelta(seconds=MAX_TTL + 5)
    while data["username"] == first_user:
        assert now() < deadline, "credentials were never rotated"
        sleep_until(state)
        before = state
        data, state = read_source(
            clients, db.conn, db.creds, db.path, state, now=now(), previous_data=data
        )
        if state.leaseId == before.leaseId:
            renewals += 1
            assert data == first_data
            assert state.renewedAt
            assert parse_time(state.leaseExpiresAt) > parse_time(before.leaseExpiresAt)
            assert state.dataVersion == 1
    rotated_at = parse_time(state.leaseIssuedAt)
    assert renewals >= 2
    # New credentials before max_ttl ended, while the old ones still work.
    assert rotated_at < issued + timedelta(seconds=MAX_TTL)
    assert state.dataVersion == 2
    assert state.renewedAt == ""
    assert can_login(postgres, data)
    assert can_login(postgres, first_data)

    # Revocation (deletePolicy: delete): the lease is gone and the role cannot log in.
    revoke(clients, db.conn, db.creds, state.leaseId)
    assert not lease_exists(bao, state.leaseId)
    assert not can_login(postgres, data)
    revoke(clients, db.conn, db.creds, state.leaseId)  # already gone: fine
    assert clients.stats["logins"] == 1


def test_poll_renews_restart_resumes_and_lost_lease_is_replaced(
    bao: OpenBao, postgres: Postgres
) -> None:
    db = database_engine(bao, postgres, default_ttl=60)
    clients = Clients()
    data, state = read_source(clients, db.conn, db.creds, db.path, None, now=now())

    # A poll (period 1s) renews well before 2/3 of the 60s lease.
    sleep_until(state, poll_period=1)
    renewed_data, renewed = read_source(
        clients, db.conn, db.creds, db.path, state, now=now(), previous_data=data, poll_period=1
    )
    assert renewed.leaseId == state.leaseId
    assert renewed.renewedAt
    assert renewed_data == data
    assert next_action_at(renewed, poll_period=1) == parse_time(renewed.renewedAt) + timedelta(
        seconds=1
    )

    # A restarted sidecar (new Clients, state and data from the state Secret) renews the
    # same lease instead of issuing new credentials.
    restarted = Clients()
    sleep_until(renewed, poll_period=1)
    resumed_data, resumed = read_source(
        restarted, db.conn, db.creds, db.path, renewed, now=now(), previous_data=data,
        poll_period=1,
    )  # fmt: skip
    assert resumed.leaseId == state.leaseId
    assert resumed_data == data

    # The lease revoked behind our back: the renewal fails and new credentials are read.
    bao.api("PUT", "sys/leases/revoke", {"lease_id": state.leaseId})
    sleep_until(resumed, poll_period=1)
    new_data, new = read_source(
        restarted, db.conn, db.creds, db.path, resumed, now=now(), previous_data=data,
        poll_period=1,
    )  # fmt: skip
    assert new.leaseId != state.leaseId
    assert new_data["username"] != data["username"]
    assert new.dataVersion == 2
    assert can_login(postgres, new_data)

    # Without the previous data (state Secret lost its data), new credentials are read.
    fresh_data, fresh = read_source(
        restarted, db.conn, db.creds, db.path, new, now=now(), previous_data=None, poll_period=1
    )
    assert fresh.leaseId != new.leaseId
    assert fresh_data["username"] != new_data["username"]
    for lease in (new.leaseId, fresh.leaseId):
        revoke(restarted, db.conn, db.creds, lease)
