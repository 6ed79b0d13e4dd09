"""Prometheus metrics of the hook service."""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

registry = CollectorRegistry()

requests = Counter(
    "mirrors_hook_requests",
    "Hook requests answered, by hook and HTTP status code.",
    ["hook", "code"],
    registry=registry,
)
duration = Histogram(
    "mirrors_hook_duration_seconds",
    "Time from request bytes to response bytes, by hook.",
    ["hook"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=registry,
)
request_bytes = Histogram(
    "mirrors_hook_request_bytes",
    "Size of hook request bodies, by hook.",
    ["hook"],
    buckets=(1e3, 1e4, 1e5, 1e6, 5e6, 1e7, 5e7),
    registry=registry,
)
errors = Counter(
    "mirrors_hook_errors",
    "Hook requests that failed, by hook and reason (bad_request, internal).",
    ["hook", "reason"],
    registry=registry,
)
children = Gauge(
    "mirrors_mirror_children",
    "Child Secrets desired by each SecretMirror at its last sync.",
    ["mirror"],
    registry=registry,
)
conflicts = Gauge(
    "mirrors_mirror_conflicts",
    "Namespaces skipped because a Secret of the same name is not managed by the mirror.",
    ["mirror"],
    registry=registry,
)
mirror_status = Gauge(
    "mirrors_mirror_status",
    "1 for the mirrorStatus each SecretMirror had at its last sync.",
    ["mirror", "status"],
    registry=registry,
)


def observe_mirror(name: str, status: dict[str, object], n_children: int) -> None:
    children.labels(name).set(n_children)
    counts = status.get("namespaces")
    conflicts.labels(name).set(counts.get("conflicts", 0) if isinstance(counts, dict) else 0)
    for phase in ("Pending", "Active", "Error"):
        mirror_status.labels(name, phase).set(1 if status.get("mirrorStatus") == phase else 0)


def forget_mirror(name: str) -> None:
    """Drop a deleted mirror's series (finalize may be called more than once)."""
    series: list[tuple[Gauge, tuple[str, ...]]] = [(children, (name,)), (conflicts, (name,))]
    series += [(mirror_status, (name, p)) for p in ("Pending", "Active", "Error")]
    for gauge, labels in series:
        with contextlib.suppress(KeyError):
            gauge.remove(*labels)
