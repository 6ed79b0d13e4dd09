"""Scenario 1 (SCENARIOS.md §1) end to end: the original's manifests, applied unchanged with
kubectl, against a real API server; the hooks driven by Metacontroller (or the test driver).
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import time
from collections.abc import Iterator

import pytest

from sidecar.config import parse
from sidecar.runtime import Sidecar, api_client
from tests.e2e.conftest import E2E, eventually

pytestmark = pytest.mark.e2e

MIRROR = "mysecret-mirror"
SOURCE = {"username": "hellothere", "password": "generalkenobi"}
NOT_FOUND = "secret default/mysecret not found, waiting to appear"
NEVER = "1970-01-01T00:00:00Z"
COLUMNS = [
    "NAME", "SOURCE TYPE", "SOURCE NAME", "DESTINATION TYPE", "DELETE POLICY", "POLL PERIOD",
    "MIRROR STATUS", "LAST SYNC TIME", "AGE",
]  # fmt: skip
# "The copies appear immediately after the namespace is created": no poll period involved.
PROMPTLY = 5.0
CONVERGE = 30.0


def columns(line: str) -> list[str]:
    return re.split(r"\s{2,}", line.strip())


def phase(e2e: E2E, expected: str) -> dict[str, object]:
    status = e2e.status(MIRROR)
    assert status.get("mirrorStatus") == expected, status
    return status


def wait_copy(e2e: E2E, ns: str, data: dict[str, str], timeout: float = CONVERGE) -> float:
    """Seconds until `ns/mysecret` holds `data`."""
    started = time.monotonic()
    eventually(lambda: e2e.copy_data(ns, "mysecret") == data, timeout, f"{ns}/mysecret == {data}")
    return time.monotonic() - started


def active_with(e2e: E2E, *namespaces: str) -> None:
    """The mirror plus the source (both examples, unchanged), copies present in `namespaces`."""
    e2e.apply_example("mysecret-mirror.yaml")
    e2e.apply_example("mysecret.yaml")
    for ns in namespaces:
        e2e.create_namespace(ns)
    for ns in namespaces:
        wait_copy(e2e, ns, SOURCE)
    eventually(lambda: phase(e2e, "Active"), CONVERGE, "mirror Active")


def test_transcript(e2e: E2E) -> None:
    e2e.apply_example("mysecret-mirror.yaml")
    status = eventually(lambda: phase(e2e, "Pending"), CONVERGE, "status Pending")
    assert status["message"] == NOT_FOUND
    assert status["lastSyncTime"] == NEVER
    table = e2e.kubectl("get", "secretmirrors").splitlines()
    assert columns(table[0]) == COLUMNS
    row = [r for r in table[1:] if r.startswith(MIRROR + " ")]
    assert len(row) == 1, table
    assert columns(row[0])[:-1] == [
        MIRROR, "secret", "mysecret", "namespaces", "delete", "180", "Pending", NEVER,
    ]  # fmt: skip

    e2e.apply_example("mysecret.yaml")
    status = eventually(lambda: phase(e2e, "Active"), CONVERGE, "status Active")
    assert status["lastSyncTime"] != NEVER
    row = [r for r in e2e.kubectl("get", "secretmirrors").splitlines() if r.startswith(MIRROR)]
    assert columns(row[0])[6] == "Active"

    for ns in ("project-a-main", "project-b-main"):
        e2e.create_namespace(ns)
        took = wait_copy(e2e, ns, SOURCE, timeout=PROMPTLY)
        print(f"copy in {ns} readable {took:.2f}s after kubectl create ns")  # noqa: T201

    lines = [line for line in e2e.kubectl("get", "secret", "-A").splitlines() if "mysecret" in line]
    got = sorted(columns(line)[:4] for line in lines)
    assert got == [
        ["default", "mysecret", "Opaque", "2"],
        ["project-a-main", "mysecret", "Opaque", "2"],
        ["project-b-main", "mysecret", "Opaque", "2"],
    ]
    copy = e2e.cluster.get("secret", "mysecret", "project-a-main")
    assert copy is not None
    mirror = e2e.mirror(MIRROR)
    owner = copy["metadata"]["ownerReferences"]
    assert [(o["kind"], o["name"], o["uid"], o.get("controller")) for o in owner] == [
        ("SecretMirror", MIRROR, mirror["metadata"]["uid"], True)
    ]
    assert copy["metadata"]["labels"]["controller-uid"] == mirror["metadata"]["uid"]
    assert copy["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "mirrors"
    final = eventually(
        lambda: (
            phase(e2e, "Active").get("syncedNamespaces") == ["project-a-main", "project-b-main"]
            and e2e.status(MIRROR)
        ),
        CONVERGE,
        "both namespaces reported synced",
    )
    assert final["namespaces"] == {"synced": 2, "pending": 0, "conflicts": 0, "excluded": 0}
    assert final["observedGeneration"] == mirror["metadata"]["generation"]


def test_source_change_reaches_every_copy(e2e: E2E) -> None:
    namespaces = ("project-a-change", "project-b-change")
    active_with(e2e, *namespaces)
    patch = {"stringData": {"password": "hello-there-2"}}
    e2e.kubectl(
        "patch", "secret", "mysecret", "-n", "default", "--type=merge", "-p", json.dumps(patch)
    )
    changed = {**SOURCE, "password": "hello-there-2"}
    for ns in namespaces:
        wait_copy(e2e, ns, changed, timeout=PROMPTLY)


def test_source_recreated_with_another_type_reaches_every_copy(e2e: E2E) -> None:
    """A Secret's type is immutable: the copies are replaced, not stuck pending."""
    namespaces = ("project-a-retype", "project-b-retype")
    active_with(e2e, *namespaces)
    e2e.kubectl("delete", "secret", "mysecret", "-n", "default")
    e2e.kubectl(
        "create", "secret", "generic", "mysecret", "-n", "default",
        "--type=kubernetes.io/basic-auth", "--from-literal=username=hellothere",
        "--from-literal=password=basic",
    )  # fmt: skip
    basic = {"username": "hellothere", "password": "basic"}

    def retyped(ns: str) -> bool:
        copy = e2e.cluster.get("secret", "mysecret", ns)
        return copy is not None and copy["type"] == "kubernetes.io/basic-auth"

    for ns in namespaces:
        eventually(lambda ns=ns: retyped(ns), CONVERGE, f"{ns} retyped")  # type: ignore[misc]
        wait_copy(e2e, ns, basic)
    eventually(
        lambda: phase(e2e, "Active").get("syncedNamespaces") == sorted(namespaces),
        CONVERGE,
        "both copies synced",
    )


