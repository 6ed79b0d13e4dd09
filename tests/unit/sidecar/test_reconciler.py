"""The reconciler wired to in-memory Kubernetes and Vault fakes."""

from __future__ import annotations

import random
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mirrors import names, state
from sidecar.act import Executor
from sidecar.events import Recorder
from sidecar.reconciler import Reconciler, Settings
from sidecar.state_store import StateStore
from sidecar.vault import VaultError
from tests.unit.sidecar.fakes import UID, ApiError, FakeKube, FakeVault, mirror_obj, vault_source

NS = "mirrors"


class World:
    def __init__(
        self,
        now: datetime | None = None,
        spread: float = 0,
        *,
        restart_of: World | None = None,
    ) -> None:
        self.now = now or datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
        if restart_of is not None:  # a new sidecar process: same cluster and Vault
            self.kube, self.vault = restart_of.kube, restart_of.vault
        else:
            self.kube = FakeKube()
            self.kube.objects[("Secret", "default", "approle")] = {
                "metadata": {"name": "approle", "namespace": "default"},
                "data": {"role-id": "cg==", "secret-id": "cw=="},
            }
            self.vault = FakeVault()
        self.leading = True
        self.r = Reconciler(
            self.kube,
            Executor(self.vault, _Reader(self.kube), service_account_token=lambda: ""),
            StateStore(self.kube, NS),
            Recorder(self.kube, "test", timedelta(minutes=10)),
            Settings(controller_namespace=NS, workers=2, startup_spread_seconds=spread),
            leading=lambda: self.leading,
            clock=lambda: self.now,
            rng=random.Random(1),
        )

    def state(self, mirror: str) -> state.MirrorState | None:
        body = self.kube.objects.get(("Secret", NS, names.state_secret_name(mirror)))
        return (
            state.decode(body["metadata"]["annotations"][state.STATE_ANNOTATION]) if body else None
        )

    def reasons(self) -> list[str]:
        return [e["reason"] for e in self.kube.events()]

    def start(self) -> None:
        self.r.relist()
        self.r.resume()

    def run_due(self) -> list[str]:
        due = self.r.schedule.pop_due(self.now)
        for name in due:
            self.r.act(name)
        return due


class _Reader:
    def __init__(self, kube: FakeKube) -> None:
        self.kube = kube

    def secret_data(self, namespace: str, name: str) -> dict[str, bytes] | None:
        import base64

        body = self.kube.read_secret(namespace, name)
        if body is None:
            return None
        return {k: base64.b64decode(v) for k, v in (body.get("data") or {}).items()}


def test_a_vault_mirror_is_read_published_and_polled_with_jitter() -> None:
    w = World()
    w.vault.kv["secret/data/app"] = {"password": b"test"}
    w.kube.mirror_items = [mirror_obj("app", vault_source(pollPeriodSeconds=100))]
    w.start()
    assert w.run_due() == ["app"]
    st = w.state("app")
    assert st is not None
    assert st.generation == 1
    assert st.source is not None
    assert st.error is None
    body = w.kube.objects[("Secret", NS, "mirror-state-app")]
    assert body["data"] == {"password": "dGVzdA=="}
    due = w.r.schedule.due_at("app")
    assert due is not None
    assert timedelta(seconds=90) <= due - w.now <= timedelta(seconds=110)
    writes = len(w.kube.writes)
    w.now = due
    assert w.run_due() == ["app"]
    assert len(w.kube.writes) == writes  # nothing changed: no write


def test_a_restart_spreads_polls_but_not_a_lease_renewal_that_is_due() -> None:
    first = World()
    first.vault.kv["secret/data/app"] = {"k": b"1"}
    first.vault.dynamic["database/creds/app"] = 60
    first.kube.mirror_items = [
        mirror_obj("static", vault_source()),
        mirror_obj("leased", vault_source("database/creds/app")),
    ]
    first.start()
    first.run_due()

    # The lease's renewal point (2/3 of 60 s) has passed while the sidecar was down.
    restarted = World(now=first.now + timedelta(seconds=50), spread=5, restart_of=first)
    restarted.start()

    assert restarted.r.schedule.due_at("leased") == restarted.now
    static_due = restarted.r.schedule.due_at("static")
    assert static_due is not None
    assert restarted.now < static_due <= restarted.now + timedelta(seconds=5)


