"""The HTTP layer: errors, health and metrics."""

from __future__ import annotations

import pytest

from hooks import reconcile
from tests.support.objects import as_stored, load_example, namespace, secret, sync_request
from tests.unit.hooks.conftest import Hooks


def test_malformed_json_is_a_400_with_a_clear_body(hooks: Hooks) -> None:
    response = hooks.client.post("/sync", content=b"{not json")

    assert response.status_code == 400
    assert response.json()["error"].startswith("request body is not valid JSON")


def test_a_request_without_parent_is_a_400_naming_the_field(hooks: Hooks) -> None:
    response = hooks.client.post("/sync", json={"children": {}})

    assert response.status_code == 400
    assert response.json() == {
        "error": "not a Metacontroller v2 request: Object missing required field `parent`"
    }


def test_wrong_shape_names_the_path(hooks: Hooks) -> None:
    body = sync_request(as_stored(load_example("mysecret-mirror.yaml")))
    body["related"]["Namespace.v1"] = {"x": {"metadata": {"name": 5}}}

    response = hooks.client.post("/sync", json=body)

    assert response.status_code == 400
    assert response.json()["error"] == (
        "not a Metacontroller v2 request: "
        "Expected `str`, got `int` - at `$.related.Namespace.v1[...].metadata.name`"
    )


def test_internal_error_is_a_500_and_applies_nothing(
    hooks: Hooks, monkeypatch: pytest.MonkeyPatch
) -> None:

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(reconcile, "sync", boom)
    body = sync_request(as_stored(load_example("mysecret-mirror.yaml")))

    response = hooks.client.post("/sync", json=body)

    assert response.status_code == 500
    assert response.json() == {"error": "internal error; see the hook's log"}


def test_get_on_a_hook_is_not_allowed(hooks: Hooks) -> None:
    assert hooks.client.get("/sync").status_code == 405


def test_health_and_readiness(hooks: Hooks) -> None:
    assert hooks.client.get("/healthz").text == "ok"
    assert hooks.client.get("/readyz").status_code == 200


def test_metrics_count_requests_and_children(hooks: Hooks) -> None:
    mirror = as_stored(load_example("mysecret-mirror.yaml"))
    source = secret("default", "mysecret", {"k": "v"})
    hooks.sync(sync_request(mirror, namespaces=[namespace("project-a-1")], secrets=[source]))

    text = hooks.client.get("/metrics").text

    assert 'mirrors_hook_requests_total{code="200",hook="sync"}' in text
    assert 'mirrors_mirror_children{mirror="mysecret-mirror"} 1.0' in text
    assert 'mirrors_mirror_status{mirror="mysecret-mirror",status="Active"} 1.0' in text
    assert "mirrors_hook_duration_seconds_bucket" in text
