"""The hook service over HTTP: a thin Starlette layer around the pure reconcile functions."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from hooks import metrics, protocol, reconcile
from hooks.customize import customize

log = logging.getLogger("mirrors.hooks")
JSON = "application/json"


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _json(body: dict[str, object], code: int = 200) -> Response:
    return Response(protocol.encode(body), status_code=code, media_type=JSON)


def create_app(controller_namespace: str, clock: Callable[[], str] = utc_now) -> Starlette:
    def answer(hook: str, body: bytes) -> Response:
        if hook == "customize":
            request = protocol.decode_customize(body)
            parent = request.parent.metadata
            return _json(customize(bytes(request.parent.spec), parent.name, controller_namespace))
        sync_request = protocol.decode_sync(body)
        finalizing = hook == "finalize"
        response = reconcile.sync(
            sync_request,
            now=clock(),
            controller_namespace=controller_namespace,
            finalizing=finalizing,
        )
        name = sync_request.parent.metadata.name
        if response.get("finalized"):
            metrics.forget_mirror(name)
        else:
            metrics.observe_mirror(name, response["status"], len(response["children"]))
        return _json(response)

    def endpoint(hook: str) -> Callable[[Request], object]:
        async def handle(request: Request) -> Response:
            started = time.perf_counter()
            body = await request.body()
            metrics.request_bytes.labels(hook).observe(len(body))
            try:
                with protocol.no_gc():
                    response = answer(hook, body)
            except protocol.RequestError as exc:
                metrics.errors.labels(hook, "bad_request").inc()
                log.warning("bad hook request", extra={"hook": hook, "error": str(exc)})
                response = _json({"error": str(exc)}, 400)
            except Exception:
                # Non-200 makes Metacontroller apply nothing and retry with backoff.
                metrics.errors.labels(hook, "internal").inc()
                log.exception("hook failed", extra={"hook": hook})
                response = _json({"error": "internal error; see the hook's log"}, 500)
            metrics.requests.labels(hook, str(response.status_code)).inc()
            metrics.duration.labels(hook).observe(time.perf_counter() - started)
            return response

        return handle

    async def healthz(_: Request) -> Response:
        return PlainTextResponse("ok")

    async def exposition(_: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    routes = [
        Route(f"/{hook}", endpoint(hook), methods=["POST"])
        for hook in ("customize", "sync", "finalize")
    ]
    routes += [
        Route("/healthz", healthz),
        # Stateless: ready as soon as it serves.
        Route("/readyz", healthz),
        Route("/metrics", exposition),
    ]
    return Starlette(routes=routes)