def test_edited_copy_is_restored_and_deleted_copy_recreated(e2e: E2E) -> None:
    active_with(e2e, "project-a-edit", "project-b-edit")
    tampered = {"data": {"password": base64.b64encode(b"tampered").decode()}}
    body = json.dumps(tampered)
    e2e.kubectl("patch", "secret", "mysecret", "-n", "project-a-edit", "--type=merge", "-p", body)
    wait_copy(e2e, "project-a-edit", SOURCE, timeout=PROMPTLY)

    before = e2e.cluster.get("secret", "mysecret", "project-b-edit")
    assert before is not None
    e2e.kubectl("delete", "secret", "mysecret", "-n", "project-b-edit")
    wait_copy(e2e, "project-b-edit", SOURCE, timeout=PROMPTLY)
    after = e2e.cluster.get("secret", "mysecret", "project-b-edit")
    assert after is not None
    assert after["metadata"]["uid"] != before["metadata"]["uid"]


def test_key_added_to_a_copy_is_removed(e2e: E2E) -> None:
    active_with(e2e, "project-a-stray")
    stray = {"data": {"injected": base64.b64encode(b"not from the source").decode()}}
    body = json.dumps(stray)
    e2e.kubectl("patch", "secret", "mysecret", "-n", "project-a-stray", "--type=merge", "-p", body)
    wait_copy(e2e, "project-a-stray", SOURCE, timeout=PROMPTLY)
    eventually(
        lambda: "project-a-stray" in (e2e.status(MIRROR).get("syncedNamespaces") or []),
        CONVERGE,
        "project-a-stray synced again",
    )


