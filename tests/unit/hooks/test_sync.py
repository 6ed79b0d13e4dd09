"""The sync hook over HTTP: observed state in, desired children and status out.

Scenario 1 and 6 of SCENARIOS.md, with the manifests of examples/ as the user applies them.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.objects import (
    as_stored,
    load_example,
    namespace,
    owned_copy,
    secret,
    sync_request,
)
from tests.unit.hooks.conftest import NOW, Hooks

Obj = dict[str, Any]


@pytest.fixture
def mirror() -> Obj:
    return as_stored(load_example("mysecret-mirror.yaml"))


@pytest.fixture
def source() -> Obj:
    return secret(
        "default",
        "mysecret",
        {"username": "hellothere", "password": "generalkenobi"},
        labels={"app.kubernetes.io/instance": "argocd-app"},
        annotations={"kubectl.kubernetes.io/last-applied-configuration": "{...}"},
    )


CLUSTER = ["default", "kube-system", "project-a-main", "project-b-main", "xproject-a-1"]


def namespaces(*names: str) -> list[Obj]:
    return [namespace(n) for n in names]


def expected_copy(mirror: Obj, ns: str, source: Obj) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "mysecret",
            "namespace": ns,
            "labels": {
                "app.kubernetes.io/managed-by": "mirrors",
                "controller-uid": mirror["metadata"]["uid"],
                "mirrors.kts.studio/mirror": "mysecret-mirror",
            },
            "annotations": {
                "mirrors.kts.studio/mirror": "mysecret-mirror",
                "mirrors.kts.studio/source": "secret:default/mysecret",
            },
        },
        "type": source["type"],
        "data": source["data"],
    }


def test_missing_source_is_pending_with_the_original_message(hooks: Hooks, mirror: Obj) -> None:
    response = hooks.sync(sync_request(mirror, namespaces=namespaces(*CLUSTER)))

    assert response == {
        "status": {
            "mirrorStatus": "Pending",
            "message": "secret default/mysecret not found, waiting to appear",
            "conditions": [
                {
                    "type": "Ready",
                    "status": "False",
                    "reason": "SourceNotFound",
                    "message": "secret default/mysecret not found, waiting to appear",
                    "lastTransitionTime": NOW,
                }
            ],
            "lastSyncTime": "1970-01-01T00:00:00Z",
        },
        "children": [],
        "resyncAfterSeconds": 180,
    }


def test_source_appears_copies_go_to_full_matches_only(
    hooks: Hooks, mirror: Obj, source: Obj
) -> None:
    response = hooks.sync(sync_request(mirror, namespaces=namespaces(*CLUSTER), secrets=[source]))

    assert response["children"] == [
        expected_copy(mirror, "project-a-main", source),
        expected_copy(mirror, "project-b-main", source),
    ]
    status = response["status"]
    assert status["mirrorStatus"] == "Active"
    assert status["lastSyncTime"] == NOW
    assert status["source"] == {
        "type": "secret",
        "namespace": "default",
        "name": "mysecret",
        "resourceVersion": "200",
    }
    assert status["namespaces"] == {"synced": 0, "pending": 2, "conflicts": 0, "excluded": 0}
    assert status["pendingNamespaces"] == ["project-a-main", "project-b-main"]
    assert status["conditions"][0]["status"] == "False"
    assert status["conditions"][0]["reason"] == "Progressing"


def test_observed_copies_are_synced_and_ready(hooks: Hooks, mirror: Obj, source: Obj) -> None:
    copies = [owned_copy(mirror, ns, source) for ns in ("project-a-main", "project-b-main")]

    response = hooks.sync(
        sync_request(
            mirror, children=copies, namespaces=namespaces(*CLUSTER), secrets=[source, *copies]
        )
    )

    assert [c["metadata"]["namespace"] for c in response["children"]] == [
        "project-a-main",
        "project-b-main",
    ]
    status = response["status"]
    assert status["namespaces"] == {"synced": 2, "pending": 0, "conflicts": 0, "excluded": 0}
    assert status["syncedNamespaces"] == ["project-a-main", "project-b-main"]
    assert status["message"] == "synced to 2 namespace(s)"
    assert status["conditions"][0] | {"lastTransitionTime": None} == {
        "type": "Ready",
        "status": "True",
        "reason": "Synced",
        "message": "synced to 2 namespace(s)",
        "lastTransitionTime": None,
    }


def test_new_namespace_gets_its_copy_on_the_same_sync(
    hooks: Hooks, mirror: Obj, source: Obj
) -> None:
    copies = [owned_copy(mirror, "project-a-main", source)]
    request = sync_request(
        mirror,
        children=copies,
        namespaces=namespaces(*CLUSTER, "project-a-feature-1"),
        secrets=[source, *copies],
    )

    response = hooks.sync(request)

    assert [c["metadata"]["namespace"] for c in response["children"]] == [
        "project-a-feature-1",
        "project-a-main",
        "project-b-main",
    ]


def test_source_labels_and_annotations_are_not_copied(
    hooks: Hooks, mirror: Obj, source: Obj
) -> None:
    response = hooks.sync(sync_request(mirror, namespaces=namespaces(*CLUSTER), secrets=[source]))

    for child in response["children"]:
        assert "app.kubernetes.io/instance" not in child["metadata"]["labels"]
        assert (
            "kubectl.kubernetes.io/last-applied-configuration"
            not in child["metadata"]["annotations"]
        )


def test_foreign_same_name_secret_is_not_touched_and_is_reported(
    hooks: Hooks, mirror: Obj, source: Obj
) -> None:
    foreign = secret("project-b-main", "mysecret", {"token": "someone else's"})

    response = hooks.sync(
        sync_request(mirror, namespaces=namespaces(*CLUSTER), secrets=[source, foreign])
    )

    assert [c["metadata"]["namespace"] for c in response["children"]] == ["project-a-main"]
    status = response["status"]
    assert status["conflictNamespaces"] == ["project-b-main"]
    assert status["namespaces"]["conflicts"] == 1
    assert "1 skipped: a Secret of the same name not managed by this mirror" in status["message"]


def test_terminating_namespace_gets_no_copy(hooks: Hooks, mirror: Obj, source: Obj) -> None:
    response = hooks.sync(
        sync_request(
            mirror,
            namespaces=[namespace("project-a-main"), namespace("project-a-old", terminating=True)],
            secrets=[source],
        )
    )

    assert [c["metadata"]["namespace"] for c in response["children"]] == ["project-a-main"]


def test_source_namespace_never_gets_a_copy_of_its_own_source(
    hooks: Hooks, mirror: Obj, source: Obj
) -> None:
    mirror["spec"]["destination"]["namespaces"] = [".+"]

    response = hooks.sync(sync_request(mirror, namespaces=namespaces(*CLUSTER), secrets=[source]))

    assert "default" not in [c["metadata"]["namespace"] for c in response["children"]]
    assert len(response["children"]) == 4


def test_moving_the_source_to_a_namespace_holding_a_copy_keeps_that_copy(
    hooks: Hooks, mirror: Obj, source: Obj
) -> None:
    # spec.source.namespace: default -> project-a-main, where this mirror made a copy. That
    # copy is the source now; leaving it out of the answer would make Metacontroller delete it.
    copies = [owned_copy(mirror, ns, source) for ns in ("project-a-main", "project-b-main")]
    mirror["spec"]["source"]["namespace"] = "project-a-main"

    response = hooks.sync(
        sync_request(
            mirror, children=copies, namespaces=namespaces(*CLUSTER), secrets=[source, *copies]
        )
    )

    children = {c["metadata"]["namespace"]: c for c in response["children"]}
    assert sorted(children) == ["project-a-main", "project-b-main"]
    assert children["project-a-main"]["data"] == copies[0]["data"]
    assert response["status"]["mirrorStatus"] == "Active"
    assert response["status"]["source"]["namespace"] == "project-a-main"


def test_changed_source_data_reaches_every_copy(hooks: Hooks, mirror: Obj, source: Obj) -> None:
    copies = [owned_copy(mirror, ns, source) for ns in ("project-a-main", "project-b-main")]
    changed = secret("default", "mysecret", {"username": "hellothere", "password": "obiwan"})
    changed["metadata"]["resourceVersion"] = "201"

    response = hooks.sync(
        sync_request(
            mirror, children=copies, namespaces=namespaces(*CLUSTER), secrets=[changed, *copies]
        )
    )

    assert {c["metadata"]["namespace"]: c["data"] for c in response["children"]} == {
        "project-a-main": changed["data"],
        "project-b-main": changed["data"],
    }
    assert response["status"]["pendingNamespaces"] == ["project-a-main", "project-b-main"]


def test_a_copy_of_another_type_is_replaced_not_updated(
    hooks: Hooks, mirror: Obj, source: Obj
) -> None:
    # The source was re-created with another type; a Secret's type cannot be updated.
    copies = [owned_copy(mirror, ns, source) for ns in ("project-a-main", "project-b-main")]
    tls = secret("default", "mysecret", {"tls.crt": "c", "tls.key": "k"}, type="kubernetes.io/tls")

    response = hooks.sync(
        sync_request(
            mirror, children=copies, namespaces=namespaces(*CLUSTER), secrets=[tls, *copies]
        )
    )

    assert response["children"] == []  # deleted now, created with the new type next sync
    assert response["status"]["pendingNamespaces"] == ["project-a-main", "project-b-main"]

    again = hooks.sync(sync_request(mirror, namespaces=namespaces(*CLUSTER), secrets=[tls]))

    assert [c["type"] for c in again["children"]] == ["kubernetes.io/tls"] * 2


def test_source_deleted_keeps_existing_copies(hooks: Hooks, mirror: Obj, source: Obj) -> None:
    copies = [owned_copy(mirror, ns, source) for ns in ("project-a-main", "project-b-main")]

    response = hooks.sync(
        sync_request(mirror, children=copies, namespaces=namespaces(*CLUSTER), secrets=copies)
    )

    assert response["children"] == [
        expected_copy(mirror, "project-a-main", source),
        expected_copy(mirror, "project-b-main", source),
    ]
    assert response["status"]["mirrorStatus"] == "Pending"


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        (
            {"destination": {"type": "namespaces", "namespaces": ["project-a-.+", "(?=x)y"]}},
            "spec.destination.namespaces[1] '(?=x)y' is not a valid RE2 pattern: "
            "invalid perl operator: (?=",
        ),
        (
            {
                "destination": {
                    "type": "namespaces",
                    "namespaces": ["a"],
                    "excludeNamespaces": ["("],
                }
            },
            "spec.destination.excludeNamespaces[0] '(' is not a valid RE2 pattern: missing ): (",
        ),
        (
            {"destination": {"type": "namespaces"}},
            "spec.destination.namespaces or spec.destination.namespaceSelector is required "
            "when spec.destination.type is namespaces",
        ),
        ({"source": {"type": "git"}}, "Invalid enum value 'git' - at `spec.source.type`"),
        ({"pollPeriodSeconds": "often"}, "Expected `int`, got `str` - at `spec.pollPeriodSeconds`"),
    ],
)
def test_invalid_spec_is_an_error_and_keeps_copies(
    hooks: Hooks, mirror: Obj, source: Obj, patch: Obj, message: str
) -> None:
    copies = [owned_copy(mirror, "project-a-main", source)]
    mirror["spec"].update(patch)

    response = hooks.sync(
        sync_request(mirror, children=copies, namespaces=namespaces(*CLUSTER), secrets=[source])
    )

    assert response["status"]["mirrorStatus"] == "Error"
    assert response["status"]["message"] == message
    assert response["status"]["conditions"][0]["reason"] == "InvalidSpec"
    assert response["children"] == [expected_copy(mirror, "project-a-main", source)]


def test_exclusions_and_namespace_selector_combine(hooks: Hooks, source: Obj) -> None:
    mirror = as_stored(load_example("exclude-namespaces.yaml"))
    registry = secret("platform", "registry-credentials", {".dockerconfigjson": "{}"})
    enabled = {"mirrors.kts.studio/registry": "enabled"}

    response = hooks.sync(
        sync_request(
            mirror,
            namespaces=[
                namespace("platform", enabled),
                namespace("project-a-api", enabled),
                namespace("project-a-web"),  # not labelled
                namespace("project-a-sandbox-1", enabled),  # excluded
                namespace("project-b-api", enabled),  # no pattern matches
            ],
            secrets=[registry],
        )
    )

    assert [c["metadata"]["namespace"] for c in response["children"]] == ["project-a-api"]
    assert response["status"]["excludedNamespaces"] == ["project-a-sandbox-1"]
    assert response["status"]["namespaces"]["excluded"] == 1


def test_selector_alone_selects_by_labels(hooks: Hooks, mirror: Obj, source: Obj) -> None:
    mirror["spec"]["destination"] = {
        "type": "namespaces",
        "namespaceSelector": {
            "matchExpressions": [{"key": "team", "operator": "In", "values": ["a", "b"]}]
        },
    }

    response = hooks.sync(
        sync_request(
            mirror,
            namespaces=[namespace("one", {"team": "a"}), namespace("two", {"team": "c"})],
            secrets=[source],
        )
    )

    assert [c["metadata"]["namespace"] for c in response["children"]] == ["one"]


def test_tls_certificate_reaches_every_namespace_of_its_project_only(hooks: Hooks) -> None:
    """Scenario 6: cert-manager's Secret in the main-branch namespace, fanned out by project."""
    mirror = as_stored(load_example("project-tls-mirror.yaml"))
    tls = secret(
        "project-a-1120-main-23hf",
        "project-a-tls",
        {"tls.crt": "-----BEGIN CERTIFICATE-----\n" + "A" * 3000, "tls.key": "K" * 1700},
        type="kubernetes.io/tls",
    )
    cluster = [
        "project-a-1120-main-23hf",
        "project-a-1120-dev-4hg5",
        "project-a-1120-feature-1-aafd",
        "project-b-1200-main-7ds9",
        "project-b-1200-dev-0001",
        "xproject-a-1120-main",
    ]

    response = hooks.sync(sync_request(mirror, namespaces=namespaces(*cluster), secrets=[tls]))

    assert [(c["metadata"]["namespace"], c["type"]) for c in response["children"]] == [
        ("project-a-1120-dev-4hg5", "kubernetes.io/tls"),
        ("project-a-1120-feature-1-aafd", "kubernetes.io/tls"),
    ]
    assert all(c["data"] == tls["data"] for c in response["children"])


