"""Prometheus metrics of the sidecar (its own registry, served on /metrics)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

registry = CollectorRegistry()

vault_operations = Counter(
    "mirrors_sidecar_vault_operations",
    "Vault operations done for mirrors, by operation "
    "(read, new_credentials, renewed, written, revoked).",
    ["operation"],
    registry=registry,
)
errors = Counter(
    "mirrors_sidecar_errors",
    "Failed mirror actions, by reason (VaultAuthFailed, VaultUnreachable, NoSecret, ...).",
    ["reason"],
    registry=registry,
)
actions = Counter(
    "mirrors_sidecar_actions",
    "Mirror actions carried out, by kind (sync, finalize, retire, release).",
    ["kind"],
    registry=registry,
)
state_writes = Counter(
    "mirrors_sidecar_state_writes",
    "State Secret writes (a poll that changes nothing writes nothing).",
    registry=registry,
)
events = Counter(
    "mirrors_sidecar_events",
    "Events emitted on SecretMirrors, by reason (repeats counted).",
    ["reason"],
    registry=registry,
)
leader = Gauge(
    "mirrors_sidecar_leader", "1 while this replica holds the leader Lease.", registry=registry
)
mirrors = Gauge("mirrors_sidecar_mirrors", "SecretMirrors known from the watch.", registry=registry)
scheduled = Gauge(
    "mirrors_sidecar_scheduled", "Mirrors with a pending action in the schedule.", registry=registry
)


class _Leases(Collector):
    """Seconds left on each mirror's Vault lease, computed at scrape time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._expiry: dict[str, datetime] = {}

    def set(self, mirror: str, expires: datetime | None) -> None:
        with self._lock:
            if expires is None:
                self._expiry.pop(mirror, None)
            else:
                self._expiry[mirror] = expires

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "mirrors_sidecar_lease_seconds_remaining",
            "Seconds until the Vault lease a mirror publishes expires (negative: expired).",
            labels=["mirror"],
        )
        now = datetime.now(UTC)
        with self._lock:
            items = sorted(self._expiry.items())
        for mirror, expires in items:
            family.add_metric([mirror], (expires - now).total_seconds())
        yield family


class _CoreStats(Collector):
    """The Vault core's own counters (logins, token renewals, lookups)."""

    def __init__(self) -> None:
        self.source: Callable[[], Mapping[str, int]] = dict

    def collect(self) -> Iterator[CounterMetricFamily]:
        stats = self.source()
        for key, help_text in (
            ("logins", "Vault logins (one per identity, renewed; not one per sync)."),
            ("renewals", "Vault token renewals."),
            ("lookups", "Vault token lookups (after a 403)."),
        ):
            family = CounterMetricFamily(f"mirrors_sidecar_vault_{key}", help_text)
            family.add_metric([], float(stats.get(key, 0)))
            yield family


leases = _Leases()
core_stats = _CoreStats()
registry.register(leases)
registry.register(core_stats)


def forget_mirror(name: str) -> None:
    leases.set(name, None)
