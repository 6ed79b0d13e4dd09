"""Labels, annotations and object names that mirrors puts on what it creates.

The hooks and the sidecar agree on these through this module only.
"""

from __future__ import annotations

import hashlib

from mirrors.api import GROUP

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "mirrors"
MIRROR_LABEL = f"{GROUP}/mirror"
MIRROR_ANNOTATION = f"{GROUP}/mirror"
SOURCE_ANNOTATION = f"{GROUP}/source"
# Set by Metacontroller (generateSelector: true); we set it too so a child matches its parent's
# selector even before Metacontroller's own labelling, and so the test driver needs no magic.
CONTROLLER_UID_LABEL = "controller-uid"

# Metacontroller's record of what the hook last returned for a child (its 3-way merge base).
LAST_APPLIED_ANNOTATION = "metacontroller.k8s.io/last-applied-configuration"

STATE_PREFIX = "mirror-state-"
_MAX_NAME = 253
_MAX_LABEL_VALUE = 63


def label_value(name: str) -> str | None:
    """`name` as a label value, or None when it is too long to be one (names go to 253)."""
    return name if len(name) <= _MAX_LABEL_VALUE else None


def state_secret_name(mirror_name: str) -> str:
    """The name of a mirror's state Secret in the controller namespace (always a valid name)."""
    name = STATE_PREFIX + mirror_name
    if len(name) <= _MAX_NAME:
        return name
    digest = hashlib.sha256(mirror_name.encode()).hexdigest()[:16]
    return f"{name[: _MAX_NAME - len(digest) - 1]}-{digest}"
