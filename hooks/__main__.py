"""`python -m hooks`: serve the Metacontroller hooks."""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence

import uvicorn

from hooks.app import create_app
from hooks.memory import DEFAULT_KEEP_MEMORY_MIB, MIB, keep_freed_memory
from mirrors import logs

log = logging.getLogger("mirrors.hooks")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(prog="python -m hooks", description=__doc__)
    parser.add_argument("--host", default=env("MIRRORS_HOOKS_HOST", "0.0.0.0"))  # noqa: S104
    parser.add_argument("--port", type=int, default=int(env("MIRRORS_HOOKS_PORT", "8080")))
    parser.add_argument("--log-level", default=env("MIRRORS_LOG_LEVEL", "info"))
    parser.add_argument(
        "--controller-namespace",
        default=env("MIRRORS_NAMESPACE", "mirrors"),
        help="namespace of the sidecar's state Secrets (env MIRRORS_NAMESPACE)",
    )
    parser.add_argument(
        "--keep-memory-mib",
        type=int,
        default=int(env("MIRRORS_HOOKS_KEEP_MEMORY_MIB", str(DEFAULT_KEEP_MEMORY_MIB))),
        help="keep up to this much freed memory for the next large sync instead of returning "
        "it to the kernel; 0: return it (env MIRRORS_HOOKS_KEEP_MEMORY_MIB)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    logs.setup(args.log_level)
    kept = keep_freed_memory(args.keep_memory_mib * MIB)
    log.info(
        "freed memory kept for the next large sync" if kept else "freed memory returned at once",
        extra={"keep_memory_mib": args.keep_memory_mib if kept else 0},
    )
    app = create_app(args.controller_namespace)
    uvicorn.run(app, host=args.host, port=args.port, log_config=None, access_log=False)


if __name__ == "__main__":
    main()