def test_foreign_secret_is_untouched_and_reported(e2e: E2E) -> None:
    e2e.create_namespace("project-a-foreign")
    e2e.kubectl(
        "create", "secret", "generic", "mysecret", "-n", "project-a-foreign",
        "--from-literal=owner=team-a",
    )  # fmt: skip
    foreign = e2e.cluster.get("secret", "mysecret", "project-a-foreign")
    active_with(e2e, "project-b-friend")
    status = eventually(
        lambda: (
            e2e.status(MIRROR).get("conflictNamespaces") == ["project-a-foreign"]
            and e2e.status(MIRROR)
        ),
        CONVERGE,
        "project-a-foreign reported as a conflict",
    )
    assert status["syncedNamespaces"] == ["project-b-friend"]
    assert status["namespaces"]["conflicts"] == 1
    still = e2e.cluster.get("secret", "mysecret", "project-a-foreign")
    assert still == foreign  # not even touched: same resourceVersion, no owner, no label
    assert e2e.copy_data("project-a-foreign", "mysecret") == {"owner": "team-a"}


def test_exclusions_and_namespace_selector(e2e: E2E) -> None:
    enabled = {"mirrors.kts.studio/registry": "enabled"}
    e2e.create_namespace("platform")
    e2e.kubectl(
        "create", "secret", "generic", "registry-credentials", "-n", "platform",
        "--from-literal=token=s3cr3t",
    )  # fmt: skip
    e2e.create_namespace("project-a-web", enabled)
    e2e.create_namespace("project-a-sandbox-1", enabled)
    e2e.create_namespace("project-a-unlabelled")
    e2e.create_namespace("project-b-web", enabled)
    e2e.apply_example("exclude-namespaces.yaml")
    expected = {"token": "s3cr3t"}

    def copies() -> dict[str, bool]:
        return {
            ns: e2e.copy_data(ns, "registry-credentials") == expected
            for ns in (
                "project-a-web",
                "project-a-sandbox-1",
                "project-a-unlabelled",
                "project-b-web",
            )
        }

    eventually(lambda: copies()["project-a-web"], CONVERGE, "copy in project-a-web")
    status = eventually(
        lambda: (
            e2e.status("registry-credentials").get("excludedNamespaces")
            and e2e.status("registry-credentials")
        ),
        CONVERGE,
        "excluded namespaces in status",
    )
    assert status["excludedNamespaces"] == ["project-a-sandbox-1"]
    assert status["syncedNamespaces"] == ["project-a-web"]
    assert copies() == {
        "project-a-web": True, "project-a-sandbox-1": False,
        "project-a-unlabelled": False, "project-b-web": False,
    }  # fmt: skip

    # Labelling a namespace is a related-object change: the copy follows at once, and goes
    # away again with the label.
    e2e.kubectl("label", "namespace", "project-a-unlabelled", "mirrors.kts.studio/registry=enabled")
    eventually(lambda: copies()["project-a-unlabelled"], PROMPTLY, "copy after labelling")
    e2e.kubectl("label", "namespace", "project-a-unlabelled", "mirrors.kts.studio/registry-")
    eventually(
        lambda: e2e.cluster.get("secret", "registry-credentials", "project-a-unlabelled") is None,
        PROMPTLY,
        "copy removed with the label",
    )
    assert copies()["project-a-web"]


def test_a_selector_the_api_server_rejects_is_an_error_that_keeps_the_copies(e2e: E2E) -> None:
    """`In` without values passes the CRD's schema, but no list call accepts it: the mirror
    must say so in its status (not stall before sync), and its copies stay."""
    active_with(e2e, "project-a-badsel")
    bad = {"matchExpressions": [{"key": "team", "operator": "In"}]}
    patch = {"spec": {"destination": {"namespaceSelector": bad}}}
    e2e.kubectl("patch", "secretmirror", MIRROR, "--type=merge", "-p", json.dumps(patch))
    status = eventually(lambda: phase(e2e, "Error"), CONVERGE, "mirror Error")
    assert status["message"] == (
        "spec.destination.namespaceSelector.matchExpressions[0]: In needs values"
    )
    assert e2e.copy_data("project-a-badsel", "mysecret") == SOURCE


