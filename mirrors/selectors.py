"""Kubernetes label selectors (`matchLabels` + `matchExpressions`), as the API server means them."""

from __future__ import annotations

import re
from collections.abc import Mapping

from mirrors.api import LabelSelector, LabelSelectorRequirement, SpecError

# The API server's syntax for label keys (optional DNS-subdomain prefix, then a name) and
# values: a selector it would reject makes Metacontroller fail before our sync is called, so
# the mirror would never show the error.
_NAME = r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)"
_VALUE = re.compile(rf"({_NAME})?")
_PREFIX = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_NAME_RE = re.compile(_NAME)


def _check_key(key: str, field: str) -> None:
    prefix, _, name = key.rpartition("/")
    if "/" in key and (not prefix or len(prefix) > 253 or not _PREFIX.fullmatch(prefix)):
        raise SpecError(f"{field}: {key!r} is not a valid label key (bad prefix)")
    if len(name) > 63 or not _NAME_RE.fullmatch(name):
        raise SpecError(
            f"{field}: {key!r} is not a valid label key (a name of at most 63 characters: "
            "alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric)"
        )


def _check_value(value: str, field: str) -> None:
    if len(value) > 63 or not _VALUE.fullmatch(value):
        raise SpecError(
            f"{field}: {value!r} is not a valid label value (at most 63 characters: "
            "alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric)"
        )


def check_selector(selector: LabelSelector, field: str) -> None:
    """Reject what the API server would reject in a LabelSelector, naming the field."""
    for key, value in selector.matchLabels.items():
        _check_key(key, f"{field}.matchLabels")
        _check_value(value, f"{field}.matchLabels[{key}]")
    for index, requirement in enumerate(selector.matchExpressions):
        where = f"{field}.matchExpressions[{index}]"
        _check_key(requirement.key, f"{where}.key")
        for value in requirement.values:
            _check_value(value, f"{where}.values")
        has_values = bool(requirement.values)
        if requirement.operator in ("In", "NotIn") and not has_values:
            raise SpecError(f"{where}: {requirement.operator} needs values")
        if requirement.operator in ("Exists", "DoesNotExist") and has_values:
            raise SpecError(f"{where}: {requirement.operator} takes no values")


def _satisfies(requirement: LabelSelectorRequirement, labels: Mapping[str, str]) -> bool:
    present = requirement.key in labels
    match requirement.operator:
        case "In":
            return present and labels[requirement.key] in requirement.values
        case "NotIn":
            return not present or labels[requirement.key] not in requirement.values
        case "Exists":
            return present
        case "DoesNotExist":
            return not present


def matches(selector: LabelSelector, labels: Mapping[str, str]) -> bool:
    """An empty selector selects everything, as in the Kubernetes API."""
    return all(labels.get(k) == v for k, v in selector.matchLabels.items()) and all(
        _satisfies(r, labels) for r in selector.matchExpressions
    )


def to_api(selector: LabelSelector) -> dict[str, object]:
    """The selector as a Kubernetes `LabelSelector` object (for Metacontroller's customize)."""
    out: dict[str, object] = {}
    if selector.matchLabels:
        out["matchLabels"] = dict(sorted(selector.matchLabels.items()))
    if selector.matchExpressions:
        out["matchExpressions"] = [
            {
                "key": r.key,
                "operator": r.operator,
                **({"values": list(r.values)} if r.values else {}),
            }
            for r in selector.matchExpressions
        ]
    return out
