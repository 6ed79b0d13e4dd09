"""Just enough Kubernetes API access for the driver: raw JSON requests, discovery, informers.

Objects stay plain dicts exactly as the API server returns them (managedFields included), which
is what Metacontroller hands to hooks. Auth and TLS come from the kubeconfig through the
`kubernetes` client's configuration loader.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import urllib3
from kubernetes import client, config
from kubernetes.client import rest

Obj = dict[str, Any]
log = logging.getLogger("e2e.driver.kube")

WATCH_SECONDS = 60


class ApiError(Exception):
    def __init__(self, status: int, method: str, path: str, body: str) -> None:
        super().__init__(f"{method} {path}: HTTP {status}: {body[:300]}")
        self.status = status


def key_of(obj: Obj) -> str:
    """Metacontroller v2 map key: `ns/name` for namespaced objects, `name` otherwise."""
    meta = obj["metadata"]
    ns = meta.get("namespace")
    return f"{ns}/{meta['name']}" if ns else str(meta["name"])


def deleting(obj: Obj) -> bool:
    return obj["metadata"].get("deletionTimestamp") is not None


@dataclass(frozen=True)
class Resource:
    api_version: str
    plural: str
    kind: str
    namespaced: bool

    @property
    def group_key(self) -> str:
        """The v2 request's group key: `Secret.v1`, `SecretMirror.mirrors.kts.studio/v1alpha2`."""
        return f"{self.kind}.{self.api_version}"

    def path(self, namespace: str = "", name: str = "", sub: str = "") -> str:
        base = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        parts = [base, self.plural, name, sub]
        return "/".join(p for p in parts if p)


class Kube:
    def __init__(self, kubeconfig: Path) -> None:
        cfg = client.Configuration()
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=str(kubeconfig), client_configuration=cfg
        )
        cfg.connection_pool_maxsize = 32
        self._cfg = cfg
        self._pool = rest.RESTClientObject(cfg).pool_manager
        self._discovery: dict[str, list[Obj]] = {}
        self._lock = threading.Lock()

    def _headers(self, content_type: str) -> dict[str, str]:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        settings: dict[str, dict[str, Any]] = dict(self._cfg.auth_settings())  # type: ignore[arg-type]
        for auth in settings.values():
            headers[str(auth["key"])] = str(auth["value"])
        return headers

    def open(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float = 30.0,
        stream: bool = False,
    ) -> urllib3.BaseHTTPResponse:
        url = self._cfg.host + path + ("?" + urlencode(query) if query else "")
        data = None if body is None else json.dumps(body).encode()
        resp = self._pool.request(
            method,
            url,
            body=data,
            headers=self._headers(content_type),
            preload_content=not stream,
            timeout=urllib3.Timeout(connect=10.0, read=timeout),
            retries=False,
        )
        if not 200 <= resp.status <= 299:
            text = resp.data.decode(errors="replace")
            resp.release_conn()
            raise ApiError(resp.status, method, path, text)
        return resp

    def request(self, method: str, path: str, **kwargs: Any) -> Obj:
        result: Obj = json.loads(self.open(method, path, **kwargs).data)
        return result

    def resource(self, api_version: str, plural: str) -> Resource:
        with self._lock:
            if api_version not in self._discovery:
                path = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
                self._discovery[api_version] = self.request("GET", path)["resources"]
        for res in self._discovery[api_version]:
            if res["name"] == plural:
                return Resource(api_version, plural, res["kind"], bool(res["namespaced"]))
        raise LookupError(f"no resource {plural!r} in {api_version}")


Handler = Callable[..., None]