def test_moving_the_source_onto_a_copy_keeps_it(e2e: E2E) -> None:
    """source.namespace changed to a namespace holding this mirror's copy: that copy is the
    source now and must not be deleted; the other copies follow it."""
    active_with(e2e, "project-a-move", "project-b-move")
    before = e2e.cluster.get("secret", "mysecret", "project-a-move")
    assert before is not None
    patch = {"spec": {"source": {"namespace": "project-a-move"}}}
    e2e.kubectl("patch", "secretmirror", MIRROR, "--type=merge", "-p", json.dumps(patch))
    eventually(
        lambda: phase(e2e, "Active").get("source", {}).get("namespace") == "project-a-move",
        CONVERGE,
        "status names the new source",
    )
    time.sleep(2)  # a deletion by Metacontroller would have happened by now
    after = e2e.cluster.get("secret", "mysecret", "project-a-move")
    assert after is not None
    assert after["metadata"]["uid"] == before["metadata"]["uid"]
    changed = {"stringData": {"password": "from-the-new-source"}}
    e2e.kubectl(
        "patch", "secret", "mysecret", "-n", "project-a-move", "--type=merge",
        "-p", json.dumps(changed),
    )  # fmt: skip
    wait_copy(e2e, "project-b-move", {**SOURCE, "password": "from-the-new-source"})


def test_deleting_the_mirror_removes_the_copies(e2e: E2E) -> None:
    namespaces = ("project-a-del", "project-b-del")
    active_with(e2e, *namespaces)
    e2e.kubectl("delete", "secretmirror", MIRROR, "--timeout=60s")
    for ns in namespaces:
        eventually(
            lambda ns=ns: e2e.cluster.get("secret", "mysecret", ns) is None,  # type: ignore[misc]
            CONVERGE,
            f"copy in {ns} deleted",
        )
    assert e2e.copy_data("default", "mysecret") == SOURCE  # the source stays


def _make_retain(e2e: E2E, namespaces: tuple[str, ...]) -> None:
    active_with(e2e, *namespaces)
    body = '{"spec":{"deletePolicy":"retain"}}'
    e2e.kubectl("patch", "secretmirror", MIRROR, "--type=merge", "-p", body)
    generation = e2e.mirror(MIRROR)["metadata"]["generation"]
    eventually(
        lambda: e2e.status(MIRROR).get("observedGeneration") == generation, CONVERGE, "retain seen"
    )


def _assert_retained(e2e: E2E, namespaces: tuple[str, ...], uid: str) -> None:
    eventually(lambda: e2e.cluster.get("secretmirror", MIRROR) is None, CONVERGE, "mirror gone")
    time.sleep(2)  # the garbage collector has seen the owner go; nothing may remove them now
    for ns in namespaces:
        copy = e2e.cluster.get("secret", "mysecret", ns)
        assert copy is not None, f"copy in {ns} was deleted"
        assert not copy["metadata"].get("ownerReferences"), copy["metadata"]
        assert copy["metadata"]["labels"]["controller-uid"] == uid  # provenance stays
        assert e2e.copy_data(ns, "mysecret") == SOURCE


@contextlib.contextmanager
def _sidecar(e2e: E2E, namespace: str) -> Iterator[Sidecar]:
    """The sidecar, in-process, leader-elected in its own controller namespace."""
    e2e.create_namespace(namespace)
    argv = ["--controller-namespace", namespace, "--port", "0", "--host", "127.0.0.1",
            "--identity", f"e2e-{namespace}"]  # fmt: skip
    sidecar = Sidecar(parse(argv, env={}), api_client(str(e2e.cluster.kubeconfig)))
    sidecar.start()
    try:
        yield sidecar
    finally:
        sidecar.stop()


def _released_events(e2e: E2E, uid: str) -> list[str]:
    events = e2e.cluster.json(
        "get", "events", "-n", "default", "--field-selector", f"involvedObject.uid={uid}"
    )
    return [e["message"] for e in events["items"] if e["reason"] == "CopiesReleased"]


def _events(e2e: E2E, uid: str) -> list[tuple[str, str, str]]:
    found = e2e.cluster.json(
        "get", "events", "-n", "default", "--field-selector", f"involvedObject.uid={uid}"
    )
    return sorted((e["type"], e["reason"], e["message"]) for e in found["items"])


