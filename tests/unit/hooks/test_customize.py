"""The customize hook: related objects derived from the spec alone."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.objects import as_stored, load_controller, load_example
from tests.unit.hooks.conftest import Hooks


def customize(hooks: Hooks, manifest: dict[str, Any]) -> list[dict[str, Any]]:
    response = hooks.post("customize", {"controller": load_controller(), "parent": manifest})
    assert set(response) == {"relatedResources"}  # v2: strict keys
    rules: list[dict[str, Any]] = response["relatedResources"]
    for rule in rules:  # Metacontroller rejects names together with any labelSelector
        assert not ("names" in rule and "labelSelector" in rule)
    return rules


def test_namespace_fanout_asks_for_namespaces_and_same_name_secrets(hooks: Hooks) -> None:
    mirror = as_stored(load_example("mysecret-mirror.yaml"))

    assert customize(hooks, mirror) == [
        {"apiVersion": "v1", "resource": "namespaces", "labelSelector": {}},
        {"apiVersion": "v1", "resource": "secrets", "names": ["mysecret"]},
    ]


def test_namespace_selector_narrows_the_namespaces(hooks: Hooks) -> None:
    mirror = as_stored(load_example("exclude-namespaces.yaml"))

    rules = customize(hooks, mirror)

    assert rules[0] == {
        "apiVersion": "v1",
        "resource": "namespaces",
        "labelSelector": {"matchLabels": {"mirrors.kts.studio/registry": "enabled"}},
    }


def test_vault_source_asks_for_its_state_secret(hooks: Hooks) -> None:
    mirror = as_stored(load_example("myvaultsecret-mirror.yaml"))

    assert customize(hooks, mirror) == [
        {"apiVersion": "v1", "resource": "namespaces", "labelSelector": {}},
        {"apiVersion": "v1", "resource": "secrets", "names": ["myvaultsecret-sync"]},
        {
            "apiVersion": "v1",
            "resource": "secrets",
            "names": ["mirror-state-myvaultsecret-mirror"],
            "namespace": "mirrors",
        },
    ]


def test_secret_to_vault_asks_for_the_source_and_state(hooks: Hooks) -> None:
    mirror = as_stored(load_example("myvaultsecret-mirror-reverse.yaml"))

    assert customize(hooks, mirror) == [
        {"apiVersion": "v1", "resource": "secrets", "names": ["mysecret"], "namespace": "default"},
        {
            "apiVersion": "v1",
            "resource": "secrets",
            "names": ["mirror-state-myvaultsecret-mirror-reverse"],
            "namespace": "mirrors",
        },
    ]


def test_vault_to_vault_needs_only_its_state(hooks: Hooks) -> None:
    mirror = as_stored(load_example("secretmirror-from-vault-to-vault.yaml"))

    assert customize(hooks, mirror) == [
        {
            "apiVersion": "v1",
            "resource": "secrets",
            "names": ["mirror-state-secretmirror-from-vault-to-vault"],
            "namespace": "mirrors",
        }
    ]


def test_answer_depends_on_spec_only(hooks: Hooks) -> None:
    mirror = as_stored(load_example("mysecret-mirror.yaml"))
    other = as_stored(load_example("mysecret-mirror.yaml"), status={"mirrorStatus": "Active"})
    other["metadata"]["labels"] = {"x": "y"}

    assert customize(hooks, mirror) == customize(hooks, other)


@pytest.mark.parametrize("spec", [{"pollPeriodSeconds": "x"}, {"source": {"type": 3}}])
def test_undecodable_spec_asks_for_nothing(hooks: Hooks, spec: dict[str, Any]) -> None:
    mirror = as_stored(load_example("mysecret-mirror.yaml"))
    mirror["spec"].update(spec)

    assert customize(hooks, mirror) == []


@pytest.mark.parametrize(
    "selector",
    [
        {"matchExpressions": [{"key": "team", "operator": "In"}]},
        {"matchLabels": {"not a key": "a"}},
    ],
)
def test_selector_the_api_server_would_reject_is_not_passed_on(
    hooks: Hooks, selector: dict[str, Any]
) -> None:
    # Metacontroller would fail listing with it and never call sync, which reports the error.
    mirror = as_stored(load_example("mysecret-mirror.yaml"))
    mirror["spec"]["destination"]["namespaceSelector"] = selector

    assert customize(hooks, mirror) == []
