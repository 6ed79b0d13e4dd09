"""Assemble the sidecar from its parts and run its threads (`python -m sidecar`, the tests)."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes import config as _config

from sidecar import metrics
from sidecar.act import Executor
from sidecar.config import Config
from sidecar.events import Recorder
from sidecar.health import make_server, serve_in_thread
from sidecar.kube import Kube
from sidecar.leader import LeaderElector
from sidecar.port import CoreVault
from sidecar.reconciler import Reconciler, Settings
from sidecar.state_store import StateStore

config: Any = _config  # untyped in the client package

log = logging.getLogger("mirrors.sidecar")

WATCH_JOIN_SECONDS = 0.5  # how long stop() waits for the watch thread (see stop)


def api_client(kubeconfig: str = "") -> client.ApiClient:
    """From `kubeconfig`, else the in-cluster config, else $KUBECONFIG / ~/.kube/config."""
    made: client.ApiClient
    if kubeconfig:
        made = config.new_client_from_config(config_file=kubeconfig)
        return made
    try:
        config.load_incluster_config()
        return client.ApiClient()
    except config.ConfigException:
        made = config.new_client_from_config()
        return made


class TokenReader:
    """Reads the projected service-account token at each use: the kubelet rotates it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self) -> str:
        try:
            return self.path.read_text()
        except OSError as exc:
            log.warning(
                "service account token unreadable",
                extra={"path": str(self.path), "error": str(exc)},
            )
            return ""


class Sidecar:
    def __init__(self, cfg: Config, kube_client: client.ApiClient | None = None) -> None:
        self.cfg = cfg
        self.kube = Kube(kube_client or api_client(cfg.kubeconfig))
        self.vault = CoreVault(renew_fraction=cfg.renew_fraction)
        metrics.core_stats.source = lambda: dict(self.vault.clients.stats)
        self.stop_event = threading.Event()
        self.elector: LeaderElector | None = None
        leading = lambda: True  # noqa: E731
        if cfg.leader_election:
            self.elector = LeaderElector(
                self.kube,
                cfg.controller_namespace,
                cfg.lease_name,
                cfg.identity,
                on_started=self._started_leading,
                on_stopped=self._stopped_leading,
            )
            leading = self.elector.is_leader
        executor = Executor(
            self.vault,
            self.kube,
            service_account_token=TokenReader(Path(cfg.sa_token_path)),
            timeout=cfg.vault_timeout,
        )
        self.reconciler = Reconciler(
            self.kube,
            executor,
            StateStore(self.kube, cfg.controller_namespace),
            Recorder(self.kube, cfg.identity, timedelta(seconds=cfg.event_window_seconds)),
            Settings(controller_namespace=cfg.controller_namespace, workers=cfg.workers),
            leading=leading,
        )
        self.threads: list[threading.Thread] = []
        self.server = make_server(cfg.host, cfg.port, alive=self.alive, ready=self.ready)

    def _started_leading(self) -> None:
        metrics.leader.set(1)
        self.reconciler.on_started_leading()

    def _stopped_leading(self) -> None:
        metrics.leader.set(0)
        self.reconciler.on_stopped_leading()

    def alive(self) -> bool:
        return all(t.is_alive() for t in self.threads) or self.stop_event.is_set()

    def ready(self) -> bool:
        return self.reconciler.synced.is_set()

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self) -> None:
        stop = self.stop_event
        serve_in_thread(self.server)
        targets = [
            ("watch", self.reconciler.run_watch),
            ("dispatcher", self.reconciler.run_dispatcher),
        ]
        if self.elector is not None:
            targets.append(("leader", self.elector.run))
        else:
            self._started_leading()
        for name, target in targets:
            thread = threading.Thread(target=target, args=(stop,), name=name, daemon=True)
            thread.start()
            self.threads.append(thread)
        log.info(
            "sidecar started",
            extra={
                "namespace": self.cfg.controller_namespace,
                "identity": self.cfg.identity,
                "leader_election": self.cfg.leader_election,
                "port": self.port,
            },
        )

    def stop(self, timeout: float = 15.0) -> None:
        self.stop_event.set()
        self.reconciler.schedule.wake()
        for thread in self.threads:
            # The watch blocks reading its long-poll stream until the next event or the
            # server's timeout (minutes) and cannot be interrupted. It only observes (a daemon
            # thread): waiting for it only delayed every exit by the whole `timeout`. The
            # dispatcher (in-flight Vault work) and the leader (handing the Lease back) are
            # waited for.
            thread.join(WATCH_JOIN_SECONDS if thread.name == "watch" else timeout)
        self.server.shutdown()
        self.server.server_close()