def test_describe_shows_the_original_events(e2e: E2E) -> None:
    """The transcript's Events: Warning NoSecret while the source is missing, then Normal
    Active once synced, as `kubectl describe secretmirror` lists them."""
    with _sidecar(e2e, "mirrors-events"):
        e2e.apply_example("mysecret-mirror.yaml")
        uid = e2e.mirror(MIRROR)["metadata"]["uid"]
        missing = ("Warning", "NoSecret", NOT_FOUND)
        eventually(lambda: missing in _events(e2e, uid), CONVERGE, "NoSecret event")
        e2e.apply_example("mysecret.yaml")
        synced = ("Normal", "Active", "SecretMirror is synced")
        eventually(lambda: synced in _events(e2e, uid), CONVERGE, "Active event")
    assert _events(e2e, uid) == sorted([missing, synced])  # one of each, nothing else
    described = e2e.kubectl("describe", "secretmirror", MIRROR)
    assert re.search(r"Warning\s+NoSecret\s.*" + re.escape(NOT_FOUND), described), described
    assert re.search(r"Normal\s+Active\s.*SecretMirror is synced", described), described


def test_retain_keeps_the_copies_without_owner(e2e: E2E) -> None:
    """A plain `kubectl delete` (propagationPolicy Background: the GC deletes every copy still
    owned by the mirror once it is gone). The finalize hook holds the deletion until the
    sidecar has released the copies; kubectl returns once the mirror is gone."""
    namespaces = ("project-a-keep", "project-b-keep")
    with _sidecar(e2e, "mirrors-keep"):
        _make_retain(e2e, namespaces)
        uid = e2e.mirror(MIRROR)["metadata"]["uid"]
        e2e.kubectl("delete", "secretmirror", MIRROR, "--timeout=60s")
        _assert_retained(e2e, namespaces, uid)
        messages = eventually(lambda: _released_events(e2e, uid), CONVERGE, "CopiesReleased")
    assert messages == ["released 2 copies; they stay after the mirror is deleted"]


def test_retain_waits_for_the_sidecar(e2e: E2E) -> None:
    """Without a sidecar the deletion holds, copies kept and owned; a sidecar that starts
    then (a failover) releases them and the deletion completes."""
    namespaces = ("project-a-wait", "project-b-wait")
    _make_retain(e2e, namespaces)
    uid = e2e.mirror(MIRROR)["metadata"]["uid"]
    e2e.kubectl("delete", "secretmirror", MIRROR, "--wait=false")
    eventually(
        lambda: "waiting" in e2e.status(MIRROR).get("message", ""), CONVERGE, "finalize waiting"
    )
    for ns in namespaces:
        copy = e2e.cluster.get("secret", "mysecret", ns)
        assert copy is not None
        assert [o["uid"] for o in copy["metadata"]["ownerReferences"]] == [uid]
    with _sidecar(e2e, "mirrors-wait"):
        _assert_retained(e2e, namespaces, uid)


def test_retain_with_cascade_orphan_keeps_the_copies_without_owner(e2e: E2E) -> None:
    """The GC-finalizer path: children are left to the GC, which orphans them (racing the
    sidecar, which then finds nothing or less to release); finalize ends."""
    namespaces = ("project-a-orphan", "project-b-orphan")
    with _sidecar(e2e, "mirrors-orphan"):
        _make_retain(e2e, namespaces)
        uid = e2e.mirror(MIRROR)["metadata"]["uid"]
        e2e.kubectl("delete", "secretmirror", MIRROR, "--cascade=orphan", "--timeout=60s")
        _assert_retained(e2e, namespaces, uid)


def test_hooks_killed_and_restarted_mid_scenario(e2e: E2E) -> None:
    active_with(e2e, "project-a-crash")
    e2e.hooks.kill()
    e2e.create_namespace("project-b-crash")
    patch = {"stringData": {"password": "after-the-crash"}}
    e2e.kubectl(
        "patch", "secret", "mysecret", "-n", "default", "--type=merge", "-p", json.dumps(patch)
    )
    time.sleep(1)
    e2e.hooks.start()
    changed = {**SOURCE, "password": "after-the-crash"}
    for ns in ("project-a-crash", "project-b-crash"):
        wait_copy(e2e, ns, changed, timeout=CONVERGE)
    status = eventually(
        lambda: (
            e2e.status(MIRROR).get("syncedNamespaces") == ["project-a-crash", "project-b-crash"]
            and e2e.status(MIRROR)
        ),
        CONVERGE,
        "both copies reported synced after the restart",
    )
    assert status["mirrorStatus"] == "Active"
