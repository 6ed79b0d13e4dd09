from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from hooks.app import create_app

NOW = "2026-12-03T12:00:00Z"
CONTROLLER_NAMESPACE = "mirrors"


class Hooks:
    """The hook service as Metacontroller sees it: JSON in, JSON out."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    def post(self, hook: str, body: dict[str, Any], expect: int = 200) -> dict[str, Any]:
        response = self.client.post(f"/{hook}", json=body)
        assert response.status_code == expect, response.text
        assert response.headers["content-type"] == "application/json"
        result: dict[str, Any] = response.json()
        return result

    def sync(self, body: dict[str, Any]) -> dict[str, Any]:
        response = self.post("sync", body)
        assert set(response) == {"status", "children", "resyncAfterSeconds"}  # v2: strict keys
        return response

    def finalize(self, body: dict[str, Any]) -> dict[str, Any]:
        response = self.post("finalize", body)
        assert set(response) == {"status", "children", "finalized"}
        return response


@pytest.fixture
def clock() -> list[str]:
    return [NOW]


@pytest.fixture
def hooks(clock: list[str]) -> Iterator[Hooks]:
    app = create_app(CONTROLLER_NAMESPACE, clock=lambda: clock[0])
    with TestClient(app) as client:
        yield Hooks(client)
