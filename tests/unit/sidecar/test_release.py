"""Releasing a retained mirror's copies, on its own (the reconciler's tests cover the Events
and the schedule around it)."""

from __future__ import annotations

from typing import Any

from sidecar import plan
from sidecar.release import Outcome, release_copies
from tests.unit.sidecar.fakes import UID, ApiError, FakeKube, mirror_obj

RETAIN = {"destination": {"namespaces": ["a", "b"]}, "deletePolicy": "retain"}
OWNER = {"apiVersion": "mirrors.kts.studio/v1alpha2", "kind": "SecretMirror", "name": "m",
         "uid": UID, "controller": True, "blockOwnerDeletion": True}  # fmt: skip


def _kube(*namespaces: str) -> FakeKube:
    kube = FakeKube()
    for n, ns in enumerate(namespaces):
        kube.objects[("Secret", ns, "mysecret")] = {
            "metadata": {
                "name": "mysecret",
                "namespace": ns,
                "resourceVersion": f"5{n}",
                "labels": {"controller-uid": UID},
                "ownerReferences": [OWNER],
            },
        }
    return kube


def _mirror() -> plan.Mirror:
    return plan.Mirror.from_object(mirror_obj("m", RETAIN, deleting=True))


def test_every_owned_copy_is_released() -> None:
    kube = _kube("a", "b")
    assert release_copies(kube, _mirror()) == Outcome(owned=2, released=2)
    assert release_copies(kube, _mirror()) == Outcome(owned=0, released=0)


def test_a_failed_copy_is_named_with_its_status_only() -> None:
    kube = _kube("a", "b")
    kube.fail_next["patch_secret"] = ApiError(403)
    assert release_copies(kube, _mirror()) == Outcome(
        owned=2, released=1, failure="1 of 2 failed: a/mysecret: HTTP 403"
    )


def test_a_copy_gone_meanwhile_is_not_counted_and_not_a_failure() -> None:
    kube = _kube("a")
    real = kube.list_secrets_everywhere

    def then_gone(selector: str) -> list[dict[str, Any]]:
        found = real(selector)
        kube.objects.clear()
        return found

    kube.list_secrets_everywhere = then_gone  # type: ignore[method-assign]
    assert release_copies(kube, _mirror()) == Outcome(owned=1, released=0)


def test_a_failed_list_is_a_failure() -> None:
    kube = _kube("a")
    kube.fail_next["list_everywhere"] = ApiError(500)
    assert release_copies(kube, _mirror()) == Outcome(
        owned=0, released=0, failure="listing them: HTTP 500"
    )
