"""`python -m sidecar`: the Vault sidecar (see docs/sidecar.md)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Sequence
from types import FrameType

from mirrors import logs
from sidecar.config import parse
from sidecar.runtime import Sidecar


def main(argv: Sequence[str] | None = None) -> None:
    cfg = parse(argv)
    logs.setup(cfg.log_level)
    sidecar = Sidecar(cfg)
    done = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    sidecar.start()
    while not done.wait(1.0):
        if not sidecar.alive():
            break
    # Stepping down hands the Lease over at once (the leader thread releases it on stop).
    sidecar.stop()


if __name__ == "__main__":
    main()