def test_a_spec_change_is_acted_on_at_once() -> None:
    w = World()
    w.vault.kv["secret/data/app"] = {"k": b"1"}
    w.vault.kv["secret/data/other"] = {"k": b"2"}
    w.kube.mirror_items = [mirror_obj("app", vault_source())]
    w.start()
    w.run_due()
    w.r.observe(mirror_obj("app", vault_source("secret/data/other"), generation=2))
    assert w.r.schedule.due_at("app") == w.now
    w.run_due()
    st = w.state("app")
    assert st is not None
    assert st.generation == 2
    assert st.source is not None
    assert st.source.path == "secret/data/other"


def test_errors_are_recorded_with_an_event_and_retried() -> None:
    w = World()
    w.kube.mirror_items = [mirror_obj("app", vault_source("secret/data/missing"))]
    w.start()
    w.run_due()
    st = w.state("app")
    assert st is not None
    assert st.error is not None
    assert st.error.reason == "VaultNotFound"
    assert w.reasons() == ["VaultError"]
    assert w.r.schedule.due_at("app") is not None


def test_the_state_of_a_former_mirror_of_the_same_name_is_not_taken_over() -> None:
    # A mirror deleted and created again under its name while its old state Secret still
    # exists (the GC has not got to it, or --cascade=orphan left it): the new mirror must not
    # inherit the old Vault data, or the hooks would fan it out as the new mirror's.
    w = World()
    w.vault.kv["secret/data/app"] = {"password": b"old-secret"}
    w.kube.mirror_items = [mirror_obj("app", vault_source())]
    w.start()
    w.run_due()
    assert w.kube.objects[("Secret", NS, "mirror-state-app")]["data"]

    again = mirror_obj("app", vault_source("secret/data/new"), uid="another-uid")
    w.kube.mirror_items = [again]
    w.vault.fail = VaultError("VaultAuthFailed", "login refused")
    w.r.relist()
    w.r.act("app")

    body = w.kube.objects[("Secret", NS, "mirror-state-app")]
    assert [o["uid"] for o in body["metadata"]["ownerReferences"]] == ["another-uid"]
    assert not body.get("data")
    st = w.state("app")
    assert st is not None
    assert st.source is None
    assert st.error is not None


def test_an_unexpected_exception_does_not_stop_the_loop() -> None:
    w = World()
    w.kube.mirror_items = [
        mirror_obj("a", vault_source()),
        mirror_obj("b", vault_source("secret/data/b")),
    ]
    w.vault.kv["secret/data/b"] = {"k": b"v"}

    def boom(*args: object, **kwargs: object) -> object:
        raise RuntimeError("bug")

    original = w.vault.read_source
    w.vault.read_source = lambda conn, creds, path, *a, **kw: (  # type: ignore[method-assign]
        boom() if path == "secret/data/app" else original(conn, creds, path, *a, **kw)
    )
    w.start()
    w.run_due()
    a, b = w.state("a"), w.state("b")
    assert a is not None
    assert a.error is not None
    assert a.error.reason == "SidecarError"
    assert b is not None
    assert b.error is None


RETAIN = {"destination": {"namespaces": ["a", "b"]}, "deletePolicy": "retain"}
OWNER = {"apiVersion": "mirrors.kts.studio/v1alpha2", "kind": "SecretMirror", "name": "m",
         "uid": UID, "controller": True, "blockOwnerDeletion": True}  # fmt: skip
OTHER = {"apiVersion": "v1", "kind": "ConfigMap", "name": "keeper", "uid": "other-uid"}


def _copies(w: World, *namespaces: str, extra_owner: bool = False) -> None:
    for n, ns in enumerate(namespaces):
        w.kube.objects[("Secret", ns, "mysecret")] = {
            "metadata": {
                "name": "mysecret",
                "namespace": ns,
                "resourceVersion": f"5{n}",
                "labels": {"controller-uid": UID, "app.kubernetes.io/managed-by": "mirrors"},
                "ownerReferences": [OWNER, OTHER] if extra_owner and n == 0 else [OWNER],
            },
            "data": {"k": "dg=="},
        }


def _owners(w: World, ns: str) -> list[str]:
    refs = w.kube.objects[("Secret", ns, "mysecret")]["metadata"].get("ownerReferences") or []
    return [r["uid"] for r in refs]


