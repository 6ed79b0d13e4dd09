"""Hook benchmark: Metacontroller-shaped sync requests, raw bytes in to response bytes out.

    python -m bench.hooks [--sizes 100,1000,10000] [--runs N] [--keep-memory-mib 256]

Each request is what Metacontroller sends for scenario 6 at that size: every Namespace (with
managedFields), every copy as an observed child *and* as a related same-name Secret (the
customize rule for conflict detection asks for them), a ~5 KB kubernetes.io/tls source.
Beside it runs a naive implementation of the same decisions (stdlib json, dict walking,
Python `re`), as the baseline the hook must beat by 5x.
"""

from __future__ import annotations

import argparse
import base64
import gc
import json
import re
import resource
import statistics
import time
from collections.abc import Callable
from typing import Any

from hooks import protocol, reconcile
from hooks.memory import DEFAULT_KEEP_MEMORY_MIB, MIB, keep_freed_memory

NOW = "2026-12-03T12:00:00Z"
UID = "5b1f0c7e-2f6c-4c55-9c1c-3d2c1c1e9a01"
NAME = "project-a-tls"
SOURCE_NS = "project-a-1120-main-23hf"
Obj = dict[str, Any]


def _managed(manager: str, fields: Obj) -> list[Obj]:
    return [
        {
            "manager": manager,
            "operation": "Update",
            "apiVersion": "v1",
            "time": "2026-12-01T10:00:00Z",
            "fieldsType": "FieldsV1",
            "fieldsV1": fields,
        }
    ]


def _namespace(i: int) -> Obj:
    name = f"project-a-1120-feature-{i}-{i * 7919 % 65536:04x}"
    labels = {"kubernetes.io/metadata.name": name, "team": "a", "ci.example.com/pipeline": str(i)}
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "uid": f"{i:08x}-0000-4000-8000-000000000000",
            "resourceVersion": str(10_000 + i),
            "creationTimestamp": "2026-12-01T10:00:00Z",
            "labels": labels,
            "managedFields": _managed(
                "kubectl-create",
                {"f:metadata": {"f:labels": {".": {}, **{f"f:{k}": {} for k in labels}}}},
            ),
        },
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    }


def _tls_data() -> Obj:
    """~5 KB of Secret data: a 2.2 KB certificate chain and a 1.6 KB RSA key, base64."""
    cert = b"-----BEGIN CERTIFICATE-----\n" + b"MIIF" * 540 + b"\n-----END CERTIFICATE-----\n"
    key = b"-----BEGIN PRIVATE KEY-----\n" + b"MIIE" * 390 + b"\n-----END PRIVATE KEY-----\n"
    return {"tls.crt": base64.b64encode(cert).decode(), "tls.key": base64.b64encode(key).decode()}