def test_same_request_gives_identical_bytes(hooks: Hooks, mirror: Obj, source: Obj) -> None:
    request = sync_request(mirror, namespaces=namespaces(*CLUSTER), secrets=[source])

    first = hooks.client.post("/sync", json=request).content
    second = hooks.client.post("/sync", json=request).content

    assert first == second


def test_resync_without_changes_keeps_the_status_byte_for_byte(
    hooks: Hooks, clock: list[str], mirror: Obj, source: Obj
) -> None:
    copies = [owned_copy(mirror, ns, source) for ns in ("project-a-main", "project-b-main")]
    request = sync_request(
        mirror, children=copies, namespaces=namespaces(*CLUSTER), secrets=[source, *copies]
    )
    first = hooks.sync(request)["status"]

    clock[0] = "2026-12-03T12:03:00Z"
    mirror["status"] = {**first, "observedGeneration": 1}
    second = hooks.sync(
        sync_request(
            mirror, children=copies, namespaces=namespaces(*CLUSTER), secrets=[source, *copies]
        )
    )["status"]

    assert second == first


def test_last_sync_time_moves_when_the_copies_change(
    hooks: Hooks, clock: list[str], mirror: Obj, source: Obj
) -> None:
    first = hooks.sync(sync_request(mirror, namespaces=namespaces(*CLUSTER), secrets=[source]))
    clock[0] = "2026-12-03T12:03:00Z"
    mirror["status"] = first["status"]

    second = hooks.sync(
        sync_request(mirror, namespaces=namespaces(*CLUSTER, "project-a-new"), secrets=[source])
    )

    assert second["status"]["lastSyncTime"] == "2026-12-03T12:03:00Z"
    # Ready stayed False (still progressing): its transition time stays.
    assert second["status"]["conditions"][0]["lastTransitionTime"] == NOW


