"""Vault mirrors in the hooks: the sidecar's state Secret in, copies and status out."""

from __future__ import annotations

from typing import Any

import pytest

from mirrors.state import (
    STATE_ANNOTATION,
    DestinationState,
    ErrorState,
    MirrorState,
    SourceState,
    content_hash,
    encode,
)
from tests.support.objects import as_stored, load_example, namespace, secret, sync_request
from tests.unit.hooks.conftest import Hooks

Obj = dict[str, Any]
CREDS = {"username": "v-approle-somedb-x1", "password": "A1a-secret"}


def state_secret(mirror: Obj, current: MirrorState, data: dict[str, str] | None = None) -> Obj:
    return secret(
        "mirrors",
        f"mirror-state-{mirror['metadata']['name']}",
        data or {},
        annotations={STATE_ANNOTATION: encode(current)},
        labels={"mirrors.kts.studio/state-of": mirror["metadata"]["name"]},
        owner=mirror,
    )


def read(**kwargs: Any) -> SourceState:
    fields = {
        "path": "secret/data/myvaultsecret",
        "readAt": "2026-12-03T11:00:00Z",
        "contentHash": content_hash({k: v.encode() for k, v in CREDS.items()}),
    }
    return SourceState(**(fields | kwargs))


@pytest.fixture
def mirror() -> Obj:
    return as_stored(load_example("myvaultsecret-mirror.yaml"))


PROJECT_C = [namespace("project-c-main"), namespace("project-c-dev"), namespace("default")]


def test_before_the_first_read_it_is_pending(hooks: Hooks, mirror: Obj) -> None:
    response = hooks.sync(sync_request(mirror, namespaces=PROJECT_C))

    assert response["children"] == []
    assert response["status"]["mirrorStatus"] == "Pending"
    assert response["status"]["message"] == (
        "waiting for the sidecar to read https://vault.example.com/secret/data/myvaultsecret"
    )


def test_read_data_is_fanned_out_as_opaque_copies(hooks: Hooks, mirror: Obj) -> None:
    published = state_secret(mirror, MirrorState(generation=1, source=read(secretVersion=3)), CREDS)

    response = hooks.sync(sync_request(mirror, namespaces=PROJECT_C, secrets=[published]))

    children = response["children"]
    assert [c["metadata"]["namespace"] for c in children] == ["project-c-dev", "project-c-main"]
    assert {c["metadata"]["name"] for c in children} == {"myvaultsecret-sync"}
    assert all(c["data"] == published["data"] and c["type"] == "Opaque" for c in children)
    assert children[0]["metadata"]["annotations"]["mirrors.kts.studio/source"] == (
        "vault:https://vault.example.com/secret/data/myvaultsecret"
    )
    status = response["status"]
    assert status["mirrorStatus"] == "Active"
    assert status["source"] == {
        "type": "vault",
        "location": "https://vault.example.com/secret/data/myvaultsecret",
        "dataVersion": 1,
        "secretVersion": 3,
    }


def test_vault_error_keeps_serving_the_last_good_data(hooks: Hooks, mirror: Obj) -> None:
    failing = MirrorState(
        generation=1,
        source=read(),
        error=ErrorState(reason="VaultUnreachable", message="vault down", at="t"),
    )
    published = state_secret(mirror, failing, CREDS)

    response = hooks.sync(sync_request(mirror, namespaces=PROJECT_C, secrets=[published]))

    assert len(response["children"]) == 2
    assert response["status"]["mirrorStatus"] == "Error"
    assert response["status"]["message"] == (
        "vault down; serving the data read at 2026-12-03T11:00:00Z"
    )
    assert response["status"]["conditions"][0]["reason"] == "VaultUnreachable"


def test_auth_failure_before_any_read_is_an_error(hooks: Hooks, mirror: Obj) -> None:
    failing = MirrorState(
        generation=1,
        error=ErrorState(reason="VaultAuthFailed", message="approle login failed", at="t"),
    )

    response = hooks.sync(
        sync_request(mirror, namespaces=PROJECT_C, secrets=[state_secret(mirror, failing)])
    )

    assert response["status"]["mirrorStatus"] == "Error"
    assert response["status"]["message"] == "approle login failed"


