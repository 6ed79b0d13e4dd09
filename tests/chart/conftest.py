"""Fixtures of the chart tests: `helm`/`kubectl` from hack/build-tools.sh, rendered manifests.

The binaries are found exactly as the end-to-end suite finds them
(`tests.support.controlplane.find_binaries`: `$MIRRORS_TOOLS_BIN`, else build-tools.sh).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.controlplane import ControlPlane, find_binaries

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "mirrors"
FULL_VALUES = Path(__file__).resolve().parent / "values-full.yaml"
RELEASE = "mirrors"
NAMESPACE = "mirrors"

Manifest = dict[str, Any]


@dataclass(frozen=True)
class Tools:
    bin_dir: Path

    @property
    def helm_bin(self) -> str:
        return str(self.bin_dir / "helm")

    @property
    def kubectl_bin(self) -> str:
        return str(self.bin_dir / "kubectl")

    def helm(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        res = subprocess.run(
            [self.helm_bin, *args], capture_output=True, text=True, timeout=120, check=False
        )
        if check and res.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed:\n{res.stderr}{res.stdout}")
        return res

    def template(self, *args: str, namespace: str = NAMESPACE) -> list[Manifest]:
        out = self.helm("template", RELEASE, str(CHART), "--namespace", namespace, *args).stdout
        return [doc for doc in yaml.safe_load_all(out) if doc]


@pytest.fixture(scope="session")
def tools() -> Tools:
    return Tools(find_binaries())


@pytest.fixture(scope="session")
def default_manifests(tools: Tools) -> list[Manifest]:
    return tools.template()


@pytest.fixture(scope="session")
def full_manifests(tools: Tools) -> list[Manifest]:
    return tools.template("--values", str(FULL_VALUES), "--include-crds")


def eventually(fn: Callable[[], object], timeout: float = 30.0, what: str = "") -> None:
    """Poll `fn` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while not fn():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what or fn}")
        time.sleep(0.2)


def find(manifests: list[Manifest], kind: str, name: str | None = None) -> Manifest:
    hits = [
        m
        for m in manifests
        if m["kind"] == kind and (name is None or m["metadata"]["name"] == name)
    ]
    assert len(hits) == 1, f"expected one {kind} {name or ''}, got {len(hits)}"
    return hits[0]


def kinds(manifests: list[Manifest]) -> list[str]:
    return sorted(m["kind"] for m in manifests)


@pytest.fixture(scope="module")
def controlplane(tools: Tools) -> Iterator[ControlPlane]:
    """A real kube-apiserver (no controller manager: nothing here needs GC or pods to run)."""
    with ControlPlane(tools.bin_dir, controller_manager=False) as cp:
        yield cp
