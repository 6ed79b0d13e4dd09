"""The state Secret: its shape (the contract in mirrors.state) and writes only on change."""

from __future__ import annotations

import base64

from mirrors import names, state
from mirrors.state import ErrorState, MirrorState, SourceState
from sidecar.state_store import StateStore, desired_body
from tests.unit.sidecar.fakes import FakeKube

NS = "mirrors"
SOURCE = SourceState(path="kv/x", readAt="2026-12-03T12:00:00Z", contentHash="sha256:a")


def test_shape_owner_without_controller_and_no_controller_uid_label() -> None:
    body = desired_body(
        "db", "uid-1", NS, MirrorState(generation=3, source=SOURCE), {"pw": b"test"}
    )
    meta = body["metadata"]
    assert meta["name"] == names.state_secret_name("db") == "mirror-state-db"
    assert meta["namespace"] == NS
    assert meta["labels"] == {names.MANAGED_BY_LABEL: "mirrors", state.STATE_OF_LABEL: "db"}
    assert names.CONTROLLER_UID_LABEL not in meta["labels"]
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "mirrors.kts.studio/v1alpha2",
            "kind": "SecretMirror",
            "name": "db",
            "uid": "uid-1",
        }
    ]
    assert state.decode(meta["annotations"][state.STATE_ANNOTATION]) == MirrorState(
        generation=3, source=SOURCE
    )
    assert body["data"] == {"pw": base64.b64encode(b"test").decode()}  # plain text stays exact


def test_long_mirror_names_get_no_state_of_label() -> None:
    body = desired_body("x" * 100, "u", NS, MirrorState(generation=1), {})
    assert state.STATE_OF_LABEL not in body["metadata"]["labels"]
    assert len(body["metadata"]["name"]) <= 253


def test_writes_only_when_something_changed() -> None:
    kube = FakeKube()
    store = StateStore(kube, NS)
    st = MirrorState(generation=1, source=SOURCE)
    assert store.put("db", "uid-1", st, {"pw": b"1"})
    assert not store.put("db", "uid-1", st, {"pw": b"1"})
    assert not StateStore(kube, NS).put("db", "uid-1", st, {"pw": b"1"})  # fresh cache, same answer
    assert store.put("db", "uid-1", st, {"pw": b"2"})
    err = ErrorState(reason="VaultUnreachable", message="down", at="2026-12-03T12:01:00Z")
    assert store.put(
        "db", "uid-1", MirrorState(generation=1, source=SOURCE, error=err), {"pw": b"2"}
    )
    assert [w[0] for w in kube.writes] == ["create", "replace", "replace"]
    stored = store.get("db")
    assert stored is not None
    assert stored.state is not None
    assert stored.state.error == err
    assert stored.data == {"pw": b"2"}


def test_foreign_labels_and_annotations_survive_a_write() -> None:
    kube = FakeKube()
    store = StateStore(kube, NS)
    store.put("db", "u", MirrorState(generation=1), {})
    kube.objects[("Secret", NS, "mirror-state-db")]["metadata"]["annotations"]["backup/ts"] = "1"
    store = StateStore(kube, NS)
    store.put("db", "u", MirrorState(generation=2), {})
    annotations = kube.objects[("Secret", NS, "mirror-state-db")]["metadata"]["annotations"]
    assert annotations["backup/ts"] == "1"


def test_a_secret_deleted_behind_the_store_is_recreated() -> None:
    kube = FakeKube()
    store = StateStore(kube, NS)
    store.put("db", "u", MirrorState(generation=1), {})
    kube.objects.clear()
    assert store.put("db", "u", MirrorState(generation=2), {})
    assert ("Secret", NS, "mirror-state-db") in kube.objects


def test_damaged_annotation_reads_as_no_state_but_keeps_data() -> None:
    kube = FakeKube()
    StateStore(kube, NS).put("db", "u", MirrorState(generation=1), {"pw": b"x"})
    kube.objects[("Secret", NS, "mirror-state-db")]["metadata"]["annotations"][
        state.STATE_ANNOTATION
    ] = "{"
    stored = StateStore(kube, NS).get("db")
    assert stored is not None
    assert stored.state is None
    assert stored.data == {"pw": b"x"}


def test_prime_answers_absent_names_without_reading() -> None:
    kube = FakeKube()
    StateStore(kube, NS).put("db", "u", MirrorState(generation=1), {})
    store = StateStore(kube, NS)
    found = store.prime(kube.list_secrets(NS, f"{names.MANAGED_BY_LABEL}=mirrors"))
    assert set(found) == {"db"}
    kube.objects[("Secret", NS, "mirror-state-other")] = {"metadata": {"name": "x"}}  # not listed
    assert store.get("other") is None  # from the LIST, no GET


def test_delete_only_what_the_mirror_owns_or_nobody_owns() -> None:
    kube = FakeKube()
    store = StateStore(kube, NS)
    store.put("db", "uid-new", MirrorState(generation=1), {})
    assert not store.delete("db", owner_uid="uid-old")  # a recreated mirror's state stays
    assert store.delete("db", owner_uid="uid-new")
    assert ("Secret", NS, "mirror-state-db") not in kube.objects
