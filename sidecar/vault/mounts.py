"""Mounts and paths: which secrets engine holds a path, and the path below it.

KV v1 / v2 is detected from the mount (`GET sys/internal/ui/mounts/<path>`, which answers any
token with some capability under the mount); on a v2 mount `secret/data/x` and `secret/x`
name the same secret. Any path that is not on a KV mount is read as is
(`database/creds/<role>`...).
"""

from __future__ import annotations

from dataclasses import dataclass

from sidecar.vault.calls import send
from sidecar.vault.clients import Clients, Connection, Credentials
from sidecar.vault.errors import ERROR, NOT_FOUND, VaultError

KV_TYPES = frozenset({"kv", "generic"})


@dataclass(frozen=True)
class Mount:
    path: str  # "secret/", prefixed by a namespace given in the path ("team/secret/")
    type: str  # "kv", "database", ...
    kv_version: int | None  # 1 or 2 on a KV mount, else None

    def relative(self, path: str) -> str:
        """`path` below the mount, with the KV v2 `data/` segment removed."""
        rest = path[len(self.path) :] if path.startswith(self.path) else path
        if self.kv_version == 2 and (rest == "data" or rest.startswith("data/")):
            rest = rest[len("data/") :]
        return rest.strip("/")

    def secret(self, path: str, where: str) -> str:
        """`relative(path)`, which must name a secret rather than the mount itself."""
        relative = self.relative(path)
        if not relative:
            raise VaultError(ERROR, f"{where}: the path names the mount, not a secret")
        return relative


def normalize(path: str) -> str:
    """`path` without empty segments (`/secret//x/` is `secret/x`); it must not be empty."""
    key = "/".join(part for part in path.split("/") if part)
    if not key:
        raise VaultError(ERROR, "the Vault path is empty")
    return key


def find_mount(clients: Clients, conn: Connection, creds: Credentials, path: str) -> Mount:
    """The mount holding `path` (cached per identity for a few minutes)."""
    cached = clients.cached_mount(conn, creds, path)
    if isinstance(cached, Mount):
        return cached
    what = f"looking up the mount of {path!r} at {conn.addr}"
    answer = send(clients, conn, creds, what, method="GET", path=f"sys/internal/ui/mounts/{path}")
    data = answer.get("data") or {}
    mount_path = str(data.get("path") or "").strip("/")
    if not mount_path:
        raise VaultError(NOT_FOUND, f"no secrets engine is mounted at {path!r} ({conn.addr})")
    mount_path += "/"
    # With a namespace in the path ("team/secret/x") Vault answers the mount path relative
    # to that namespace ("secret/"): keep the prefix.
    if not path.startswith(mount_path):
        index = f"/{path}".find(f"/{mount_path}")
        if index >= 0:
            mount_path = path[:index] + mount_path
    engine = str(data.get("type") or "")
    kv_version: int | None = None
    if engine in KV_TYPES:
        options = data.get("options") or {}
        kv_version = 2 if str(options.get("version") or "1") == "2" else 1
    mount = Mount(path=mount_path, type=engine, kv_version=kv_version)
    clients.remember_mount(conn, creds, path, mount)
    return mount
