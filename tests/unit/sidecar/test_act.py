"""The executor against fake ports: what is read, written, revoked, and what the state becomes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mirrors.state import MirrorState
from sidecar import plan
from sidecar.act import REVOKE_GIVE_UP, Executor, Result
from sidecar.vault import VaultError
from tests.unit.sidecar.fakes import (
    FakeSecrets,
    FakeVault,
    approle_secrets,
    fmt,
    mirror_obj,
    vault_destination,
    vault_source,
)

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


class Harness:
    def __init__(self, spec: dict[str, object], secrets: FakeSecrets | None = None) -> None:
        self.vault = FakeVault()
        self.secrets = secrets or approle_secrets()
        self.executor = Executor(self.vault, self.secrets, service_account_token=lambda: "jwt")
        self.spec = spec
        self.state: MirrorState | None = None
        self.data: dict[str, bytes] = {}

    def run(self, now: datetime, *, deleting: bool = False, generation: int = 1) -> Result:
        mirror = plan.Mirror.from_object(
            mirror_obj(spec=self.spec, deleting=deleting, generation=generation)
        )
        action = plan.decide(mirror, self.state, now=now)
        result = self.executor.run(mirror, action, self.state, self.data, now=now)
        if result.state is not None:
            self.state, self.data = result.state, result.data
        return result


def test_static_source_read_then_unchanged_poll_changes_no_state() -> None:
    h = Harness(vault_source("secret/data/app"))
    h.vault.kv["secret/data/app"] = {"password": b"test"}
    first = h.run(T0)
    assert first.ok
    assert first.done == ["read"]
    assert first.events == []
    assert h.data == {"password": b"test"}
    assert h.state is not None
    assert h.state.source is not None
    assert h.state.generation == 1
    assert h.vault.calls[0][2].role_id == "r-1"  # newline stripped, read from the auth Secret
    before = h.state
    again = h.run(T0 + timedelta(minutes=3))
    assert again.state == before  # same data: identical state, so no state Secret write
    assert again.vault_next is None  # static: the poll period decides


def test_vault_failure_keeps_the_last_good_data_and_records_the_error() -> None:
    h = Harness(vault_source("secret/data/app"))
    h.vault.kv["secret/data/app"] = {"password": b"test"}
    h.run(T0)
    good_source = h.state.source if h.state else None
    h.vault.fail = VaultError(
        "VaultUnreachable", "reading 'secret/data/app' at http://v:8200: cannot connect to Vault"
    )
    failed = h.run(T0 + timedelta(minutes=3))
    assert not failed.ok
    assert failed.error_reason == "VaultUnreachable"
    assert failed.data == {"password": b"test"}
    assert failed.state is not None
    assert failed.state.source == good_source
    assert failed.state.error is not None
    assert failed.state.error.reason == "VaultUnreachable"
    assert [e.reason for e in failed.events] == ["VaultError"]
    h.vault.fail = None
    recovered = h.run(T0 + timedelta(minutes=4))
    assert recovered.ok
    assert recovered.state is not None
    assert recovered.state.error is None


def test_a_vault_key_that_cannot_be_a_secret_key_is_invalid_data_and_keeps_the_copies() -> None:
    h = Harness(vault_source("secret/data/app"))
    h.vault.kv["secret/data/app"] = {"password": b"test"}
    h.run(T0)
    h.vault.kv["secret/data/app"] = {"password": b"new", "my key": b"x"}

    result = h.run(T0 + timedelta(minutes=3))

    assert result.error_reason == "InvalidData"
    assert result.data == {"password": b"test"}
    assert result.state is not None
    assert result.state.error is not None
    assert result.state.error.message == (
        "key 'my key' of secret/data/app cannot be a Kubernetes Secret key "
        "(letters, digits, '-', '_' and '.' only)"
    )


def test_missing_auth_secret_is_no_secret_and_nothing_reaches_vault() -> None:
    h = Harness(vault_source(), secrets=FakeSecrets())
    result = h.run(T0)
    assert result.error_reason == "NoSecret"
    assert result.state is not None
    assert result.state.error is not None
    assert "default/approle" in result.state.error.message
    assert h.vault.calls == []


def test_dynamic_lease_new_credentials_then_renewal_keeps_the_user() -> None:
    h = Harness(vault_source("database/creds/app", pollPeriodSeconds=3600))
    h.vault.dynamic["database/creds/app"] = 60
    first = h.run(T0)
    assert first.done == ["read", "new_credentials"]
    assert [e.reason for e in first.events] == ["VaultNewCredentials"]
    assert first.vault_next == T0 + timedelta(seconds=40)  # 2/3 of the lease
    user = h.data["username"]
    early = h.run(T0 + timedelta(seconds=10))
    assert early.done == []
    assert early.events == []
    renewed = h.run(T0 + timedelta(seconds=41))
    assert renewed.done == ["renewed"]
    assert [e.reason for e in renewed.events] == ["VaultLeaseRenewed"]
    assert h.data["username"] == user
    assert renewed.state is not None
    assert renewed.state.source is not None
    assert renewed.state.source.renewedAt == fmt(T0 + timedelta(seconds=41))


def test_a_lease_of_another_vault_is_not_renewed_there() -> None:
    # spec.source.vault.addr moved to another server with the same path: the lease recorded
    # is the old server's, so new credentials are read from the new one.
    h = Harness(vault_source("database/creds/app", pollPeriodSeconds=3600))
    h.vault.dynamic["database/creds/app"] = 60
    h.run(T0)
    assert h.state is not None
    assert h.state.source is not None
    assert h.state.source.addr == "http://v:8200"
    first_lease = h.state.source.leaseId
    h.spec["source"]["vault"]["addr"] = "http://other:8200"  # type: ignore[index]

    moved = h.run(T0 + timedelta(seconds=41), generation=2)

    assert moved.done == ["read", "new_credentials"]
    assert moved.state is not None
    assert moved.state.source is not None
    assert moved.state.source.leaseId != first_lease
    assert moved.state.source.addr == "http://other:8200"


def test_secret_to_vault_writes_only_when_the_source_changed() -> None:
    secrets = approle_secrets("certs")  # secretRef.namespace defaults to the source namespace
    secrets.secrets[("certs", "tls")] = {"tls.crt": b"cert", "tls.key": b"key"}
    h = Harness(vault_destination("secret/data/pushed"), secrets=secrets)
    first = h.run(T0)
    assert first.done == ["read", "written"]
    assert [e.reason for e in first.events] == ["VaultWritten"]
    assert h.vault.written["secret/data/pushed"] == {"tls.crt": b"cert", "tls.key": b"key"}
    assert h.data == {}  # a Secret source is not copied into the state
    second = h.run(T0 + timedelta(minutes=3))
    assert second.done == ["read"]
    assert second.events == []
    assert second.state == first.state
    secrets.secrets[("certs", "tls")]["tls.crt"] = b"cert2"
    third = h.run(T0 + timedelta(minutes=6))
    assert third.done == ["read", "written"]


def test_secret_to_vault_with_missing_source_reports_no_secret_like_the_original() -> None:
    h = Harness(vault_destination())
    result = h.run(T0)
    assert result.state is not None
    assert result.state.error is not None
    assert result.state.error.message == "secret certs/tls not found, waiting to appear"
    assert [e.reason for e in result.events] == ["NoSecret"]


def test_vault_to_vault_failure_on_write_keeps_the_fresh_read() -> None:
    spec = vault_source("secret/data/app")
    spec["destination"] = vault_destination("secret/data/copy")["destination"]
    h = Harness(spec)
    h.vault.kv["secret/data/app"] = {"k": b"v"}
    h.run(T0)
    assert h.vault.written["secret/data/copy"] == {"k": b"v"}
    h.vault.kv["secret/data/app"] = {"k": b"v2"}
    original_write = h.vault.write_destination

    def refuse(*args: object, **kwargs: object) -> object:
        raise VaultError("VaultError", "writing 'secret/data/copy': permission denied")

    h.vault.write_destination = refuse  # type: ignore[method-assign]
    result = h.run(T0 + timedelta(minutes=3))
    assert not result.ok
    assert h.data == {"k": b"v2"}
    h.vault.write_destination = original_write  # type: ignore[method-assign]
    assert h.run(T0 + timedelta(minutes=4)).done == ["read", "written"]


def test_delete_policy_revokes_then_finalizes() -> None:
    h = Harness(vault_source("database/creds/app"))
    h.vault.dynamic["database/creds/app"] = 600
    h.run(T0)
    lease = h.state.source.leaseId if h.state and h.state.source else ""
    done = h.run(T0 + timedelta(seconds=5), deleting=True)
    assert h.vault.revoked == [lease]
    assert done.state is not None
    assert done.state.finalized
    assert done.state.revoked
    assert h.data  # never blanked
    assert "VaultLeaseRevoked" in [e.reason for e in done.events]


def test_retain_finalizes_without_revoking() -> None:
    h = Harness(vault_source("database/creds/app", deletePolicy="retain"))
    h.vault.dynamic["database/creds/app"] = 600
    h.run(T0)
    done = h.run(T0 + timedelta(seconds=5), deleting=True)
    assert h.vault.revoked == []
    assert done.state is not None
    assert done.state.finalized
    assert not done.state.revoked


def test_revocation_is_retried_then_given_up() -> None:
    h = Harness(vault_source("database/creds/app"))
    h.vault.dynamic["database/creds/app"] = 24 * 3600
    h.run(T0)
    h.vault.fail_revoke = VaultError("VaultUnreachable", "cannot connect to Vault")
    first = h.run(T0 + timedelta(seconds=1), deleting=True)
    assert not first.ok
    assert first.state is not None
    assert not first.state.finalized
    later = h.run(T0 + timedelta(seconds=1) + REVOKE_GIVE_UP / 2, deleting=True)
    assert not later.ok
    gave_up = h.run(T0 + timedelta(seconds=2) + REVOKE_GIVE_UP, deleting=True)
    assert gave_up.ok
    assert gave_up.state is not None
    assert gave_up.state.finalized
    assert not gave_up.state.revoked
    assert gave_up.state.error is None


def test_lease_unknown_to_vault_counts_as_revoked() -> None:
    h = Harness(vault_source("database/creds/app"))
    h.vault.dynamic["database/creds/app"] = 600
    h.run(T0)
    h.vault.fail_revoke = VaultError("VaultNotFound", "lease not found")
    done = h.run(T0 + timedelta(seconds=1), deleting=True)
    assert done.ok
    assert done.state is not None
    assert done.state.finalized
    assert done.state.revoked
