"""`/healthz`, `/readyz` and `/metrics` on a small threaded HTTP server (stdlib, no asyncio).

Every replica serves these, leader or not. Ready means the SecretMirror watch has listed
once; alive means the reconciler's threads are running.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from sidecar import metrics

log = logging.getLogger("mirrors.sidecar.http")


def make_server(
    host: str, port: int, *, alive: Callable[[], bool], ready: Callable[[], bool]
) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def _send(self, code: int, body: bytes, content_type: str = "text/plain") -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                ok = alive()
                self._send(200 if ok else 503, b"ok" if ok else b"reconciler stopped")
            elif path == "/readyz":
                ok = ready()
                self._send(200 if ok else 503, b"ok" if ok else b"watch not synced")
            elif path == "/metrics":
                self._send(200, generate_latest(metrics.registry), CONTENT_TYPE_LATEST)
            else:
                self._send(404, b"not found")

        def log_message(self, format: str, *args: object) -> None:
            log.debug("http", extra={"request": format % args})

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


def serve_in_thread(server: ThreadingHTTPServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, name="http", daemon=True)
    thread.start()
    return thread