def test_lease_renewal_shows_in_status_not_the_lease_id(hooks: Hooks) -> None:
    mirror = as_stored(load_example("secretmirror-from-vault-mongo-to-ns.yaml"))
    leased = read(
        path="mongodb/creds/somedb",
        leaseId="mongodb/creds/somedb/AbCd",
        leaseDuration=3600,
        renewable=True,
        leaseIssuedAt="2026-12-03T10:00:00Z",
        leaseExpiresAt="2026-12-03T13:00:00Z",
    )
    published = state_secret(mirror, MirrorState(generation=1, source=leased), CREDS)

    response = hooks.sync(
        sync_request(mirror, namespaces=[namespace("default")], secrets=[published])
    )

    assert [c["metadata"]["namespace"] for c in response["children"]] == ["default"]
    assert response["status"]["source"]["leaseExpiresAt"] == "2026-12-03T13:00:00Z"
    assert "AbCd" not in str(response["status"])


def test_damaged_state_is_an_error_that_keeps_copies(hooks: Hooks, mirror: Obj) -> None:
    damaged = secret(
        "mirrors",
        "mirror-state-myvaultsecret-mirror",
        {},
        annotations={STATE_ANNOTATION: "{not json"},
        owner=mirror,
    )

    response = hooks.sync(sync_request(mirror, namespaces=PROJECT_C, secrets=[damaged]))

    assert response["status"]["mirrorStatus"] == "Error"
    assert response["status"]["conditions"][0]["reason"] == "StateUnreadable"


@pytest.mark.parametrize("owner", ["another-uid", None])
def test_a_state_secret_of_another_mirror_is_not_served(
    hooks: Hooks, mirror: Obj, owner: str | None
) -> None:
    # A mirror deleted and created again under the same name (or a state Secret orphaned by
    # --cascade=orphan): the old state Secret may still exist, holding the data of another
    # Vault path. It must not reach the new mirror's namespaces.
    published = state_secret(mirror, MirrorState(generation=1, source=read()), CREDS)
    meta = published["metadata"]
    if owner is None:
        del meta["ownerReferences"]
    else:
        meta["ownerReferences"][0]["uid"] = owner

    response = hooks.sync(sync_request(mirror, namespaces=PROJECT_C, secrets=[published]))

    assert response["children"] == []
    assert response["status"]["mirrorStatus"] == "Pending"
    assert "source" not in response["status"]


def test_data_of_the_path_before_a_spec_change_is_not_fanned_out(hooks: Hooks, mirror: Obj) -> None:
    # spec.source.vault.path changed; the sidecar has not read the new path yet.
    mirror["spec"]["source"]["vault"]["path"] = "secret/data/other"
    published = state_secret(mirror, MirrorState(generation=1, source=read()), CREDS)
    kept = secret("project-c-main", "myvaultsecret-sync", CREDS, owner=mirror)

    response = hooks.sync(
        sync_request(mirror, children=[kept], namespaces=PROJECT_C, secrets=[published])
    )

    children = response["children"]
    assert [(c["metadata"]["namespace"], c["data"]) for c in children] == [
        ("project-c-main", kept["data"])
    ]  # the observed copy stays; the new namespace waits for the new path's data
    status = response["status"]
    assert status["mirrorStatus"] == "Pending"
    assert status["message"] == (
        "waiting for the sidecar to read https://vault.example.com/secret/data/other"
    )
    assert "source" not in status


