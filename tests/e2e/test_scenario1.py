"""Scenario 1 (SCENARIOS.md §1) end to end: the original's manifests, applied unchanged with
kubectl, against a real API server; the hooks driven by Metacontroller (or the test driver).
"""

from __future__ import annotations

import re
import time

import pytest

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
