"""Kubernetes label selectors (`matchLabels` + `matchExpressions`), as the API server means them."""

from __future__ import annotations

from collections.abc import Mapping

from mirrors.api import LabelSelector, LabelSelectorRequirement, SpecError


def check_selector(selector: LabelSelector, field: str) -> None:
    for index, requirement in enumerate(selector.matchExpressions):
        has_values = bool(requirement.values)
        if requirement.operator in ("In", "NotIn") and not has_values:
            raise SpecError(
                f"{field}.matchExpressions[{index}]: {requirement.operator} needs values"
            )
        if requirement.operator in ("Exists", "DoesNotExist") and has_values:
            raise SpecError(
                f"{field}.matchExpressions[{index}]: {requirement.operator} takes no values"
            )


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