class TestSecretToVault:
    @pytest.fixture
    def reverse(self) -> Obj:
        return as_stored(load_example("myvaultsecret-mirror-reverse.yaml"))

    @pytest.fixture
    def source(self) -> Obj:
        return secret("default", "mysecret", CREDS)

    def written(self, reverse: Obj, digest: str) -> Obj:
        dest = DestinationState(
            path="secret/data/myvaultsecret",
            writtenAt="2026-12-03T11:00:00Z",
            contentHash=digest,
            secretVersion=2,
        )
        return state_secret(reverse, MirrorState(generation=1, destination=dest))

    def test_missing_source_is_pending(self, hooks: Hooks, reverse: Obj) -> None:
        response = hooks.sync(sync_request(reverse))

        assert response["status"]["message"] == (
            "secret default/mysecret not found, waiting to appear"
        )
        assert response["children"] == []

    def test_written_content_matching_the_source_is_active(
        self, hooks: Hooks, reverse: Obj, source: Obj
    ) -> None:
        digest = content_hash({k: v.encode() for k, v in CREDS.items()})

        response = hooks.sync(
            sync_request(reverse, secrets=[source, self.written(reverse, digest)])
        )

        assert response["children"] == []
        status = response["status"]
        assert status["mirrorStatus"] == "Active"
        assert status["destination"] == {
            "type": "vault",
            "location": "https://vault.example.com/secret/data/myvaultsecret",
            "writtenAt": "2026-12-03T11:00:00Z",
            "secretVersion": 2,
        }

    def test_copies_of_a_former_namespaces_destination_go_once_written(
        self, hooks: Hooks, reverse: Obj, source: Obj
    ) -> None:
        # destination.type changed from namespaces to vault: the old copies are children.
        copies = [secret(ns, "mysecret", CREDS, owner=reverse) for ns in ("a", "b")]
        digest = content_hash({k: v.encode() for k, v in CREDS.items()})

        waiting = hooks.sync(
            sync_request(reverse, children=copies, secrets=[source, self.written(reverse, "x")])
        )
        done = hooks.sync(
            sync_request(reverse, children=copies, secrets=[source, self.written(reverse, digest)])
        )

        assert waiting["status"]["mirrorStatus"] == "Pending"
        assert [c["metadata"]["namespace"] for c in waiting["children"]] == ["a", "b"]
        assert done["status"]["mirrorStatus"] == "Active"
        assert done["children"] == []

    def test_changed_source_waits_for_the_write(
        self, hooks: Hooks, reverse: Obj, source: Obj
    ) -> None:
        response = hooks.sync(
            sync_request(reverse, secrets=[source, self.written(reverse, "sha256:old")])
        )

        assert response["status"]["mirrorStatus"] == "Pending"
        assert response["status"]["conditions"][0]["reason"] == "VaultPending"

    def test_a_write_to_the_path_before_a_spec_change_does_not_count(
        self, hooks: Hooks, reverse: Obj, source: Obj
    ) -> None:
        digest = content_hash({k: v.encode() for k, v in CREDS.items()})
        reverse["spec"]["destination"]["vault"]["path"] = "secret/data/other"

        response = hooks.sync(
            sync_request(reverse, secrets=[source, self.written(reverse, digest)])
        )

        status = response["status"]
        assert status["mirrorStatus"] == "Pending"
        assert status["message"] == (
            "waiting for the sidecar to write https://vault.example.com/secret/data/other"
        )
        assert "destination" not in status


def test_vault_to_vault_is_active_once_the_read_is_written(hooks: Hooks) -> None:
    mirror = as_stored(load_example("secretmirror-from-vault-to-vault.yaml"))
    source = read(path="secret/data/mysecret")
    dest = DestinationState(
        path="secret/data/mysecret", writtenAt="t", contentHash=source.contentHash
    )
    published = state_secret(mirror, MirrorState(generation=1, source=source, destination=dest))

    response = hooks.sync(sync_request(mirror, secrets=[published]))

    assert response["children"] == []
    assert response["status"]["mirrorStatus"] == "Active"
    assert response["status"]["message"] == (
        "written to https://vault2.example.com/secret/data/mysecret"
    )


