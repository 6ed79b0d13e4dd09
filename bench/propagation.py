"""Propagation latency, end to end, measured with the test driver (not a timed test).

    .venv/bin/python -m bench.propagation [--namespaces 200] [--mirrors 20] [--new 20]

Starts a local control plane (tests/support/controlplane.py), the hooks (`python -m hooks`) and
the CompositeController test driver (tests/e2e/driver) in place of Metacontroller. Sets up
`--mirrors` SecretMirrors, each copying its own source Secret into every `bench-ns-.+`
namespace, and `--namespaces` such namespaces (mirrors x namespaces copies). Then measures:

* new namespace: `--new` namespaces created one after another through the API; for each, the
  time from the create call to each of its `--mirrors` copies being readable (seen by a watch);
* source change: `--changes` sources changed one after another; the time until every copy of
  that mirror holds the new data.
"""

from __future__ import annotations

import argparse
import base64
import logging
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from tests.e2e.driver import CompositeDriver, Informer, Kube, with_hooks_url
from tests.support.controlplane import ControlPlane, find_binaries, free_port

ROOT = Path(__file__).resolve().parents[1]
SRC_NS = "bench-src"
Obj = dict[str, Any]


class Seen:
    """Watches every Secret; remembers when (ns, name) first held `value` under key `rev`."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.times: dict[tuple[str, str, str], float] = {}

    def record(self, obj: Obj) -> None:
        meta = obj["metadata"]
        rev = base64.b64decode((obj.get("data") or {}).get("rev", "")).decode()
        key = (meta["namespace"], meta["name"], rev)
        with self.cond:
            self.times.setdefault(key, time.monotonic())
            self.cond.notify_all()

    def wait(self, keys: list[tuple[str, str, str]], timeout: float = 300) -> list[float]:
        deadline = time.monotonic() + timeout
        with self.cond:
            while missing := [k for k in keys if k not in self.times]:
                if not self.cond.wait(deadline - time.monotonic()):
                    raise TimeoutError(f"{len(missing)} copies never arrived, e.g. {missing[:3]}")
            return [self.times[k] for k in keys]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def fmt(values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return f"p50 {pct(ms, 0.5):7.0f} ms   p99 {pct(ms, 0.99):7.0f} ms   max {max(ms):7.0f} ms"


def secret(ns: str, name: str, rev: str) -> Obj:
    data = {
        "password": base64.b64encode(f"pw-{name}-{rev}".encode()).decode(),
        "rev": base64.b64encode(rev.encode()).decode(),
    }
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns},
            "type": "Opaque", "data": data}  # fmt: skip


def run(args: argparse.Namespace) -> None:
    bin_dir = find_binaries()
    with ControlPlane(bin_dir, controller_manager=False) as cp:
        kube = Kube(cp.kubeconfig)
        kubectl = [str(bin_dir / "kubectl"), "--kubeconfig", str(cp.kubeconfig)]
        crd = ROOT / "crds" / "secretmirrors.mirrors.kts.studio.yaml"
        subprocess.run([*kubectl, "apply", "-f", str(crd)], check=True, capture_output=True)
        subprocess.run(
            [*kubectl, "wait", "--for=condition=Established", "--timeout=60s",
             "crd/secretmirrors.mirrors.kts.studio"],
            check=True, capture_output=True,
        )  # fmt: skip
        port = free_port()
        hooks = subprocess.Popen(
            [sys.executable, "-m", "hooks", "--host", "127.0.0.1", "--port", str(port),
             "--log-level", "warning"],
            cwd=ROOT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            for _ in range(100):
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
                    break
                except OSError:
                    time.sleep(0.1)
            measure(args, kube, f"http://127.0.0.1:{port}")
        finally:
            hooks.terminate()
            hooks.wait(10)


def measure(args: argparse.Namespace, kube: Kube, hooks_url: str) -> None:
    ns_res, secrets = kube.resource("v1", "namespaces"), kube.resource("v1", "secrets")
    mirror_res = kube.resource("mirrors.kts.studio/v1alpha2", "secretmirrors")
    seen = Seen()
    watch = Informer(kube, secrets)
    watch.add_handlers(seen.record, lambda _old, new: seen.record(new), lambda _obj: None)
    watch.start()
    watch.synced.wait(60)
    controller = yaml.safe_load((ROOT / "metacontroller" / "compositecontroller.yaml").read_text())
    driver = CompositeDriver(kube, with_hooks_url(controller, hooks_url), workers=args.workers)
    driver.start()
    names = [f"bench-{i:02d}" for i in range(args.mirrors)]
    kube.request("POST", ns_res.path(), body={"metadata": {"name": SRC_NS}})
    for name in names:
        kube.request("POST", secrets.path(SRC_NS), body=secret(SRC_NS, name, "0"))
        mirror = {
            "apiVersion": "mirrors.kts.studio/v1alpha2", "kind": "SecretMirror",
            "metadata": {"name": name},
            "spec": {"source": {"name": name, "namespace": SRC_NS},
                     "destination": {"namespaces": ["bench-ns-.+"]}},
        }  # fmt: skip
        kube.request("POST", mirror_res.path(), body=mirror)
    started = time.monotonic()
    namespaces = [f"bench-ns-{i:03d}" for i in range(args.namespaces)]
    for ns in namespaces:
        kube.request("POST", ns_res.path(), body={"metadata": {"name": ns}})
    seen.wait([(ns, name, "0") for ns in namespaces for name in names], timeout=1800)
    setup = time.monotonic() - started
    print(f"setup: {len(namespaces)} namespaces x {len(names)} mirrors = "
          f"{len(namespaces) * len(names)} copies in {setup:.1f}s", flush=True)  # fmt: skip
    time.sleep(3)  # let the queue drain

    per_copy: list[float] = []
    per_namespace: list[float] = []
    for i in range(args.new):
        ns = f"bench-ns-new-{i:03d}"
        t0 = time.monotonic()
        kube.request("POST", ns_res.path(), body={"metadata": {"name": ns}})
        arrived = [t - t0 for t in seen.wait([(ns, name, "0") for name in names])]
        per_copy += arrived
        per_namespace.append(max(arrived))
    namespaces += [f"bench-ns-new-{i:03d}" for i in range(args.new)]
    print(f"new namespace -> each copy readable   ({len(per_copy)} copies): {fmt(per_copy)}")
    label = f"new namespace -> all {len(names)} copies readable ({args.new} ns)"
    print(f"{label}: {fmt(per_namespace)}")

    every: list[float] = []
    for i in range(args.changes):
        name, rev = names[i % len(names)], f"{i + 1}"
        t0 = time.monotonic()
        kube.request("PUT", secrets.path(SRC_NS, name), body=secret(SRC_NS, name, rev))
        arrived = [t - t0 for t in seen.wait([(ns, name, rev) for ns in namespaces])]
        every.append(max(arrived))
    label = f"source change -> all {len(namespaces)} copies updated ({args.changes} changes)"
    print(f"{label}: {fmt(every)}")
    driver.stop()
    watch.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.propagation", description=__doc__)
    parser.add_argument("--namespaces", type=int, default=200)
    parser.add_argument("--mirrors", type=int, default=20)
    parser.add_argument("--new", type=int, default=20, help="namespaces created while measuring")
    parser.add_argument("--changes", type=int, default=5, help="source changes measured")
    parser.add_argument("--workers", type=int, default=2, help="driver workers (Metacontroller: 5)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    run(args)


if __name__ == "__main__":
    main()
