"""Measure the resident memory of the two containers' processes, for the chart's resources.

    python -m tests.chart.measure [--sizes 0,1000,5000] [--mirrors 50]

* hooks: `python -m hooks` on a free port; RSS idle, then after Metacontroller-shaped /sync
  requests of each size (bench.hooks.build_request: every Namespace with managedFields, every
  copy as child and related object) — VmRSS after the request and VmHWM (the peak).
* sidecar: `python -m sidecar` against a real kube-apiserver (tests/support/controlplane.py),
  idle until /readyz, then with `--mirrors` namespace-fan-out SecretMirrors to watch.

Numbers are in MiB and go to stdout as one JSON object; docs/operations.md quotes them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.hooks import build_request
from tests.support.controlplane import ControlPlane, free_port

ROOT = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024


def status_kib(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def mib(pid: int) -> dict[str, float]:
    return {k: round(v / 1024, 1) for k, v in status_kib(pid).items()}


def wait_http(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    while True:
        try:
            with opener.open(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(url)
        time.sleep(0.2)


def post(url: str, body: bytes) -> int:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with opener.open(req, timeout=120) as resp:
        resp.read()
        return int(resp.status)


def measure_hooks(sizes: list[int]) -> dict[str, Any]:
    port = free_port()
    env = {**os.environ, "MIRRORS_LOG_LEVEL": "warning"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "hooks", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        time.sleep(1.0)
        result: dict[str, Any] = {"idle": mib(proc.pid)}
        for n in sizes:
            body = build_request(n)
            for _ in range(3):
                post(f"http://127.0.0.1:{port}/sync", body)
            result[f"sync_{n}_namespaces"] = {"request_mib": round(len(body) / MIB, 1)} | mib(
                proc.pid
            )
        return result
    finally:
        proc.terminate()
        proc.wait(15)


def mirror(i: int) -> dict[str, Any]:
    return {
        "apiVersion": "mirrors.kts.studio/v1alpha2",
        "kind": "SecretMirror",
        "metadata": {"name": f"measure-{i}"},
        "spec": {"source": {"name": f"measure-{i}"}, "destination": {"namespaces": ["x-.+"]}},
    }


def measure_sidecar(n_mirrors: int) -> dict[str, Any]:
    with ControlPlane(controller_manager=False) as cp:
        cp.kubectl("apply", "-f", str(ROOT / "crds" / "secretmirrors.mirrors.kts.studio.yaml"))
        cp.kubectl("wait", "--for=condition=Established", "crd/secretmirrors.mirrors.kts.studio")
        cp.kubectl("create", "namespace", "mirrors")
        port = free_port()
        env = {**os.environ, "MIRRORS_LOG_LEVEL": "warning"}
        with tempfile.TemporaryDirectory() as tmp:
            proc = subprocess.Popen(
                [
                    sys.executable, "-m", "sidecar", "--kubeconfig", str(cp.kubeconfig),
                    "--host", "127.0.0.1", "--port", str(port),
                    "--sa-token-path", str(Path(tmp) / "none"),
                ],
                cwd=ROOT,
                env=env,
            )  # fmt: skip
            try:
                wait_http(f"http://127.0.0.1:{port}/readyz")
                time.sleep(5.0)  # leader elected, state Secrets listed
                result: dict[str, Any] = {"idle": mib(proc.pid)}
                if n_mirrors:
                    items = {"apiVersion": "v1", "kind": "List"}
                    body = items | {"items": [mirror(i) for i in range(n_mirrors)]}
                    cp.kubectl("apply", "-f", "-", input=json.dumps(body))
                    time.sleep(5.0)
                    result[f"watching_{n_mirrors}_mirrors"] = mib(proc.pid)
                return result
            finally:
                proc.terminate()
                proc.wait(20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="0,1000,5000")
    parser.add_argument("--mirrors", type=int, default=50)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    report = {"hooks": measure_hooks(sizes), "sidecar": measure_sidecar(args.mirrors)}
    print(json.dumps(report, indent=2))  # noqa: T201


if __name__ == "__main__":
    main()
