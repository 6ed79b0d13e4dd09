"""The state Secret: how the sidecar tells the hooks what it did in Vault.

One per mirror that involves Vault, named `names.state_secret_name(mirror)`, in the controller
namespace, written only by the sidecar and read by the hooks as a related object:

* `data`: for a Vault source, the secret as last read (Kubernetes base64 values, keys as in
  Vault). The last good read stays here while Vault fails, so copies are never blanked.
* annotation `mirrors.kts.studio/state`: a `MirrorState` as JSON. It holds no secret value,
  but it does hold the lease id, which is why it lives in a Secret.
* an ownerReference to the SecretMirror with `controller` unset, and no `controller-uid` label:
  the GC deletes it with the mirror, and Metacontroller does not adopt it as a child (it would
  delete it, not being in the hook's answer).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import msgspec

from mirrors.api import GROUP, VaultSpec

STATE_ANNOTATION = f"{GROUP}/state"
STATE_OF_LABEL = f"{GROUP}/state-of"


class ErrorState(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The last failure; `reason` is an Event reason (VaultAuthFailed, VaultError, NoSecret...)."""

    reason: str
    message: str
    at: str


class SourceState(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What was last read from a Vault source."""

    path: str
    addr: str = ""  # the Vault it was read from ("" in states written before it was recorded)
    readAt: str
    contentHash: str
    dataVersion: int = 1  # bumped each time the data changes; shown in status
    kvVersion: int | None = None  # None: not a KV mount (dynamic engine)
    secretVersion: int | None = None  # KV v2 metadata version
    leaseId: str = ""
    leaseDuration: int = 0
    renewable: bool = False
    leaseIssuedAt: str = ""  # when these credentials were issued
    leaseExpiresAt: str = ""  # end of the current lease (moves with each renewal)
    renewedAt: str = ""


class DestinationState(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What was last written to a Vault destination."""

    path: str
    addr: str = ""  # the Vault it was written to ("" in states written before it was recorded)
    writtenAt: str
    contentHash: str
    secretVersion: int | None = None


class MirrorState(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    generation: int  # the SecretMirror generation the sidecar last acted on
    source: SourceState | None = None
    destination: DestinationState | None = None
    error: ErrorState | None = None
    revoked: bool = False  # the lease was revoked (deletePolicy delete) or nothing to revoke
    finalized: bool = False  # the sidecar finished its part of the mirror's deletion


def same_place(recorded: SourceState | DestinationState, vault: VaultSpec) -> bool:
    """Whether a recorded read or write was of the Vault path the spec names now."""
    if recorded.path.strip("/") != vault.path.strip("/"):
        return False
    return not recorded.addr or recorded.addr.rstrip("/") == vault.addr.rstrip("/")


def content_hash(data: Mapping[str, bytes]) -> str:
    """A stable digest of a secret's content, to tell whether a write or copy is current.

    Only for comparison inside the controller: never put it in status, where a low-entropy
    value could be found by brute force.
    """
    digest = hashlib.sha256()
    for key in sorted(data):
        for part in (key.encode(), data[key]):
            digest.update(len(part).to_bytes(8, "big"))
            digest.update(part)
    return "sha256:" + digest.hexdigest()


_decoder = msgspec.json.Decoder(MirrorState)


def decode(text: str) -> MirrorState:
    """Raises msgspec.ValidationError / DecodeError on a damaged annotation."""
    return _decoder.decode(text)


def encode(state: MirrorState) -> str:
    return msgspec.json.encode(state).decode()