def test_a_label_edit_on_the_source_is_not_a_sync(
    hooks: Hooks, clock: list[str], mirror: Obj, source: Obj
) -> None:
    copies = [owned_copy(mirror, ns, source) for ns in ("project-a-main", "project-b-main")]
    cluster = namespaces(*CLUSTER)
    first = hooks.sync(
        sync_request(mirror, children=copies, namespaces=cluster, secrets=[source, *copies])
    )
    clock[0] = "2026-12-03T12:03:00Z"
    mirror["status"] = first["status"]
    source["metadata"]["labels"]["team"] = "a"
    source["metadata"]["resourceVersion"] = "999"

    second = hooks.sync(
        sync_request(mirror, children=copies, namespaces=cluster, secrets=[source, *copies])
    )

    assert second["status"]["source"]["resourceVersion"] == "999"
    assert second["status"]["lastSyncTime"] == first["status"]["lastSyncTime"]


def test_resync_after_is_the_poll_period(hooks: Hooks, mirror: Obj, source: Obj) -> None:
    mirror["spec"]["pollPeriodSeconds"] = 42

    response = hooks.sync(sync_request(mirror, namespaces=namespaces(*CLUSTER), secrets=[source]))

    assert response["resyncAfterSeconds"] == 42


def test_status_holds_no_secret_value(hooks: Hooks, mirror: Obj, source: Obj) -> None:
    response = hooks.sync(sync_request(mirror, namespaces=namespaces(*CLUSTER), secrets=[source]))

    text = str(response["status"])
    for value in ("hellothere", "generalkenobi", *source["data"].values()):
        assert value not in text


