"""`python -m tests.e2e.driver --kubeconfig K --hooks-url URL`: run the driver until SIGTERM."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from pathlib import Path

import yaml

from mirrors import logs
from tests.e2e.driver import CompositeDriver, Kube, with_hooks_url

ROOT = Path(__file__).resolve().parents[3]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.e2e.driver", description=__doc__)
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--hooks-url", required=True, help="e.g. http://127.0.0.1:8080")
    parser.add_argument(
        "--controller", type=Path, default=ROOT / "metacontroller" / "compositecontroller.yaml"
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args()
    logs.setup(args.log_level)
    controller = with_hooks_url(yaml.safe_load(args.controller.read_text()), args.hooks_url)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with CompositeDriver(Kube(args.kubeconfig), controller, workers=args.workers):
        stop.wait()
    logging.getLogger("e2e.driver").info("driver stopped")


if __name__ == "__main__":
    main()