def test_a_retained_mirror_being_deleted_releases_its_copies() -> None:
    w = World()
    _copies(w, "a", "b", extra_owner=True)
    w.kube.objects[("Secret", "c", "stray")] = {  # the label, but not owned: left alone
        "metadata": {"name": "stray", "namespace": "c", "resourceVersion": "9",
                     "labels": {"controller-uid": UID}},
    }  # fmt: skip
    w.kube.mirror_items = [mirror_obj("m", RETAIN)]
    w.start()
    assert w.run_due() == []  # not being deleted: nothing to release
    w.r.observe(mirror_obj("m", RETAIN, deleting=True))
    assert w.r.schedule.due_at("m") == w.now
    assert w.run_due() == ["m"]
    assert _owners(w, "a") == ["other-uid"]  # only the mirror's reference goes
    assert _owners(w, "b") == []
    assert "ownerReferences" not in w.kube.objects[("Secret", "b", "mysecret")]["metadata"]
    labels = w.kube.objects[("Secret", "b", "mysecret")]["metadata"]["labels"]
    assert labels["controller-uid"] == UID  # provenance stays
    assert [(ns, name) for ns, name, _ in w.kube.patches] == [("a", "mysecret"), ("b", "mysecret")]
    assert w.reasons() == ["CopiesReleased"]
    assert w.kube.events()[0]["message"] == (
        "released 2 copies; they stay after the mirror is deleted"
    )
    assert w.kube.events()[0]["type"] == "Normal"
    # None is owned any more: a slow re-check until the mirror is gone, and no more patches.
    due = w.r.schedule.due_at("m")
    assert due == w.now + timedelta(seconds=30)
    w.now = due
    assert w.run_due() == ["m"]
    assert len(w.kube.patches) == 2
    w.r.forget(mirror_obj("m", RETAIN))
    assert w.r.schedule.due_at("m") is None


def test_the_delete_policy_releases_nothing() -> None:
    w = World()
    _copies(w, "a")
    plain = {"destination": {"namespaces": ["a"]}}
    w.kube.mirror_items = [mirror_obj("m", plain)]
    w.start()
    w.r.observe(mirror_obj("m", plain, deleting=True))
    w.run_due()
    assert w.kube.patches == []
    assert _owners(w, "a") == [UID]


def test_a_copy_changed_meanwhile_is_read_again_and_released() -> None:
    w = World()
    _copies(w, "a")
    w.kube.mirror_items = [mirror_obj("m", RETAIN, deleting=True)]
    real = w.kube.list_secrets_everywhere

    def stale(selector: str) -> list[dict[str, Any]]:
        found = real(selector)
        w.kube.objects[("Secret", "a", "mysecret")]["metadata"]["resourceVersion"] = "77"
        return found

    w.kube.list_secrets_everywhere = stale  # type: ignore[method-assign,assignment]
    w.start()
    w.run_due()
    assert _owners(w, "a") == []
    tests = [ops[0]["value"] for _, _, ops in w.kube.patches]
    assert tests == ["77"]  # the 422 on "50" was followed by a fresh read
    assert w.reasons() == ["CopiesReleased"]


@pytest.mark.parametrize("failing", ["patch_secret", "list_everywhere"])
def test_a_failed_release_is_a_warning_and_retried_soon(failing: str) -> None:
    w = World()
    _copies(w, "a")
    w.kube.mirror_items = [mirror_obj("m", RETAIN, deleting=True)]
    w.kube.fail_next[failing] = ApiError(403)
    w.start()
    assert w.run_due() == ["m"]
    assert _owners(w, "a") == [UID]
    assert w.reasons() == ["ReleaseFailed"]
    event = w.kube.events()[0]
    assert event["type"] == "Warning"
    assert "HTTP 403" in event["message"]
    due = w.r.schedule.due_at("m")
    assert due == w.now + timedelta(seconds=3)
    w.now = due
    w.run_due()
    assert _owners(w, "a") == []
    assert w.reasons() == ["ReleaseFailed", "CopiesReleased"]


def test_a_vault_mirror_is_finalized_and_released() -> None:
    w = World()
    w.vault.kv["secret/data/app"] = {"k": b"v"}
    spec = vault_source(deletePolicy="retain")
    w.kube.mirror_items = [mirror_obj("m", spec)]
    _copies(w, "team-a")
    w.start()
    w.run_due()
    w.r.observe(mirror_obj("m", spec, deleting=True))
    w.run_due()
    st = w.state("m")
    assert st is not None
    assert st.finalized
    assert _owners(w, "team-a") == []


def test_status_transitions_become_events_only_after_first_sight() -> None:
    w = World()
    plain = {"destination": {"namespaces": ["a"]}}
    w.kube.mirror_items = [mirror_obj("m", plain, ready=("Synced", "ok"))]
    w.start()
    assert w.reasons() == []  # a restart does not repeat old news
    w.r.observe(
        mirror_obj(
            "m",
            plain,
            ready=("SourceNotFound", "secret default/mysecret not found, waiting to appear"),
        )
    )
    w.r.observe(mirror_obj("m", plain, ready=("Synced", "synced to 2 namespace(s)")))
    assert w.reasons() == ["NoSecret", "Active"]
    assert w.kube.events()[0]["message"] == "secret default/mysecret not found, waiting to appear"