class Informer:
    """List + watch one resource cluster-wide into a cache; re-list on 410 Gone.

    Handlers are (on_add(obj), on_update(old, new), on_delete(obj)), called from the
    informer's thread; a handler added after the first list is replayed the current objects.
    """

    def __init__(self, kube: Kube, res: Resource) -> None:
        self.kube, self.res = kube, res
        self.synced = threading.Event()
        self._objects: dict[str, Obj] = {}
        self._lock = threading.Lock()
        self._handlers: list[tuple[Handler, Handler, Handler]] = []
        self._stop = threading.Event()
        self._resp: urllib3.BaseHTTPResponse | None = None
        self._started = False
        self._thread = threading.Thread(
            target=self._run, name=f"informer-{res.plural}", daemon=True
        )

    def add_handlers(self, on_add: Handler, on_update: Handler, on_delete: Handler) -> None:
        with self._lock:
            self._handlers.append((on_add, on_update, on_delete))
            existing = list(self._objects.values()) if self.synced.is_set() else []
        for obj in existing:
            on_add(obj)

    def start(self) -> None:
        """Start listing and watching (idempotent)."""
        with self._lock:
            if self._started:
                return
            self._started = True
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        resp = self._resp
        if resp is not None:
            try:
                resp.shutdown()
            except Exception:
                log.debug("closing watch failed", exc_info=True)

    def list(self) -> list[Obj]:
        with self._lock:
            return list(self._objects.values())

    def get(self, key: str) -> Obj | None:
        with self._lock:
            return self._objects.get(key)

    def _emit(self, kind: int, *objs: Obj) -> None:
        with self._lock:
            handlers = list(self._handlers)
        for handler in handlers:
            try:
                handler[kind](*objs)
            except Exception:
                log.exception("event handler failed", extra={"resource": self.res.plural})

    def _run(self) -> None:
        rv: str | None = None
        while not self._stop.is_set():
            try:
                if rv is None:
                    rv = self._relist()
                rv = self._watch(rv)
            except Exception as exc:
                if self._stop.is_set():
                    return
                log.warning(
                    "informer error, re-listing: %s: %s", self.res.plural, exc,
                    extra={"resource": self.res.plural, "error": str(exc)},
                )  # fmt: skip
                rv = None
                self._stop.wait(1.0)

    def _relist(self) -> str:
        data = self.kube.request("GET", self.res.path(), timeout=60.0)
        fresh: dict[str, Obj] = {}
        for item in data.get("items") or []:
            item.setdefault("apiVersion", self.res.api_version)
            item.setdefault("kind", self.res.kind)
            fresh[key_of(item)] = item
        with self._lock:
            old, self._objects = self._objects, fresh
        for key, obj in fresh.items():
            before = old.get(key)
            if before is None:
                self._emit(0, obj)
            elif before["metadata"].get("resourceVersion") != obj["metadata"].get(
                "resourceVersion"
            ):
                self._emit(1, before, obj)
        for key, obj in old.items():
            if key not in fresh:
                self._emit(2, obj)
        self.synced.set()
        return str(data["metadata"]["resourceVersion"])

    def _watch(self, rv: str) -> str | None:
        query = {
            "watch": "true",
            "resourceVersion": rv,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(WATCH_SECONDS),
        }
        resp = self.kube.open(
            "GET", self.res.path(), query=query, timeout=WATCH_SECONDS + 30, stream=True
        )
        self._resp = resp
        try:
            for line in resp:
                if self._stop.is_set():
                    return rv
                if not line.strip():
                    continue
                event = json.loads(line)
                kind, obj = event["type"], event["object"]
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        return None  # resourceVersion too old: re-list
                    raise RuntimeError(f"watch error: {obj.get('message')}")
                rv = obj["metadata"]["resourceVersion"]
                if kind == "BOOKMARK":
                    continue
                key = key_of(obj)
                with self._lock:
                    old = self._objects.get(key)
                    if kind == "DELETED":
                        self._objects.pop(key, None)
                    else:
                        self._objects[key] = obj
                if kind == "DELETED":
                    self._emit(2, obj)
                elif old is None:
                    self._emit(0, obj)
                else:
                    self._emit(1, old, obj)
        finally:
            self._resp = None
            resp.release_conn()
        return rv