def test_long_mirror_names_skip_the_label_but_keep_the_annotation(
    hooks: Hooks, source: Obj
) -> None:
    manifest = load_example("mysecret-mirror.yaml")
    manifest["metadata"]["name"] = "m" * 100
    mirror = as_stored(manifest)

    response = hooks.sync(sync_request(mirror, namespaces=namespaces(*CLUSTER), secrets=[source]))

    meta = response["children"][0]["metadata"]
    assert "mirrors.kts.studio/mirror" not in meta["labels"]
    assert meta["annotations"]["mirrors.kts.studio/mirror"] == "m" * 100


def test_a_key_added_to_a_copy_is_recorded_then_removed(
    hooks: Hooks, mirror: Obj, source: Obj
) -> None:
    """Metacontroller's 3-way merge keeps keys the hook never returned; so a stray key is
    returned once (it enters the last-applied record), then left out (and deleted)."""
    tampered = owned_copy(mirror, "project-a-main", source)
    tampered["data"]["injected"] = "ZXZpbA=="

    first = hooks.sync(
        sync_request(
            mirror, children=[tampered], namespaces=namespaces(*CLUSTER), secrets=[source, tampered]
        )
    )

    [copy_a, _] = first["children"]
    assert copy_a["data"] == {**source["data"], "injected": "ZXZpbA=="}
    assert first["status"]["pendingNamespaces"] == ["project-a-main", "project-b-main"]

    recorded = {"apiVersion": "v1", "kind": "Secret", "data": copy_a["data"]}
    tampered["metadata"]["annotations"]["metacontroller.k8s.io/last-applied-configuration"] = (
        json.dumps(recorded)
    )
    second = hooks.sync(
        sync_request(
            mirror, children=[tampered], namespaces=namespaces(*CLUSTER), secrets=[source, tampered]
        )
    )

    assert second["children"][0]["data"] == source["data"]
