"""VaultError: every failure of the Vault core, with an Event reason and a safe message."""

from __future__ import annotations

from typing import Final, Literal

import hvac.exceptions
import requests

Reason = Literal[
    "VaultAuthFailed", "VaultError", "VaultUnreachable", "VaultNotFound", "InvalidData"
]

AUTH_FAILED: Final = "VaultAuthFailed"
ERROR: Final = "VaultError"
UNREACHABLE: Final = "VaultUnreachable"
NOT_FOUND: Final = "VaultNotFound"
INVALID_DATA: Final = "InvalidData"

_STATUS: Final[dict[type[Exception], int]] = {
    hvac.exceptions.InvalidRequest: 400,
    hvac.exceptions.Unauthorized: 401,
    hvac.exceptions.Forbidden: 403,
    hvac.exceptions.InvalidPath: 404,
    hvac.exceptions.PreconditionFailed: 412,
    hvac.exceptions.RateLimitExceeded: 429,
    hvac.exceptions.InternalServerError: 500,
    hvac.exceptions.VaultNotInitialized: 501,
    hvac.exceptions.BadGateway: 502,
    hvac.exceptions.VaultDown: 503,
}


class VaultError(Exception):
    """A Vault operation failed.

    `reason` is the Event reason to publish; the message says what failed and why, using only
    Vault's error strings, paths and addresses: never a secret value, a token or a secret-id.
    """

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason: Reason = reason
        self.message = message

    def __repr__(self) -> str:
        return f"VaultError(reason={self.reason!r}, message={self.message!r})"


def status_of(exc: hvac.exceptions.VaultError) -> int:
    """The HTTP status behind an hvac exception (0 if unknown)."""
    for cls in type(exc).__mro__:
        if cls in _STATUS:
            return _STATUS[cls]
    return 0


def vault_messages(exc: hvac.exceptions.VaultError) -> str:
    """Vault's own error strings (they name paths and causes, not values)."""
    errors = exc.errors
    if isinstance(errors, list) and errors:
        return "; ".join(str(e) for e in errors)
    if isinstance(errors, str) and errors:
        return errors
    return "no error message"


def translate(exc: Exception, what: str) -> VaultError:  # noqa: PLR0911
    """Turn an hvac / requests exception raised while doing `what` into a VaultError."""
    if isinstance(exc, VaultError):
        return exc
    if isinstance(exc, requests.exceptions.SSLError):
        return VaultError(UNREACHABLE, f"{what}: TLS handshake or verification failed: {exc}")
    if isinstance(exc, requests.exceptions.Timeout):
        return VaultError(UNREACHABLE, f"{what}: timed out")
    if isinstance(exc, requests.exceptions.ConnectionError):
        return VaultError(UNREACHABLE, f"{what}: cannot connect to Vault")
    if isinstance(exc, requests.exceptions.RequestException):
        return VaultError(UNREACHABLE, f"{what}: {type(exc).__name__}")
    if isinstance(exc, hvac.exceptions.VaultError):
        status = status_of(exc)
        detail = f"{what}: HTTP {status or '?'}: {vault_messages(exc)}"
        if status == 404:
            return VaultError(NOT_FOUND, detail)
        if status in (401, 403):
            return VaultError(ERROR, f"{what}: permission denied: {vault_messages(exc)}")
        if status in (502, 503, 504):
            return VaultError(UNREACHABLE, detail)
        return VaultError(ERROR, detail)
    return VaultError(ERROR, f"{what}: unexpected {type(exc).__name__}")
