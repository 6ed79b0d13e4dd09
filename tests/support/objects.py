"""Kubernetes objects and Metacontroller v2 requests, shaped as the real ones are.

Objects carry what the API server returns (uid, resourceVersion, managedFields, ...), so the
hook tests exercise the same decoding as production.
"""

from __future__ import annotations

import base64
import copy
import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
CREATED = "2026-12-01T10:00:00Z"

Obj = dict[str, Any]


def uid(seed: str) -> str:
    h = hashlib.sha256(seed.encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def _managed(manager: str, fields: Obj) -> list[Obj]:
    return [
        {
            "manager": manager,
            "operation": "Update",
            "apiVersion": "v1",
            "time": CREATED,
            "fieldsType": "FieldsV1",
            "fieldsV1": fields,
        }
    ]


def namespace(name: str, labels: dict[str, str] | None = None, terminating: bool = False) -> Obj:
    all_labels = {"kubernetes.io/metadata.name": name, **(labels or {})}
    meta: Obj = {
        "name": name,
        "uid": uid("ns/" + name),
        "resourceVersion": "100",
        "creationTimestamp": CREATED,
        "labels": all_labels,
        "managedFields": _managed(
            "kubectl-create",
            {"f:metadata": {"f:labels": {".": {}, **{f"f:{k}": {} for k in all_labels}}}},
        ),
    }
    if terminating:
        meta["deletionTimestamp"] = "2026-12-01T11:00:00Z"
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": meta,
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Terminating" if terminating else "Active"},
    }


def b64(value: str | bytes) -> str:
    raw = value.encode() if isinstance(value, str) else value
    return base64.b64encode(raw).decode()


def secret(
    ns: str,
    name: str,
    data: dict[str, str | bytes],
    *,
    type: str = "Opaque",
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    owner: Obj | None = None,
    resource_version: str = "200",
) -> Obj:
    meta: Obj = {
        "name": name,
        "namespace": ns,
        "uid": uid(f"secret/{ns}/{name}"),
        "resourceVersion": resource_version,
        "creationTimestamp": CREATED,
        "managedFields": _managed(
            "kubectl-client-side-apply", {"f:data": {".": {}, **{f"f:{k}": {} for k in data}}}
        ),
    }
    if labels:
        meta["labels"] = labels
    if annotations:
        meta["annotations"] = annotations
    if owner is not None:
        meta["ownerReferences"] = [
            {
                "apiVersion": owner["apiVersion"],
                "kind": owner["kind"],
                "name": owner["metadata"]["name"],
                "uid": owner["metadata"]["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    # Go's encoding/json writes map keys sorted; so does the API server.
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": meta,
        "type": type,
        "data": {k: b64(v) for k, v in sorted(data.items())},
    }


def load_example(filename: str) -> Obj:
    loaded: Obj = yaml.safe_load((EXAMPLES / filename).read_text())
    return loaded


def as_stored(manifest: Obj, *, generation: int = 1, status: Obj | None = None) -> Obj:
    """A SecretMirror manifest as the API server returns it: cluster-scoped, defaulted."""
    obj = copy.deepcopy(manifest)
    meta = obj["metadata"]
    meta.pop("namespace", None)  # dropped for a cluster-scoped kind
    meta.update(
        uid=uid("mirror/" + meta["name"]),
        generation=generation,
        resourceVersion="300",
        creationTimestamp=CREATED,
    )
    spec = obj["spec"]
    source = spec.setdefault("source", {})
    source.setdefault("type", "secret")
    source.setdefault("namespace", "default")
    destination = spec.setdefault("destination", {})
    destination.setdefault("type", "namespaces")
    spec.setdefault("deletePolicy", "delete")
    spec.setdefault("pollPeriodSeconds", 180)
    if status is not None:
        obj["status"] = status
    return obj


def child_key(obj: Obj) -> str:
    return f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"


def sync_request(
    parent: Obj,
    *,
    children: Sequence[Obj] = (),
    namespaces: Sequence[Obj] = (),
    secrets: Sequence[Obj] = (),
    finalizing: bool = False,
) -> Obj:
    """A Metacontroller v2 sync/finalize request body."""
    return {
        "controller": load_controller(),
        "parent": parent,
        "children": {"Secret.v1": {child_key(c): c for c in children}},
        "related": {
            "Namespace.v1": {n["metadata"]["name"]: n for n in namespaces},
            "Secret.v1": {child_key(s): s for s in secrets},
        },
        "finalizing": finalizing,
    }


def load_controller() -> Obj:
    loaded: Obj = yaml.safe_load((ROOT / "metacontroller" / "compositecontroller.yaml").read_text())
    return loaded


def owned_copy(parent: Obj, ns: str, source: Obj) -> Obj:
    """A copy as it exists after Metacontroller created it for `parent`."""
    name = source["metadata"]["name"]
    copy_ = secret(
        ns,
        name,
        {},
        type=source["type"],
        labels={
            "app.kubernetes.io/managed-by": "mirrors",
            "controller-uid": parent["metadata"]["uid"],
            "mirrors.kts.studio/mirror": parent["metadata"]["name"],
        },
        annotations={
            "mirrors.kts.studio/mirror": parent["metadata"]["name"],
            "mirrors.kts.studio/source": f"secret:{source['metadata']['namespace']}/{name}",
        },
        owner=parent,
    )
    copy_["data"] = dict(source["data"])
    return copy_
