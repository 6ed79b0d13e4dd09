"""Calling Vault with an identity's client: one retry after a re-login, VaultError out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import hvac
import hvac.exceptions

from sidecar.vault.clients import Clients, Connection, Credentials
from sidecar.vault.errors import ERROR, NOT_FOUND, VaultError, translate, vault_messages

T = TypeVar("T")


def call(
    clients: Clients,
    conn: Connection,
    creds: Credentials,
    what: str,
    fn: Callable[[hvac.Client], T],
) -> T:
    """Run `fn` with the identity's client; on 403 check the token, log in again if it is no
    longer valid, and retry once. Every failure comes out as a VaultError."""
    client = clients.client(conn, creds)
    try:
        return fn(client)
    except hvac.exceptions.Forbidden as exc:
        if "preflight capability check" in vault_messages(exc):
            # The token is fine: no mount there, or the policy grants nothing under it.
            raise VaultError(
                NOT_FOUND,
                f"{what}: no secrets engine is mounted there, or the policy grants nothing "
                f"under it ({vault_messages(exc)})",
            ) from None
    except Exception as exc:
        raise translate(exc, what) from None
    fresh = clients.relogin(conn, creds)
    if fresh is None:
        raise VaultError(ERROR, f"{what}: permission denied by the token's policy")
    try:
        return fn(fresh)
    except Exception as exc:
        raise translate(exc, what) from None


def send(
    clients: Clients,
    conn: Connection,
    creds: Credentials,
    what: str,
    *,
    method: str,
    path: str,
    payload: Any = None,
) -> dict[str, Any]:
    """`call` with one plain `request`: Vault's answer, {} for an empty one."""
    return call(clients, conn, creds, what, lambda client: request(client, method, path, payload))


def request(client: hvac.Client, method: str, path: str, payload: Any = None) -> dict[str, Any]:
    """One Vault API call through hvac's adapter; {} for an empty (204) answer."""
    kwargs: dict[str, Any] = {}
    if payload is not None:
        kwargs["json"] = payload
    answer = client.adapter.request(method, f"/v1/{path}", **kwargs)
    if isinstance(answer, dict):
        return answer
    return {}