def test_followers_watch_but_never_write() -> None:
    w = World()
    w.leading = False
    plain = {"destination": {"namespaces": ["a"]}, "deletePolicy": "retain"}
    w.kube.mirror_items = [mirror_obj("m", plain, ready=("Synced", "ok"))]
    w.r.relist()
    w.r.observe(mirror_obj("m", plain, ready=("SourceNotFound", "x")))
    assert w.r.synced.is_set()
    assert w.kube.writes == []
    assert w.kube.patches == []
    assert w.r.act("m") is None


@pytest.mark.parametrize(("policy", "revoked"), [("delete", True), ("retain", False)])
def test_deletion_revokes_per_policy_and_cleans_up(policy: str, revoked: bool) -> None:
    w = World()
    w.vault.dynamic["database/creds/app"] = 3600
    spec = vault_source("database/creds/app", deletePolicy=policy)
    w.kube.mirror_items = [mirror_obj("db", spec)]
    w.start()
    w.run_due()
    w.r.observe(mirror_obj("db", spec, deleting=True))
    w.run_due()
    st = w.state("db")
    assert st is not None
    assert st.finalized
    assert st.revoked is revoked
    assert len(w.vault.revoked) == int(revoked)
    # Nothing left to do for Vault; a retained mirror's copies are re-checked until it is gone.
    recheck = w.now + timedelta(seconds=30)
    assert w.r.schedule.due_at("db") == (None if policy == "delete" else recheck)
    # After --cascade=orphan the GC orphans the state Secret; the sidecar deletes it then.
    w.kube.objects[("Secret", NS, "mirror-state-db")]["metadata"]["ownerReferences"] = []
    w.r.forget(mirror_obj("db", spec))
    assert ("Secret", NS, "mirror-state-db") not in w.kube.objects


def test_resume_removes_orphaned_state_of_mirrors_that_are_gone() -> None:
    w = World()
    store = StateStore(w.kube, NS)
    store.put("gone", "old-uid", state.MirrorState(generation=1), {})
    w.kube.objects[("Secret", NS, "mirror-state-gone")]["metadata"]["ownerReferences"] = []
    store.put("owned", "other-uid", state.MirrorState(generation=1), {})  # the GC's business
    w.start()
    assert ("Secret", NS, "mirror-state-gone") not in w.kube.objects
    assert ("Secret", NS, "mirror-state-owned") in w.kube.objects


def test_a_namespace_mirror_that_was_a_vault_mirror_loses_its_state() -> None:
    w = World()
    w.vault.kv["secret/data/app"] = {"k": b"v"}
    w.kube.mirror_items = [mirror_obj("m", vault_source())]
    w.start()
    w.run_due()
    w.r.observe(mirror_obj("m", {"destination": {"namespaces": ["a"]}}, generation=2))
    w.run_due()
    assert w.state("m") is None


def test_the_dispatcher_threads_act_on_their_own() -> None:
    w = World()
    w.vault.kv["secret/data/app"] = {"k": b"v"}
    w.kube.mirror_items = [mirror_obj("app", vault_source())]
    r = w.r
    r.clock = lambda: datetime.now(UTC)
    stop = threading.Event()
    thread = threading.Thread(target=r.run_dispatcher, args=(stop,), daemon=True)
    r.relist()
    r.on_started_leading()
    thread.start()
    deadline = time.monotonic() + 5
    while w.state("app") is None and time.monotonic() < deadline:
        time.sleep(0.02)
    stop.set()
    r.schedule.wake()
    thread.join(5)
    assert w.state("app") is not None
    assert not thread.is_alive()


def test_copies_in_flight_between_two_synced_states_are_no_news() -> None:
    # New namespaces make the mirror Progressing (copies written, not yet observed) and then
    # Synced again: one Active for the mirror becoming synced, not one per new namespace.
    w = World()
    plain = {"destination": {"namespaces": ["a"]}}
    w.start()
    for reason in ("", "SourceNotFound", "Progressing", "Synced", "Progressing", "Synced"):
        w.r.observe(mirror_obj("m", plain, ready=(reason, "m")))
    counts = {e["reason"]: e.get("count", 1) for e in w.kube.events()}
    assert counts == {"NoSecret": 1, "Active": 1}
