"""Authenticated hvac clients, one per identity, logged in once and kept fresh.

An identity is a `Connection` (where) plus `Credentials` (who). `Clients.client()` returns the
cached hvac client for it, logging in the first time, renewing the token (renew-self) once
`renew_fraction` of its TTL has passed and logging in again when renewal is impossible, the
token is about to expire or a call was refused with 403 (`Clients.relogin`). A sync never
causes a login by itself.

hvac reads VAULT_ADDR, VAULT_TOKEN, ~/.vault-token and VAULT_CACERT/VAULT_CLIENT_CERT when the
corresponding argument is missing; every argument is passed explicitly here so that nothing
from the environment leaks into a mirror's identity.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import hvac
import hvac.exceptions
import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import InsecureRequestWarning
from urllib3.util.retry import Retry

from sidecar.vault.errors import AUTH_FAILED, UNREACHABLE, VaultError, translate, vault_messages

log = logging.getLogger("mirrors.sidecar.vault")

Method = Literal["token", "approle", "kubernetes"]

#: Statuses retried (with backoff) by the HTTP layer: Vault's "try again" answers.
RETRY_STATUSES = (412, 500, 502, 503, 504)


@dataclass(frozen=True)
class Credentials:
    """Auth material read from Kubernetes. Secret fields are kept out of repr()."""

    method: Method
    token: str = field(default="", repr=False)
    role_id: str = field(default="", repr=False)
    secret_id: str = field(default="", repr=False)
    approle_path: str = "approle"
    k8s_role: str = ""
    k8s_mount: str = "kubernetes"
    jwt: str = field(default="", repr=False)


@dataclass(frozen=True)
class Connection:
    """Where and how to reach one Vault server (and namespace)."""

    addr: str
    namespace: str = ""
    ca_pem: str = field(default="", repr=False)
    insecure_skip_verify: bool = False
    server_name: str = ""
    timeout: float = 10.0
    retries: int = 3  # per request, with exponential backoff, on RETRY_STATUSES/connect errors


def _identity(conn: Connection, creds: Credentials) -> tuple[Connection, Credentials]:
    # A projected service-account token rotates every hour or so: the same Kubernetes-auth
    # identity keeps its Vault token, and the newest JWT is used at the next login.
    if creds.method == "kubernetes":
        creds = replace(creds, jwt="")
    return conn, creds


def _ca_file(pem: str) -> str:
    """A file holding `pem` (requests wants a path); content-addressed, so written once."""
    digest = hashlib.sha256(pem.encode()).hexdigest()[:24]
    path = Path(tempfile.gettempdir()) / f"mirrors-vault-ca-{digest}.pem"
    if not path.exists():
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".mirrors-ca-")
        with os.fdopen(fd, "w") as handle:
            handle.write(pem)
        os.replace(tmp, path)
    return str(path)


def new_hvac_client(conn: Connection, token: str = "") -> hvac.Client:
    """An unauthenticated hvac client for `conn`: retries, TLS, namespace, no environment."""
    retry = Retry(
        total=conn.retries,
        connect=conn.retries,
        read=min(conn.retries, 1),
        status=conn.retries,
        other=0,
        backoff_factor=0.3,
        backoff_max=3.0,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=None,  # Vault reads, writes and logins are all safe to repeat
        raise_on_status=False,  # the last answer goes back to hvac, which raises on it
        respect_retry_after_header=False,  # keep the worst case bounded by our backoff
    )
    adapter = HTTPAdapter(max_retries=retry)
    verify: bool | str
    if conn.insecure_skip_verify:
        verify = False
        host = urlsplit(conn.addr).hostname or ""
        log.warning("vault TLS verification disabled", extra={"addr": conn.addr})
        # Asked for: do not warn on every request (only for this host).
        warnings.filterwarnings(
            "ignore",
            message=f"Unverified HTTPS request is being made to host '{re.escape(host)}'",
            category=InsecureRequestWarning,
        )
    elif conn.ca_pem:
        verify = _ca_file(conn.ca_pem)
    else:
        verify = True
    if conn.server_name and verify is not False:
        # Verify the certificate (and send SNI) for this name instead of the host in addr.
        adapter.poolmanager.connection_pool_kw.update(
            server_hostname=conn.server_name, assert_hostname=conn.server_name
        )
    session = requests.Session()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    # hvac replaces `verify` by a truthy session.verify (hvac#991): set both.
    session.verify = verify
    return hvac.Client(
        url=conn.addr,
        token=token,  # never None: None makes hvac read VAULT_TOKEN / ~/.vault-token
        verify=verify,  # never None: None makes hvac read VAULT_CACERT / VAULT_CAPATH
        cert=(),  # never None: None makes hvac read VAULT_CLIENT_CERT / VAULT_CLIENT_KEY
        timeout=conn.timeout,
        namespace=conn.namespace or None,
        session=session,
    )


@dataclass
class _Entry:
    client: hvac.Client
    creds: Credentials
    lock: threading.Lock = field(default_factory=threading.Lock)
    ready: bool = False  # logged in (or, for a static token, looked up)
    ttl: float = 0.0  # token TTL at the last login/renewal; 0: never expires
    first_ttl: float = 0.0  # TTL granted at login, to notice renewals capped by max_ttl
    renewable: bool = False
    since: float = 0.0  # clock() at the last login/renewal
    last_used: float = 0.0
    mounts: dict[str, tuple[float, Any]] = field(default_factory=dict)


class Clients:
    """One authenticated hvac client per identity (Connection + Credentials), cached."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        renew_fraction: float = 2 / 3,
        idle_seconds: float = 3600.0,
        mount_cache_seconds: float = 300.0,
    ) -> None:
        self._clock = clock
        self._renew_fraction = renew_fraction
        self._idle_seconds = idle_seconds
        self._mount_cache_seconds = mount_cache_seconds
        self._lock = threading.Lock()
        self._entries: dict[tuple[Connection, Credentials], _Entry] = {}
        #: counters for metrics / tests: logins, renewals, lookups
        self.stats: dict[str, int] = {"logins": 0, "renewals": 0, "lookups": 0}

    # -- public ----------------------------------------------------------------------------

    def client(self, conn: Connection, creds: Credentials) -> hvac.Client:
        """The authenticated client for this identity; raises VaultError (VaultAuthFailed...)."""
        entry = self._entry(conn, creds)
        with entry.lock:
            if creds.method == "kubernetes" and creds.jwt:
                entry.creds = creds
            if not entry.ready:
                self._authenticate(conn, entry)
            else:
                self._refresh(conn, entry)
            return entry.client

    def forget(self, conn: Connection, creds: Credentials) -> None:
        """Drop the cached client (e.g. the mirror is gone or its auth Secret changed)."""
        with self._lock:
            entry = self._entries.pop(_identity(conn, creds), None)
        if entry is not None:
            entry.client.adapter.close()

    def relogin(self, conn: Connection, creds: Credentials) -> hvac.Client | None:
        """After a 403: check the token (lookup-self). If it is still valid the policy denies
        the path and None is returned (no login); otherwise log in again (a static token:
        VaultAuthFailed) and return the client with its new token."""
        entry = self._entry(conn, creds)
        with entry.lock:
            if entry.ready and self._token_valid(entry):
                return None
            log.info(
                "vault token no longer valid; authenticating again",
                extra={"addr": conn.addr, "method": creds.method},
            )
            entry.ready = False
            entry.mounts.clear()
            self._authenticate(conn, entry)
            return entry.client

    def cached_mount(self, conn: Connection, creds: Credentials, key: str) -> Any:
        entry = self._entry(conn, creds)
        hit = entry.mounts.get(key)
        if hit is None or self._clock() - hit[0] > self._mount_cache_seconds:
            return None
        return hit[1]

    def remember_mount(self, conn: Connection, creds: Credentials, key: str, value: Any) -> None:
        self._entry(conn, creds).mounts[key] = (self._clock(), value)

    # -- internals -------------------------------------------------------------------------

    def _entry(self, conn: Connection, creds: Credentials) -> _Entry:
        now = self._clock()
        key = _identity(conn, creds)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = _Entry(client=new_hvac_client(conn), creds=creds)
                self._entries[key] = entry
            entry.last_used = now
            idle = [k for k, e in self._entries.items() if now - e.last_used > self._idle_seconds]
            dropped = [self._entries.pop(k) for k in idle]
        for old in dropped:
            old.client.adapter.close()
        return entry

    def _token_valid(self, entry: _Entry) -> bool:
        self.stats["lookups"] += 1
        try:
            entry.client.adapter.get("/v1/auth/token/lookup-self")
        except (hvac.exceptions.Forbidden, hvac.exceptions.Unauthorized):
            return False
        except Exception:  # unreachable etc.: the caller's retry reports it
            return True
        return True

    def _authenticate(self, conn: Connection, entry: _Entry) -> None:
        creds = entry.creds
        if creds.method == "token":
            self._lookup_token(conn, entry)
        else:
            self._login(conn, entry)
        entry.ready = True

    def _lookup_token(self, conn: Connection, entry: _Entry) -> None:
        client = entry.client
        if not entry.creds.token:
            raise VaultError(AUTH_FAILED, f"token auth for {conn.addr}: the token is empty")
        client.token = entry.creds.token
        self.stats["lookups"] += 1
        try:
            data = _data(client.adapter.get("/v1/auth/token/lookup-self"))
        except Exception as exc:
            err = translate(exc, f"token lookup at {conn.addr}")
            if isinstance(exc, hvac.exceptions.VaultError) and err.reason != UNREACHABLE:
                raise VaultError(
                    AUTH_FAILED,
                    f"token auth at {conn.addr}: the token was refused (invalid, expired or "
                    f"revoked, or without the default policy): {vault_messages(exc)}",
                ) from None
            raise err from None
        ttl = float(data.get("ttl") or 0)
        self._set_token_times(entry, ttl, bool(data.get("renewable")), first=True)
        entry.first_ttl = float(data.get("creation_ttl") or ttl)
        log.info(
            "vault token looked up",
            extra={"addr": conn.addr, "method": "token", "ttl": ttl},
        )

    def _login(self, conn: Connection, entry: _Entry) -> None:
        creds = entry.creds
        client = entry.client
        client.token = ""
        payload: dict[str, str]
        if creds.method == "approle":
            mount = creds.approle_path.strip("/") or "approle"
            payload = {"role_id": creds.role_id, "secret_id": creds.secret_id}
            what = f"AppRole login at {conn.addr} (auth/{mount})"
            if not creds.role_id:
                raise VaultError(AUTH_FAILED, f"{what}: the role-id is empty")
        elif creds.method == "kubernetes":
            mount = creds.k8s_mount.strip("/") or "kubernetes"
            payload = {"role": creds.k8s_role, "jwt": creds.jwt}
            what = f"Kubernetes login at {conn.addr} (auth/{mount}, role {creds.k8s_role!r})"
            if not creds.jwt:
                raise VaultError(AUTH_FAILED, f"{what}: no service account token")
        else:  # pragma: no cover - Literal exhausted
            raise VaultError(AUTH_FAILED, f"unknown auth method {creds.method!r}")
        self.stats["logins"] += 1
        try:
            answer = client.adapter.post(f"/v1/auth/{mount}/login", json=payload)
        except Exception as exc:
            err = translate(exc, what)
            if isinstance(exc, hvac.exceptions.VaultError) and err.reason != UNREACHABLE:
                raise VaultError(AUTH_FAILED, f"{what}: {vault_messages(exc)}") from None
            raise err from None
        auth = answer.get("auth") if isinstance(answer, dict) else None
        if not isinstance(auth, dict) or not auth.get("client_token"):
            raise VaultError(AUTH_FAILED, f"{what}: the answer holds no client token")
        client.token = str(auth["client_token"])
        ttl = float(auth.get("lease_duration") or 0)
        self._set_token_times(entry, ttl, bool(auth.get("renewable")), first=True)
        log.info(
            "vault login",
            extra={"addr": conn.addr, "method": creds.method, "mount": mount, "ttl": ttl},
        )

    def _set_token_times(self, entry: _Entry, ttl: float, renewable: bool, *, first: bool) -> None:
        entry.ttl = ttl
        entry.renewable = renewable
        entry.since = self._clock()
        if first:
            entry.first_ttl = ttl

    def _refresh(self, conn: Connection, entry: _Entry) -> None:
        """Renew the token once renew_fraction of its TTL has passed; log in again if needed."""
        if entry.ttl <= 0:
            return  # root or non-expiring token
        elapsed = self._clock() - entry.since
        if elapsed < self._renew_fraction * entry.ttl:
            return
        login_method = entry.creds.method != "token"
        expired = elapsed >= entry.ttl
        if expired or not entry.renewable:
            if login_method:
                self._authenticate(conn, entry)
            elif expired:
                raise VaultError(AUTH_FAILED, f"token auth at {conn.addr}: the token has expired")
            return
        self.stats["renewals"] += 1
        try:
            answer = entry.client.adapter.post(
                "/v1/auth/token/renew-self", json={"increment": f"{int(entry.first_ttl)}s"}
            )
        except Exception as exc:
            err = translate(exc, f"token renewal at {conn.addr}")
            if err.reason == UNREACHABLE:
                raise err from None
            log.warning(
                "vault token renewal failed",
                extra={"addr": conn.addr, "method": entry.creds.method, "error": err.message},
            )
            if login_method:
                self._authenticate(conn, entry)
                return
            # A static token we cannot renew still works until its TTL ends: stop trying.
            entry.renewable = False
            return
        auth = answer.get("auth") if isinstance(answer, dict) else None
        ttl = float(auth.get("lease_duration") or 0) if isinstance(auth, dict) else 0.0
        renewable = bool(auth.get("renewable")) if isinstance(auth, dict) else False
        log.info(
            "vault token renewed",
            extra={"addr": conn.addr, "method": entry.creds.method, "ttl": ttl},
        )
        if login_method and ttl < (1 - self._renew_fraction) * entry.first_ttl:
            # max_ttl is near: a fresh login beats riding the token to its end.
            self._authenticate(conn, entry)
            return
        self._set_token_times(entry, ttl, renewable, first=False)


def _data(answer: Any) -> Mapping[str, Any]:
    if isinstance(answer, dict) and isinstance(answer.get("data"), dict):
        data: Mapping[str, Any] = answer["data"]
        return data
    return {}