def _secret(ns: str, data: Obj, owned: bool, last_applied: bool = True) -> Obj:
    meta: Obj = {
        "name": NAME,
        "namespace": ns,
        "uid": f"s-{ns}",
        "resourceVersion": "777",
        "creationTimestamp": "2026-12-01T10:00:00Z",
        "managedFields": _managed("metacontroller", {"f:data": {".": {}, "f:tls.crt": {}}}),
    }
    if owned:
        meta["labels"] = {"controller-uid": UID, "app.kubernetes.io/managed-by": "mirrors"}
        meta["annotations"] = {
            "mirrors.kts.studio/mirror": "project-a-tls",
            "mirrors.kts.studio/source": f"secret:{SOURCE_NS}/{NAME}",
        }
        if last_applied:  # Metacontroller's copy of what the hook returned, data included
            meta["annotations"]["metacontroller.k8s.io/last-applied-configuration"] = json.dumps(
                {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": NAME}, "data": data}
            )
        meta["ownerReferences"] = [
            {
                "apiVersion": "mirrors.kts.studio/v1alpha2",
                "kind": "SecretMirror",
                "name": "project-a-tls",
                "uid": UID,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": meta,
        "type": "kubernetes.io/tls",
        "data": data,
    }


def build_request(n: int, *, full: bool = True) -> bytes:
    """full=False: the issue's reference shape (namespaces + observed children, ~5.6 MB at
    1,000); full=True: also what our customize rules and Metacontroller add (same-name
    Secrets as related objects, the last-applied annotation on each child)."""
    data = _tls_data()
    namespaces = [_namespace(i) for i in range(n)]
    copies = [
        _secret(ns["metadata"]["name"], data, owned=True, last_applied=full) for ns in namespaces
    ]
    source = _secret(SOURCE_NS, data, owned=False)
    by_key = {f"{c['metadata']['namespace']}/{NAME}": c for c in copies}
    parent = {
        "apiVersion": "mirrors.kts.studio/v1alpha2",
        "kind": "SecretMirror",
        "metadata": {"name": "project-a-tls", "uid": UID, "generation": 1},
        "spec": {
            "source": {"type": "secret", "name": NAME, "namespace": SOURCE_NS},
            "destination": {"type": "namespaces", "namespaces": ["project-a-1120-.+"]},
            "deletePolicy": "delete",
            "pollPeriodSeconds": 180,
        },
    }
    body = {
        "controller": {"metadata": {"name": "secretmirrors"}},
        "parent": parent,
        "children": {"Secret.v1": by_key},
        "related": {
            "Namespace.v1": {ns["metadata"]["name"]: ns for ns in namespaces},
            "Secret.v1": {**(by_key if full else {}), f"{SOURCE_NS}/{NAME}": source},
        },
        "finalizing": False,
    }
    return json.dumps(body).encode()


def hook(body: bytes) -> bytes:
    """What the /sync endpoint does between receiving and sending bytes."""
    with protocol.no_gc():
        return protocol.encode(
            reconcile.sync(protocol.decode_sync(body), now=NOW, controller_namespace="mirrors")
        )


def naive(body: bytes) -> bytes:
    """The same decisions the obvious way: stdlib json, dicts, Python re."""
    request = json.loads(body)
    parent = request["parent"]
    spec = parent["spec"]
    patterns = [re.compile(p) for p in spec["destination"]["namespaces"]]
    source_ns = spec["source"]["namespace"]
    secrets = request["related"]["Secret.v1"]
    observed = request["children"]["Secret.v1"]
    source = secrets[f"{source_ns}/{NAME}"]
    children, synced = [], []
    for name, ns in sorted(request["related"]["Namespace.v1"].items()):
        if name == source_ns or ns["status"].get("phase") == "Terminating":
            continue
        if not any(p.fullmatch(name) for p in patterns):
            continue
        key = f"{name}/{NAME}"
        other = secrets.get(key)
        owners = [r["uid"] for r in (other or {}).get("metadata", {}).get("ownerReferences", [])]
        if key not in observed and other is not None and parent["metadata"]["uid"] not in owners:
            continue
        children.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": NAME, "namespace": name, "labels": {"controller-uid": UID}},
                "type": source["type"],
                "data": source["data"],
            }
        )
        if key in observed and observed[key]["data"] == source["data"]:
            synced.append(name)
    status = {"mirrorStatus": "Active", "syncedNamespaces": synced[:500]}
    return json.dumps({"status": status, "children": children, "resyncAfterSeconds": 180}).encode()


def measure(fn: Callable[[bytes], bytes], body: bytes, runs: int) -> list[float]:
    fn(body)  # warm caches (compiled patterns, decoders)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn(body)
        times.append(time.perf_counter() - started)
        gc.collect()  # each request starts from a clean heap, as between real requests
    return times


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--runs", type=int, default=0, help="default: 200/50/15 by size")
    parser.add_argument(
        "--keep-memory-mib",
        type=int,
        default=DEFAULT_KEEP_MEMORY_MIB,
        help="as `python -m hooks --keep-memory-mib` (0: glibc's default)",
    )
    args = parser.parse_args()
    kept = keep_freed_memory(args.keep_memory_mib * MIB)
    print(f"freed memory kept: {args.keep_memory_mib if kept else 0} MiB (as python -m hooks)")
    print(
        f"{'shape':>9} {'namespaces':>10} {'MB':>6} {'impl':>6} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'MB/s':>7} {'speedup':>7}"
    )
    cases = [(shape, int(s)) for shape in ("reference", "full") for s in args.sizes.split(",")]
    for shape, n in cases:
        body = build_request(n, full=shape == "full")
        assert len(json.loads(hook(body))["children"]) == n
        runs = args.runs or (200 if n <= 100 else 50 if n <= 1000 else 15)
        mb = len(body) / 1e6
        results = {name: measure(fn, body, runs) for name, fn in (("hook", hook), ("naive", naive))}
        p50 = {name: statistics.median(t) for name, t in results.items()}
        for name, times in results.items():
            speedup = p50["naive"] / p50[name]
            print(
                f"{shape:>9} {n:>10} {mb:>6.1f} {name:>6} {p50[name] * 1e3:>8.2f} "
                f"{percentile(times, 99) * 1e3:>8.2f} {mb / p50[name]:>7.0f} {speedup:>6.1f}x"
            )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of the benchmark process: {peak:.0f} MiB")


if __name__ == "__main__":
    main()
