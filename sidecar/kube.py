"""The Kubernetes API as the sidecar uses it: plain dicts in and out, nothing cached.

Responses are read as raw JSON (`_preload_content=False`) rather than through the client's
generated models: cheaper, and the dicts are exactly what the API server sent.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

from kubernetes import client
from kubernetes import watch as _watch

from mirrors.api import GROUP, PLURAL, VERSION

# The generated client is typed for its model classes; we pass and read plain dicts.
watch: Any = _watch

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
Obj = dict[str, Any]


def status_of(exc: BaseException) -> int | None:
    status = getattr(exc, "status", None)
    return status if isinstance(status, int) else None


def _json(response: Any) -> Obj:
    data: Obj = json.loads(response.data)
    return data


class Kube:
    def __init__(self, api_client: client.ApiClient) -> None:
        self.api_client = api_client
        self.core: Any = client.CoreV1Api(api_client)
        self.custom: Any = client.CustomObjectsApi(api_client)
        self.coordination: Any = client.CoordinationV1Api(api_client)

    # -- Secrets -------------------------------------------------------------------------------

    def read_secret(self, namespace: str, name: str) -> Obj | None:
        try:
            return _json(self.core.read_namespaced_secret(name, namespace, _preload_content=False))
        except client.ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def secret_data(self, namespace: str, name: str) -> dict[str, bytes] | None:
        secret = self.read_secret(namespace, name)
        if secret is None:
            return None
        return {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}

    def create_secret(self, namespace: str, body: Obj) -> Obj:
        return _json(self.core.create_namespaced_secret(namespace, body, _preload_content=False))

    def replace_secret(self, namespace: str, name: str, body: Obj) -> Obj:
        return _json(
            self.core.replace_namespaced_secret(name, namespace, body, _preload_content=False)
        )

    def delete_secret(self, namespace: str, name: str) -> None:
        try:
            self.core.delete_namespaced_secret(name, namespace, _preload_content=False)
        except client.ApiException as exc:
            if exc.status != 404:
                raise

    def list_secrets(self, namespace: str, label_selector: str) -> list[Obj]:
        answer = _json(
            self.core.list_namespaced_secret(
                namespace, label_selector=label_selector, _preload_content=False
            )
        )
        return list(answer.get("items") or [])

    def list_secrets_everywhere(self, label_selector: str) -> list[Obj]:
        """Secrets of every namespace with the labels (needs cluster-wide `list`)."""
        answer = _json(
            self.core.list_secret_for_all_namespaces(
                label_selector=label_selector, _preload_content=False
            )
        )
        return list(answer.get("items") or [])

    def patch_secret(self, namespace: str, name: str, operations: list[Obj]) -> Obj:
        """Apply a JSON patch (RFC 6902); a failed `test` operation answers 422."""
        return _json(
            self.core.patch_namespaced_secret(
                name, namespace, operations, _content_type=JSON_PATCH, _preload_content=False
            )
        )

    # -- SecretMirrors ---------------------------------------------------------------------------

    def list_mirrors(self) -> tuple[list[Obj], str]:
        answer = _json(
            self.custom.list_cluster_custom_object(GROUP, VERSION, PLURAL, _preload_content=False)
        )
        return list(answer.get("items") or []), str(answer["metadata"]["resourceVersion"])

    def watch_mirrors(self, resource_version: str, timeout_seconds: int) -> Iterator[Obj]:
        """Watch events from `resource_version`; ends at the timeout.

        Each event is `{type, raw_object}` (the object as the server sent it). Raises
        ApiException(410) when the version is too old: re-list then.
        """
        watcher = watch.Watch()
        try:
            yield from watcher.stream(
                self.custom.list_cluster_custom_object,
                GROUP,
                VERSION,
                PLURAL,
                resource_version=resource_version,
                allow_watch_bookmarks=True,
                timeout_seconds=timeout_seconds,
            )
        finally:
            watcher.stop()

    # -- Events ----------------------------------------------------------------------------------

    def create_namespaced_event(self, namespace: str, body: Obj) -> object:
        return self.core.create_namespaced_event(namespace, body, _preload_content=False)

    def patch_namespaced_event(self, name: str, namespace: str, body: Obj) -> object:
        return self.core.patch_namespaced_event(
            name, namespace, body, _content_type=MERGE_PATCH, _preload_content=False
        )

    # -- Leases ----------------------------------------------------------------------------------

    def read_lease(self, namespace: str, name: str) -> Obj | None:
        try:
            return _json(
                self.coordination.read_namespaced_lease(name, namespace, _preload_content=False)
            )
        except client.ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def create_lease(self, namespace: str, body: Obj) -> Obj:
        return _json(
            self.coordination.create_namespaced_lease(namespace, body, _preload_content=False)
        )

    def replace_lease(self, namespace: str, name: str, body: Obj) -> Obj:
        return _json(
            self.coordination.replace_namespaced_lease(
                name, namespace, body, _preload_content=False
            )
        )