def test_data_read_from_another_vault_is_not_fanned_out(hooks: Hooks, mirror: Obj) -> None:
    # Only spec.source.vault.addr changed; the state records the old server.
    mirror["spec"]["source"]["vault"]["addr"] = "https://vault2.example.com"
    published = state_secret(
        mirror,
        MirrorState(generation=1, source=read(addr="https://vault.example.com")),
        CREDS,
    )

    response = hooks.sync(sync_request(mirror, namespaces=PROJECT_C, secrets=[published]))

    assert response["children"] == []
    assert response["status"]["message"] == (
        "waiting for the sidecar to read https://vault2.example.com/secret/data/myvaultsecret"
    )


def test_state_without_a_recorded_addr_is_served(hooks: Hooks, mirror: Obj) -> None:
    # States written before the addr was recorded.
    published = state_secret(mirror, MirrorState(generation=1, source=read()), CREDS)

    response = hooks.sync(sync_request(mirror, namespaces=PROJECT_C, secrets=[published]))

    assert response["status"]["mirrorStatus"] == "Active"


def test_a_failed_read_of_a_changed_path_is_an_error_that_keeps_copies(
    hooks: Hooks, mirror: Obj
) -> None:
    mirror["spec"]["source"]["vault"]["path"] = "secret/data/missing"
    failing = MirrorState(
        generation=2,
        source=read(),
        error=ErrorState(reason="NoSecret", message="nothing at secret/data/missing", at="t"),
    )
    published = state_secret(mirror, failing, CREDS)
    kept = secret("project-c-main", "myvaultsecret-sync", CREDS, owner=mirror)

    response = hooks.sync(
        sync_request(mirror, children=[kept], namespaces=PROJECT_C, secrets=[published])
    )

    assert [c["metadata"]["namespace"] for c in response["children"]] == ["project-c-main"]
    assert response["status"]["mirrorStatus"] == "Error"
    assert response["status"]["message"] == "nothing at secret/data/missing"


def test_vault_to_vault_waits_for_a_read_of_a_changed_source_path(hooks: Hooks) -> None:
    mirror = as_stored(load_example("secretmirror-from-vault-to-vault.yaml"))
    mirror["spec"]["source"]["vault"]["path"] = "secret/data/other"
    source = read(path="secret/data/mysecret")
    dest = DestinationState(
        path="secret/data/mysecret", writtenAt="t", contentHash=source.contentHash
    )
    published = state_secret(mirror, MirrorState(generation=1, source=source, destination=dest))

    response = hooks.sync(sync_request(mirror, secrets=[published]))

    assert response["status"]["mirrorStatus"] == "Pending"
    assert response["status"]["message"] == "waiting for the sidecar to read the source"


class TestFinalizeWithALease:
    @pytest.fixture
    def mirror(self) -> Obj:
        return as_stored(load_example("secretmirror-from-vault-mongo-to-ns.yaml"))

    def test_waits_for_the_sidecar_to_revoke(self, hooks: Hooks, mirror: Obj) -> None:
        leased = MirrorState(generation=1, source=read(leaseId="db/creds/x/1"))

        response = hooks.finalize(
            sync_request(mirror, secrets=[state_secret(mirror, leased)], finalizing=True)
        )

        assert response["finalized"] is False
        assert response["status"]["message"].endswith(
            "waiting for the sidecar to revoke the Vault lease"
        )

    def test_finalizes_once_revoked(self, hooks: Hooks, mirror: Obj) -> None:
        done = MirrorState(
            generation=1, source=read(leaseId="db/creds/x/1"), revoked=True, finalized=True
        )

        response = hooks.finalize(
            sync_request(mirror, secrets=[state_secret(mirror, done)], finalizing=True)
        )

        assert response["finalized"] is True

    def test_retain_does_not_wait(self, hooks: Hooks, mirror: Obj) -> None:
        mirror["spec"]["deletePolicy"] = "retain"
        leased = MirrorState(generation=1, source=read(leaseId="db/creds/x/1"))

        response = hooks.finalize(
            sync_request(mirror, secrets=[state_secret(mirror, leased)], finalizing=True)
        )

        assert response["finalized"] is True  # no copies left to release, no lease to revoke
