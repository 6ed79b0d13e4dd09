"""In-memory fakes of the sidecar's ports: Vault, Secret reads, and the Kubernetes calls."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import msgspec

from mirrors.state import DestinationState, SourceState, content_hash
from sidecar import vault
from sidecar.vault import Connection, Credentials, VaultError

UID = "0b7c6e1e-0000-4000-8000-000000000001"


def fmt(moment: datetime) -> str:
    return vault.format_time(moment)


def mirror_obj(
    name: str = "m",
    spec: Mapping[str, Any] | None = None,
    *,
    generation: int = 1,
    uid: str = UID,
    finalizers: tuple[str, ...] = (),
    deleting: bool = False,
    ready: tuple[str, str] | None = None,
    resource_version: str = "100",
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "uid": uid,
        "generation": generation,
        "resourceVersion": resource_version,
    }
    if finalizers:
        meta["finalizers"] = list(finalizers)
    if deleting:
        meta["deletionTimestamp"] = "2026-12-03T12:00:00Z"
    obj: dict[str, Any] = {
        "apiVersion": "mirrors.kts.studio/v1alpha2",
        "kind": "SecretMirror",
        "metadata": meta,
        "spec": dict(spec or {}),
    }
    if ready is not None:
        obj["status"] = {
            "conditions": [
                {"type": "Ready", "status": "False", "reason": ready[0], "message": ready[1]}
            ]
        }
    return obj


APPROLE = {"approle": {"secretRef": {"name": "approle"}}}


def vault_source(path: str = "secret/data/app", **extra: Any) -> dict[str, Any]:
    return {
        "source": {
            "type": "vault",
            "name": "app",
            "vault": {"addr": "http://v:8200", "path": path, "auth": APPROLE},
        },
        "destination": {"namespaces": ["team-.+"]},
        **extra,
    }


def vault_destination(path: str = "secret/data/pushed", **extra: Any) -> dict[str, Any]:
    return {
        "source": {"name": "tls", "namespace": "certs"},
        "destination": {
            "type": "vault",
            "vault": {"addr": "http://v:8200", "path": path, "auth": APPROLE},
        },
        **extra,
    }


class FakeSecrets:
    def __init__(
        self, secrets: Mapping[tuple[str, str], Mapping[str, bytes]] | None = None
    ) -> None:
        self.secrets = {k: dict(v) for k, v in (secrets or {}).items()}
        self.reads: list[tuple[str, str]] = []

    def secret_data(self, namespace: str, name: str) -> dict[str, bytes] | None:
        self.reads.append((namespace, name))
        found = self.secrets.get((namespace, name))
        return dict(found) if found is not None else None


def approle_secrets(namespace: str = "default") -> FakeSecrets:
    return FakeSecrets({(namespace, "approle"): {"role-id": b"r-1\n", "secret-id": b"s-1"}})


class FakeVault:
    """KV paths hold data; paths under `dynamic` issue leased credentials."""

    def __init__(self) -> None:
        self.kv: dict[str, dict[str, bytes]] = {}
        self.dynamic: dict[str, int] = {}  # path -> lease duration
        self.fail: VaultError | None = None
        self.fail_revoke: VaultError | None = None
        self.written: dict[str, dict[str, bytes]] = {}
        self.revoked: list[str] = []
        self.calls: list[tuple[str, str, Credentials]] = []
        self._ids = itertools.count(1)

    def read_source(
        self,
        conn: Connection,
        creds: Credentials,
        path: str,
        previous: SourceState | None,
        *,
        now: datetime,
        previous_data: Mapping[str, bytes] | None,
        poll_period: float,
    ) -> tuple[dict[str, bytes], SourceState]:
        self.calls.append(("read", path, creds))
        if self.fail is not None:
            raise self.fail
        if path in self.dynamic:
            duration = self.dynamic[path]
            if previous is not None and previous.leaseId and previous_data is not None:
                if now < self.next_action_at(previous, poll_period=poll_period):
                    return dict(previous_data), previous
                renewed = msgspec.structs.replace(
                    previous,
                    renewedAt=fmt(now),
                    leaseExpiresAt=fmt(now + timedelta(seconds=duration)),
                )
                return dict(previous_data), renewed
            n = next(self._ids)
            data = {"username": f"user-{n}".encode(), "password": f"pw-{n}".encode()}
            return data, SourceState(
                path=path,
                readAt=fmt(now),
                contentHash=content_hash(data),
                leaseId=f"{path}/lease-{n}",
                leaseDuration=duration,
                renewable=True,
                leaseIssuedAt=fmt(now),
                leaseExpiresAt=fmt(now + timedelta(seconds=duration)),
            )
        if path not in self.kv:
            raise VaultError("VaultNotFound", f"reading {path!r} at {conn.addr}: HTTP 404")
        data = dict(self.kv[path])
        version = 1
        if previous is not None:
            version = previous.dataVersion + (previous.contentHash != content_hash(data))
        return data, SourceState(
            path=path,
            readAt=fmt(now),
            contentHash=content_hash(data),
            dataVersion=version,
            kvVersion=2,
        )

    def write_destination(
        self,
        conn: Connection,
        creds: Credentials,
        path: str,
        data: Mapping[str, bytes],
        previous: DestinationState | None,
        *,
        now: datetime,
    ) -> DestinationState:
        self.calls.append(("write", path, creds))
        if self.fail is not None:
            raise self.fail
        digest = content_hash(data)
        if previous is not None and previous.path == path and previous.contentHash == digest:
            return previous
        self.written[path] = dict(data)
        return DestinationState(path=path, writtenAt=fmt(now), contentHash=digest)

    def revoke(self, conn: Connection, creds: Credentials, lease_id: str) -> None:
        self.calls.append(("revoke", lease_id, creds))
        if self.fail_revoke is not None:
            raise self.fail_revoke
        self.revoked.append(lease_id)

    def next_action_at(self, state: SourceState, *, poll_period: float) -> datetime:
        return vault.next_action_at(state, poll_period=poll_period)


class ApiError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


class FakeKube:
    """Secrets, Events, Leases and SecretMirror lists, in memory, with versions."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.versions = itertools.count(1)
        self.writes: list[tuple[str, str, str]] = []
        self.mirror_items: list[dict[str, Any]] = []
        self.patches: list[tuple[str, str, list[dict[str, Any]]]] = []
        self.fail_next: dict[str, ApiError] = {}

    def _check(self, op: str) -> None:
        if op in self.fail_next:
            raise self.fail_next.pop(op)

    def _put(
        self, kind: str, namespace: str, body: dict[str, Any], *, create: bool
    ) -> dict[str, Any]:
        name = body["metadata"]["name"]
        key = (kind, namespace, name)
        current = self.objects.get(key)
        if create and current is not None:
            raise ApiError(409)
        if not create:
            if current is None:
                raise ApiError(404)
            wanted = body["metadata"].get("resourceVersion")
            if wanted and wanted != current["metadata"]["resourceVersion"]:
                raise ApiError(409)
        stored = copy.deepcopy(body)
        stored["metadata"]["namespace"] = namespace
        stored["metadata"]["resourceVersion"] = str(next(self.versions))
        self.objects[key] = stored
        self.writes.append(("create" if create else "replace", kind, name))
        return copy.deepcopy(stored)

    # secrets
    def read_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        found = self.objects.get(("Secret", namespace, name))
        return copy.deepcopy(found) if found else None

    def create_secret(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        self._check("create_secret")
        return self._put("Secret", namespace, body, create=True)

    def replace_secret(self, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        self._check("replace_secret")
        return self._put("Secret", namespace, body, create=False)

    def delete_secret(self, namespace: str, name: str) -> None:
        self.objects.pop(("Secret", namespace, name), None)
        self.writes.append(("delete", "Secret", name))

    def list_secrets(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        key, _, value = label_selector.partition("=")
        return [
            copy.deepcopy(o)
            for (kind, ns, _), o in self.objects.items()
            if kind == "Secret"
            and ns == namespace
            and (o["metadata"].get("labels") or {}).get(key) == value
        ]

    def list_secrets_everywhere(self, label_selector: str) -> list[dict[str, Any]]:
        self._check("list_everywhere")
        key, _, value = label_selector.partition("=")
        return [
            copy.deepcopy(o)
            for (kind, _, _), o in sorted(self.objects.items())
            if kind == "Secret" and (o["metadata"].get("labels") or {}).get(key) == value
        ]

    def patch_secret(
        self, namespace: str, name: str, operations: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """The JSON-patch subset the sidecar sends: test/replace/remove of metadata fields."""
        self._check("patch_secret")
        current = self.objects.get(("Secret", namespace, name))
        if current is None:
            raise ApiError(404)
        patched = copy.deepcopy(current)
        for op in operations:
            field = op["path"].removeprefix("/metadata/")
            if op["op"] == "test":
                if patched["metadata"].get(field) != op["value"]:
                    raise ApiError(422)
            elif op["op"] == "replace":
                patched["metadata"][field] = copy.deepcopy(op["value"])
            elif op["op"] == "remove":
                del patched["metadata"][field]
            else:
                raise ApiError(422)
        patched["metadata"]["resourceVersion"] = str(next(self.versions))
        self.objects[("Secret", namespace, name)] = patched
        self.patches.append((namespace, name, operations))
        self.writes.append(("patch", "Secret", name))
        return copy.deepcopy(patched)

    # events
    def create_namespaced_event(self, namespace: str, body: dict[str, Any]) -> object:
        self._check("create_event")
        return self._put("Event", namespace, body, create=True)

    def patch_namespaced_event(self, name: str, namespace: str, body: dict[str, Any]) -> object:
        self._check("patch_event")
        current = self.objects.get(("Event", namespace, name))
        if current is None:
            raise ApiError(404)
        current.update(body)
        self.writes.append(("patch", "Event", name))
        return current

    def events(self) -> list[dict[str, Any]]:
        return [o for (kind, _, _), o in self.objects.items() if kind == "Event"]

    # leases
    def read_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        self._check("read_lease")
        found = self.objects.get(("Lease", namespace, name))
        return copy.deepcopy(found) if found else None

    def create_lease(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._put("Lease", namespace, body, create=True)

    def replace_lease(self, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._put("Lease", namespace, body, create=False)

    # mirrors
    def list_mirrors(self) -> tuple[list[dict[str, Any]], str]:
        return copy.deepcopy(self.mirror_items), "1"

    def watch_mirrors(self, resource_version: str, timeout_seconds: int) -> Any:
        return iter(())
