"""The customize hook: which related objects a mirror needs, derived from its spec alone.

Metacontroller caches the answer per (parent uid, generation), so nothing here may depend on
anything but the spec and the controller's configuration.
"""

from __future__ import annotations

from typing import Any

from hooks.fanout import Targets
from mirrors import api, selectors
from mirrors.names import state_secret_name

Rule = dict[str, Any]


def _secrets(names: list[str], namespace: str = "") -> Rule:
    # `names` excludes any `labelSelector` (Metacontroller rejects both); an empty namespace
    # selects the names in every namespace.
    rule: Rule = {"apiVersion": "v1", "resource": "secrets", "names": names}
    if namespace:
        rule["namespace"] = namespace
    return rule


def related_resources(
    spec: api.MirrorSpec, mirror_name: str, controller_namespace: str
) -> list[Rule]:
    rules: list[Rule] = []
    name = api.source_name(spec, mirror_name)
    to_namespaces = spec.destination.type == "namespaces"
    if to_namespaces:
        selector = spec.destination.namespaceSelector
        rules.append(
            {
                "apiVersion": "v1",
                "resource": "namespaces",
                "labelSelector": selectors.to_api(selector) if selector else {},
            }
        )
        # Every Secret of the copies' name, wherever it is: the copies we own come as children,
        # any other one is a conflict we must not overwrite. Includes a secret source.
        rules.append(_secrets([name]))
    elif spec.source.type == "secret":
        rules.append(_secrets([name], spec.source.namespace))
    if api.involves_vault(spec):
        rules.append(_secrets([state_secret_name(mirror_name)], controller_namespace))
    return rules


def customize(raw_spec: bytes, mirror_name: str, controller_namespace: str) -> dict[str, Any]:
    try:
        spec = api.decode_spec(raw_spec)
        # Validate as sync does: a rule built from a bad selector would make Metacontroller
        # fail before calling sync, and the mirror would never show the error.
        api.check_spec(spec)
        Targets.of(spec.destination)
    except api.SpecError:
        # Sync reports the error; with no rules it still sees (and keeps) the children.
        return {"relatedResources": []}
    return {"relatedResources": related_resources(spec, mirror_name, controller_namespace)}
