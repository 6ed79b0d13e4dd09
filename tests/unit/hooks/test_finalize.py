"""The finalize hook: deletePolicy decides whether the copies go with the mirror."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.objects import as_stored, load_example, namespace, owned_copy, secret
from tests.support.objects import sync_request as request
from tests.unit.hooks.conftest import Hooks

Obj = dict[str, Any]


@pytest.fixture
def mirror() -> Obj:
    return as_stored(load_example("mysecret-mirror.yaml"), status={"mirrorStatus": "Active"})


@pytest.fixture
def copies(mirror: Obj) -> list[Obj]:
    source = secret("default", "mysecret", {"username": "u"})
    return [owned_copy(mirror, ns, source) for ns in ("project-a-main", "project-b-main")]


def test_delete_policy_removes_copies_then_finalizes(
    hooks: Hooks, mirror: Obj, copies: list[Obj]
) -> None:
    first = hooks.finalize(request(mirror, children=copies, finalizing=True))

    assert first["children"] == []
    assert first["finalized"] is False
    assert first["status"]["message"] == "deletePolicy delete: removing 2 copies"
    assert first["status"]["mirrorStatus"] == "Active"

    second = hooks.finalize(request(mirror, finalizing=True))

    assert second["children"] == []
    assert second["finalized"] is True


def test_retain_policy_keeps_copies_until_the_sidecar_released_them(
    hooks: Hooks, mirror: Obj, copies: list[Obj]
) -> None:
    mirror["spec"]["deletePolicy"] = "retain"

    response = hooks.finalize(
        request(mirror, children=copies, namespaces=[namespace("project-a-main")], finalizing=True)
    )

    assert [c["metadata"]["namespace"] for c in response["children"]] == [
        "project-a-main",
        "project-b-main",
    ]
    assert [c["data"] for c in response["children"]] == [c["data"] for c in copies]
    assert response["finalized"] is False
    assert response["status"]["message"] == (
        "deletePolicy retain: releasing 2 copies (waiting for the sidecar)"
    )


def test_retain_policy_finalizes_once_no_copy_is_owned(hooks: Hooks, mirror: Obj) -> None:
    mirror["spec"]["deletePolicy"] = "retain"

    response = hooks.finalize(request(mirror, finalizing=True))

    assert response["children"] == []
    assert response["finalized"] is True


def test_invalid_spec_still_honours_retain(hooks: Hooks, mirror: Obj, copies: list[Obj]) -> None:
    mirror["spec"]["deletePolicy"] = "retain"
    mirror["spec"]["destination"]["namespaces"] = ["("]

    response = hooks.finalize(request(mirror, children=copies, finalizing=True))

    assert len(response["children"]) == 2
    assert response["finalized"] is False


def test_finalizing_flag_on_sync_route_finalizes(
    hooks: Hooks, mirror: Obj, copies: list[Obj]
) -> None:
    response = hooks.post("sync", request(mirror, children=copies, finalizing=True))

    assert response["children"] == []
    assert response["finalized"] is False
