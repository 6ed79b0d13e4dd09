"""The Vault core of the sidecar: logins, KV reads/writes, dynamic leases. No Kubernetes.

See docs/vault.md. The Kubernetes adapter (the rest of `sidecar`) reads auth material into
`Credentials`, the spec into a `Connection` and a path, and publishes the returned data and
`SourceState` / `DestinationState` in the mirror's state Secret.
"""

from sidecar.vault.clients import Clients, Connection, Credentials, new_hvac_client
from sidecar.vault.errors import Reason, VaultError
from sidecar.vault.leases import DEFAULT_RENEW_FRACTION, next_action_at, revoke
from sidecar.vault.mounts import Mount, find_mount
from sidecar.vault.reading import read_source
from sidecar.vault.times import format_time, parse_time
from sidecar.vault.writing import write_destination

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
