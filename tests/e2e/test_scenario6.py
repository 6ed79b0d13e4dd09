"""Scenario 6 (SCENARIOS.md §6): one wildcard TLS certificate for every branch namespace of a
project, including namespaces created after the mirror, and none of another project's.

Project a uses examples/project-tls-mirror.yaml unchanged; project b the same manifest with
its own names, so two projects' certificates fan out side by side without crossing."""

from __future__ import annotations

import base64
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.e2e.conftest import E2E, EXAMPLES, eventually

pytestmark = pytest.mark.e2e

MAIN = "project-a-1120-main-23hf"
BRANCHES = ("project-a-1120-dev-4hg5", "project-a-1120-feature-1-aafd")
OTHERS = ("project-b-1200-main-7ds9", "project-b-1200-dev-k2p1")
LATER = "project-a-1120-feature-2-b7c1"
LATER_B = "project-b-1200-feature-9-x1y2"
NAME = "project-a-tls"
NAME_B = "project-b-tls"


def make_cert(directory: Path, cn: str) -> tuple[Path, Path]:
    crt, key = directory / f"{cn}.crt", directory / f"{cn}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", str(key), "-out", str(crt), "-days", "90",
         "-subj", f"/CN=*.{cn}.example.com"],
        check=True, capture_output=True,
    )  # fmt: skip
    return crt, key


def project_b_mirror() -> dict[str, object]:
    """The example for project a, with project b's names."""
    manifest: dict[str, object] = yaml.safe_load((EXAMPLES / "project-tls-mirror.yaml").read_text())
    text = yaml.safe_dump(manifest).replace(MAIN, OTHERS[0])
    text = text.replace("project-a-1120", "project-b-1200").replace(NAME, NAME_B)
    return dict(yaml.safe_load(text))


def test_tls_certificate_reaches_every_branch_namespace(e2e: E2E, tmp_path: Path) -> None:
    for ns in (MAIN, *BRANCHES, *OTHERS):
        e2e.create_namespace(ns)
    crt, key = make_cert(tmp_path, "project-a")
    e2e.kubectl("create", "secret", "tls", NAME, "-n", MAIN, f"--cert={crt}", f"--key={key}")
    crt_b, key_b = make_cert(tmp_path, "project-b")
    e2e.kubectl(
        "create", "secret", "tls", NAME_B, "-n", OTHERS[0], f"--cert={crt_b}",
        f"--key={key_b}",
    )  # fmt: skip
    source = e2e.cluster.get("secret", NAME, MAIN)
    source_b = e2e.cluster.get("secret", NAME_B, OTHERS[0])
    assert source is not None
    assert source_b is not None
    assert base64.b64decode(source["data"]["tls.crt"]) == crt.read_bytes()

    e2e.apply_example("project-tls-mirror.yaml")
    e2e.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(project_b_mirror()))
    e2e.mirrors.append(NAME_B)

    def has_copy(ns: str, name: str = NAME, of: dict[str, object] = source) -> bool:
        copy = e2e.cluster.get("secret", name, ns)
        return (
            copy is not None and copy["type"] == "kubernetes.io/tls" and copy["data"] == of["data"]
        )

    for ns in BRANCHES:
        eventually(lambda ns=ns: has_copy(ns), 30, f"certificate in {ns}")  # type: ignore[misc]
    eventually(lambda: has_copy(OTHERS[1], NAME_B, source_b), 30, f"b's certificate in {OTHERS[1]}")

    started = e2e.create_namespace(LATER)
    eventually(lambda: has_copy(LATER), 5, f"certificate in {LATER} right after creation")
    print(f"certificate readable in {LATER} {time.monotonic() - started:.2f}s after create ns")  # noqa: T201
    e2e.create_namespace(LATER_B)
    eventually(lambda: has_copy(LATER_B, NAME_B, source_b), 5, f"b's certificate in {LATER_B}")

    status = eventually(
        lambda: len(e2e.status(NAME).get("syncedNamespaces", ())) == 3 and e2e.status(NAME),
        30,
        "three branch namespaces reported synced",
    )
    assert status["mirrorStatus"] == "Active"
    assert status["syncedNamespaces"] == sorted((*BRANCHES, LATER))
    for ns in (*OTHERS, LATER_B):
        assert e2e.cluster.get("secret", NAME, ns) is None, f"{ns} got project a's certificate"
    for ns in (MAIN, *BRANCHES, LATER):
        assert e2e.cluster.get("secret", NAME_B, ns) is None, f"{ns} got project b's certificate"
    status_b = eventually(
        lambda: (
            e2e.status(NAME_B).get("syncedNamespaces") == [OTHERS[1], LATER_B]
            and e2e.status(NAME_B)
        ),
        30,
        "project b's branch namespaces reported synced",
    )
    assert status_b["mirrorStatus"] == "Active"
    # The source itself is untouched (not a copy of itself, no owner).
    again = e2e.cluster.get("secret", NAME, MAIN)
    assert again is not None
    assert again["metadata"]["resourceVersion"] == source["metadata"]["resourceVersion"]
    listed = e2e.kubectl("get", "secret", "-A", "--field-selector", f"metadata.name={NAME}")
    assert sorted(line.split()[0] for line in listed.splitlines()[1:]) == sorted(
        (MAIN, *BRANCHES, LATER)
    )
