"""The Vault core of the sidecar: logins, KV reads/writes, dynamic leases. No Kubernetes.

See docs/vault.md. The Kubernetes adapter (the rest of `sidecar`) reads auth material into
`Credentials`, the spec into a `Connection` and a path, and publishes the returned data and
`SourceState` / `DestinationState` in the mirror's state Secret.
"""

from sidecar.vault.clients import Clients, Connection, Credentials, new_hvac_client
from sidecar.vault.core import (
    DEFAULT_RENEW_FRACTION,
    Mount,
    find_mount,
    format_time,
    next_action_at,
    parse_time,
    read_source,
    revoke,
    write_destination,
)
from sidecar.vault.errors import Reason, VaultError

__all__ = [
    "DEFAULT_RENEW_FRACTION",
    "Clients",
    "Connection",
    "Credentials",
    "Mount",
    "Reason",
    "VaultError",
    "find_mount",
    "format_time",
    "new_hvac_client",
    "next_action_at",
    "parse_time",
    "read_source",
    "revoke",
    "write_destination",
]
