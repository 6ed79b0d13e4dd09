"""Command line and environment of `python -m sidecar` (flags win over the environment)."""

from __future__ import annotations

import argparse
import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

DEFAULT_SA_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"  # noqa: S105 - a path


@dataclass(frozen=True, slots=True)
class Config:
    controller_namespace: str
    kubeconfig: str
    host: str
    port: int
    log_level: str
    renew_fraction: float
    sa_token_path: str
    leader_election: bool
    identity: str
    lease_name: str
    workers: int
    event_window_seconds: float
    vault_timeout: float


def _bool(text: str) -> bool:
    return text.strip().lower() not in ("0", "false", "no", "off", "")


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.1 <= value < 1.0:
        raise argparse.ArgumentTypeError("must be at least 0.1 and below 1")
    return value


def parse(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> Config:
    environ = os.environ if env is None else env
    get = environ.get
    parser = argparse.ArgumentParser(
        prog="python -m sidecar",
        description="mirrors' Vault sidecar: the one process that talks to Vault/OpenBao.",
    )
    parser.add_argument(
        "--controller-namespace",
        default=get("MIRRORS_NAMESPACE", "mirrors"),
        help="namespace of the state Secrets and the leader Lease (env MIRRORS_NAMESPACE)",
    )
    parser.add_argument(
        "--kubeconfig",
        default=get("MIRRORS_KUBECONFIG", ""),
        help="kubeconfig file; default: in-cluster config, else $KUBECONFIG / ~/.kube/config",
    )
    parser.add_argument("--host", default=get("MIRRORS_SIDECAR_HOST", "0.0.0.0"))  # noqa: S104
    parser.add_argument(
        "--port",
        type=int,
        default=int(get("MIRRORS_SIDECAR_PORT", "8081")),
        help="port of /healthz, /readyz and /metrics (env MIRRORS_SIDECAR_PORT)",
    )
    parser.add_argument("--log-level", default=get("MIRRORS_LOG_LEVEL", "info"))
    parser.add_argument(
        "--renew-fraction",
        type=_fraction,
        default=_fraction(get("MIRRORS_RENEW_FRACTION", "0.667")),
        help="renew a Vault lease after this fraction of its duration (env MIRRORS_RENEW_FRACTION)",
    )
    parser.add_argument(
        "--sa-token-path",
        default=get("MIRRORS_SA_TOKEN_PATH", DEFAULT_SA_TOKEN),
        help="service-account token file for Vault's Kubernetes auth",
    )
    parser.add_argument(
        "--leader-election",
        action=argparse.BooleanOptionalAction,
        default=_bool(get("MIRRORS_LEADER_ELECTION", "true")),
        help="elect one acting replica with a Lease (env MIRRORS_LEADER_ELECTION)",
    )
    parser.add_argument(
        "--identity",
        default=get("MIRRORS_IDENTITY") or get("POD_NAME") or socket.gethostname(),
        help="this replica's name in the Lease (default: $POD_NAME or the hostname)",
    )
    parser.add_argument("--lease-name", default=get("MIRRORS_LEASE_NAME", "mirrors-sidecar"))
    parser.add_argument(
        "--workers",
        type=int,
        default=int(get("MIRRORS_SIDECAR_WORKERS", "4")),
        help="mirrors acted on concurrently",
    )
    parser.add_argument(
        "--event-window",
        type=float,
        default=float(get("MIRRORS_EVENT_WINDOW_SECONDS", "600")),
        help="a repeated Event within this many seconds increments the count of the last one",
    )
    parser.add_argument(
        "--vault-timeout",
        type=float,
        default=float(get("MIRRORS_VAULT_TIMEOUT", "10")),
        help="seconds per Vault request",
    )
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    return Config(
        controller_namespace=args.controller_namespace,
        kubeconfig=args.kubeconfig,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        renew_fraction=args.renew_fraction,
        sa_token_path=args.sa_token_path,
        leader_election=args.leader_election,
        identity=args.identity,
        lease_name=args.lease_name,
        workers=args.workers,
        event_window_seconds=args.event_window,
        vault_timeout=args.vault_timeout,
    )
