"""The pure planning core: what to do about a mirror, when, and what the state becomes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import ClassVar

import msgspec
import pytest

from mirrors.state import DestinationState, ErrorState, MirrorState, SourceState
from sidecar import plan
from tests.unit.sidecar.fakes import UID, mirror_obj, vault_destination, vault_source

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def mirror(spec: dict[str, object] | None = None, **kw: object) -> plan.Mirror:
    return plan.Mirror.from_object(mirror_obj(spec=spec, **kw))  # type: ignore[arg-type]


def leased(expires: datetime, *, revoked: bool = False, finalized: bool = False) -> MirrorState:
    source = SourceState(
        path="database/creds/app",
        readAt="2026-12-03T11:00:00Z",
        contentHash="sha256:x",
        leaseId="database/creds/app/abc",
        leaseDuration=3600,
        renewable=True,
        leaseIssuedAt="2026-12-03T11:00:00Z",
        leaseExpiresAt=expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    return MirrorState(generation=1, source=source, revoked=revoked, finalized=finalized)


class TestMirror:
    def test_invalid_spec_keeps_the_message_and_a_lenient_delete_policy(self) -> None:
        m = mirror({"source": {"type": "vault"}, "deletePolicy": "retain"})
        assert m.spec is None
        assert "spec.source.vault is required" in m.spec_error
        assert m.delete_policy == "retain"

    def test_ready_condition_is_read(self) -> None:
        m = mirror({"destination": {"namespaces": ["a"]}}, ready=("SourceNotFound", "gone"))
        assert (m.ready_reason, m.ready_message) == ("SourceNotFound", "gone")
        assert not m.involves_vault


class TestRelease:
    retain: ClassVar[dict[str, object]] = {
        "destination": {"namespaces": ["a"]},
        "deletePolicy": "retain",
    }

    def test_a_retained_mirror_being_deleted_needs_its_copies_released(self) -> None:
        assert plan.needs_release(mirror(self.retain, deleting=True))
        assert plan.needs_release(mirror(vault_source(deletePolicy="retain"), deleting=True))

    def test_an_invalid_spec_still_retains(self) -> None:
        invalid: dict[str, object] = {"source": {"type": "vault"}, "deletePolicy": "retain"}
        assert plan.needs_release(mirror(invalid, deleting=True))

    def test_nothing_for_the_delete_policy(self) -> None:
        assert not plan.needs_release(mirror({"destination": {"namespaces": ["a"]}}, deleting=True))
        invalid: dict[str, object] = {"source": {"type": "vault"}, "deletePolicy": "delete"}
        assert not plan.needs_release(mirror(invalid, deleting=True))

    def test_nothing_for_a_mirror_not_being_deleted(self) -> None:
        assert not plan.needs_release(mirror(self.retain))
        assert not plan.urgent(mirror(self.retain), None)

    def test_a_release_is_urgent(self) -> None:
        assert plan.urgent(mirror(self.retain, deleting=True), None)
        done = MirrorState(generation=1, finalized=True)
        assert plan.urgent(mirror(vault_source(deletePolicy="retain"), deleting=True), done)

    def test_selector_is_metacontrollers(self) -> None:
        assert plan.copies_selector(mirror(self.retain)) == f"controller-uid={UID}"

    def test_patch_removes_only_the_mirrors_owner_reference(self) -> None:
        ours = {
            "apiVersion": "mirrors.kts.studio/v1alpha2",
            "kind": "SecretMirror",
            "name": "m",
            "uid": UID,
            "controller": True,
        }
        other = {"apiVersion": "v1", "kind": "ConfigMap", "name": "c", "uid": "other"}
        copy = {
            "metadata": {
                "name": "mysecret",
                "namespace": "a",
                "resourceVersion": "42",
                "labels": {"controller-uid": UID},
                "ownerReferences": [other, ours],
            }
        }
        assert plan.owned_by(copy, UID)
        assert plan.release_patch(copy, UID) == [
            {"op": "test", "path": "/metadata/resourceVersion", "value": "42"},
            {"op": "replace", "path": "/metadata/ownerReferences", "value": [other]},
        ]
        copy["metadata"]["ownerReferences"] = [ours]
        assert plan.release_patch(copy, UID) == [
            {"op": "test", "path": "/metadata/resourceVersion", "value": "42"},
            {"op": "remove", "path": "/metadata/ownerReferences"},
        ]

    def test_no_patch_for_a_copy_the_mirror_does_not_own(self) -> None:
        copy = {"metadata": {"resourceVersion": "1", "ownerReferences": [{"uid": "other"}]}}
        assert not plan.owned_by(copy, UID)
        assert plan.release_patch(copy, UID) is None
        assert plan.release_patch({"metadata": {"resourceVersion": "1"}}, UID) is None

    def test_retries_soon_while_owned_or_failing_then_slowly(self) -> None:
        assert plan.after_release(left=2, failed=False) == plan.RELEASE_RETRY_SECONDS
        assert plan.after_release(left=0, failed=True) == plan.RELEASE_RETRY_SECONDS
        assert plan.after_release(left=0, failed=False) == plan.RELEASE_RECHECK_SECONDS
        assert plan.RELEASE_RETRY_SECONDS <= 5


class TestDecide:
    def test_vault_source_syncs(self) -> None:
        action = plan.decide(mirror(vault_source()), None, now=NOW)
        assert isinstance(action, plan.Sync)
        assert action.source_vault is not None
        assert action.source_vault.path == "secret/data/app"
        assert action.source_secret is None
        assert action.destination_vault is None

    def test_secret_to_vault_reads_the_source_secret(self) -> None:
        action = plan.decide(mirror(vault_destination()), None, now=NOW)
        assert isinstance(action, plan.Sync)
        assert action.source_secret == ("certs", "tls")
        assert action.destination_vault is not None

    def test_namespace_mirror_with_leftover_state_is_retired(self) -> None:
        m = mirror({"destination": {"namespaces": ["a"]}})
        assert isinstance(plan.decide(m, MirrorState(generation=1), now=NOW), plan.Retire)
        assert isinstance(plan.decide(m, None, now=NOW), plan.Nothing)

    def test_delete_policy_revokes_a_live_lease(self) -> None:
        m = mirror(vault_source("database/creds/app"), deleting=True)
        action = plan.decide(m, leased(NOW + timedelta(hours=1)), now=NOW)
        assert action == plan.Finalize(
            revoke_lease="database/creds/app/abc",
            revoke_with=m.spec.source.vault if m.spec else None,
            revoked=True,
        )

    def test_retain_never_revokes(self) -> None:
        m = mirror(vault_source("database/creds/app", deletePolicy="retain"), deleting=True)
        action = plan.decide(m, leased(NOW + timedelta(hours=1)), now=NOW)
        assert isinstance(action, plan.Finalize)
        assert (action.revoke_lease, action.revoked) == ("", False)

    def test_an_expired_or_revoked_lease_is_not_revoked_again(self) -> None:
        m = mirror(vault_source("database/creds/app"), deleting=True)
        for state in (
            leased(NOW - timedelta(seconds=1)),
            leased(NOW + timedelta(hours=1), revoked=True),
        ):
            action = plan.decide(m, state, now=NOW)
            assert isinstance(action, plan.Finalize)
            assert action.revoke_lease == ""
            assert action.revoked

    def test_finalized_is_final(self) -> None:
        m = mirror(vault_source(), deleting=True)
        assert isinstance(plan.decide(m, leased(NOW, finalized=True), now=NOW), plan.Nothing)

    def test_deleting_namespace_mirror_without_state_needs_nothing(self) -> None:
        m = mirror({"destination": {"namespaces": ["a"]}}, deleting=True)
        assert isinstance(plan.decide(m, None, now=NOW), plan.Nothing)


class TestUrgent:
    def test_new_or_changed_vault_mirror_is_urgent(self) -> None:
        assert plan.urgent(mirror(vault_source()), None)
        assert plan.urgent(mirror(vault_source(), generation=2), MirrorState(generation=1))
        assert not plan.urgent(mirror(vault_source()), MirrorState(generation=1))

    def test_a_source_the_hooks_see_unwritten_is_pushed_at_once(self) -> None:
        pending = ("VaultPending", "waiting for the sidecar to write http://v/secret/data/p")
        written = MirrorState(generation=1)
        assert plan.urgent(mirror(vault_destination(), ready=pending), written)
        assert not plan.urgent(mirror(vault_destination(), ready=("Synced", "written")), written)
        # A Vault source waiting for its first read is urgent anyway; later, the poll decides.
        assert not plan.urgent(mirror(vault_source(), ready=pending), written)

    def test_deletion(self) -> None:
        m = mirror(vault_source(), deleting=True)
        assert plan.urgent(m, MirrorState(generation=1))
        assert not plan.urgent(m, MirrorState(generation=1, finalized=True))
        assert not plan.urgent(mirror({"destination": {"namespaces": ["a"]}}, deleting=True), None)


class TestNextRun:
    spec = plan.Mirror.from_object(mirror_obj(spec=vault_source(pollPeriodSeconds=100))).spec

    def test_poll_period_with_bounded_jitter(self) -> None:
        assert self.spec is not None
        for jitter, seconds in ((-1.0, 90), (0.0, 100), (1.0, 110), (5.0, 110)):
            at = plan.next_run(self.spec, now=NOW, ok=True, jitter=jitter)
            assert at == NOW + timedelta(seconds=seconds)

    def test_errors_retry_sooner(self) -> None:
        assert self.spec is not None
        at = plan.next_run(self.spec, now=NOW, ok=False, jitter=0.0)
        assert at == NOW + timedelta(seconds=plan.ERROR_RETRY_SECONDS)

    def test_an_earlier_lease_deadline_wins_but_never_in_the_past(self) -> None:
        assert self.spec is not None
        soon = NOW + timedelta(seconds=40)
        assert plan.next_run(self.spec, now=NOW, ok=True, jitter=0.0, vault_next=soon) == soon
        past = NOW - timedelta(seconds=5)
        at = plan.next_run(self.spec, now=NOW, ok=True, jitter=0.0, vault_next=past)
        assert at == NOW + timedelta(seconds=plan.MIN_GAP_SECONDS)

    def test_first_run_resumes_a_recorded_lease_at_its_deadline(self) -> None:
        later = NOW + timedelta(minutes=5)
        assert plan.first_run(leased(NOW + timedelta(hours=1)), now=NOW, vault_next=later) == later
        assert plan.first_run(None, now=NOW, vault_next=None) == NOW


class TestSettle:
    source = SourceState(path="kv/x", readAt="2026-12-03T11:00:00Z", contentHash="sha256:a")

    def test_a_read_of_the_same_data_changes_nothing(self) -> None:
        before = MirrorState(generation=1, source=self.source)
        again = msgspec.structs.replace(self.source, readAt="2026-12-03T11:03:00Z")
        assert plan.settle(before, MirrorState(generation=1, source=again)) == before

    def test_new_data_or_a_renewal_is_kept(self) -> None:
        before = MirrorState(generation=1, source=self.source)
        changed = msgspec.structs.replace(
            self.source, readAt="2026-12-03T11:03:00Z", contentHash="sha256:b"
        )
        assert plan.settle(before, MirrorState(generation=1, source=changed)).source == changed

    def test_an_unchanged_write_keeps_its_time(self) -> None:
        written = DestinationState(
            path="kv/y", writtenAt="2026-12-03T11:00:00Z", contentHash="sha256:a"
        )
        later = msgspec.structs.replace(written, writtenAt="2026-12-03T11:05:00Z")
        before = MirrorState(generation=1, destination=written)
        assert plan.settle(before, MirrorState(generation=1, destination=later)) == before

    def test_the_same_error_keeps_when_it_was_first_seen(self) -> None:
        first = ErrorState(reason="VaultUnreachable", message="down", at="2026-12-03T11:00:00Z")
        again = msgspec.structs.replace(first, at="2026-12-03T11:00:30Z")
        other = ErrorState(reason="VaultAuthFailed", message="denied", at="2026-12-03T11:00:30Z")
        before = MirrorState(generation=1, error=first)
        assert plan.settle(before, MirrorState(generation=1, error=again)).error == first
        assert plan.settle(before, MirrorState(generation=1, error=other)).error == other


class TestEvents:
    issued = SourceState(
        path="database/creds/app",
        readAt="t0",
        contentHash="h",
        leaseId="database/creds/app/L1",
        leaseDuration=60,
        renewable=True,
    )

    def test_new_credentials_and_renewals(self) -> None:
        new = plan.source_event(None, self.issued)
        assert new is not None
        assert new.reason == "VaultNewCredentials"
        assert "L1" not in new.message  # no lease id in Events
        renewed = msgspec.structs.replace(self.issued, renewedAt="t1")
        event = plan.source_event(self.issued, renewed)
        assert event is not None
        assert event.reason == "VaultLeaseRenewed"
        assert plan.source_event(renewed, renewed) is None
        rotated = msgspec.structs.replace(self.issued, leaseId="database/creds/app/L2")
        event = plan.source_event(renewed, rotated)
        assert event is not None
        assert event.reason == "VaultNewCredentials"

    def test_static_reads_emit_nothing(self) -> None:
        static = SourceState(path="kv/x", readAt="t", contentHash="h")
        assert plan.source_event(None, static) is None

    def test_error_reasons_map_to_the_documented_set(self) -> None:
        assert plan.error_event("VaultAuthFailed", "m").reason == "VaultAuthFailed"
        assert plan.error_event("NoSecret", "m").reason == "NoSecret"
        assert plan.error_event("VaultUnreachable", "m") == plan.EventSpec(
            "Warning", "VaultError", "m"
        )

    @pytest.mark.parametrize(
        ("reason", "expected"),
        [
            (
                "SourceNotFound",
                plan.EventSpec(
                    "Warning", "NoSecret", "secret default/mysecret not found, waiting to appear"
                ),
            ),
            ("Synced", plan.EventSpec("Normal", "Active", "SecretMirror is synced")),
            (
                "InvalidSpec",
                plan.EventSpec(
                    "Warning", "InvalidSpec", "secret default/mysecret not found, waiting to appear"
                ),
            ),
            ("Progressing", None),
        ],
    )
    def test_status_transitions(self, reason: str, expected: plan.EventSpec | None) -> None:
        m = mirror(
            {"destination": {"namespaces": ["a"]}},
            ready=(reason, "secret default/mysecret not found, waiting to appear"),
        )
        assert plan.status_event("", m) == expected
        assert plan.status_event(reason, m) is None  # no transition
        # First sight (start-up): warnings only.
        warning = expected is not None and expected.type == "Warning"
        assert plan.status_event(None, m) == (expected if warning else None)
