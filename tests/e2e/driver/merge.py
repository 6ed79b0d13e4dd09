"""Metacontroller's client-side "apply" (pkg/dynamic/apply + common.ApplyUpdate): a 3-way
merge of the hook's desired child into the observed object against the last-applied one."""

from __future__ import annotations

import copy
import json
from typing import Any

Obj = dict[str, Any]
LAST_APPLIED = "metacontroller.k8s.io/last-applied-configuration"
KNOWN_MERGE_KEYS = ("containerPort", "port", "mountPath", "name", "uid", "ip", "path")
SYSTEM_FIELDS = (
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
)


class MergeError(ValueError):
    pass


def go_json(value: Any) -> str:
    """json.Marshal's output: sorted keys, compact, HTML-safe escapes."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(char, escaped)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def set_last_applied(obj: Obj, applied: Obj) -> None:
    encoded = go_json(applied)
    meta = obj.setdefault("metadata", {})
    annotations = meta.get("annotations") or {}
    annotations[LAST_APPLIED] = encoded
    meta["annotations"] = annotations


def get_last_applied(obj: Obj) -> Obj | None:
    raw = (obj.get("metadata", {}).get("annotations") or {}).get(LAST_APPLIED, "")
    if not raw:
        return None
    try:
        loaded: Obj = json.loads(raw)
    except ValueError as exc:
        raise MergeError(f"can't unmarshal {LAST_APPLIED!r} annotation: {exc}") from exc
    return loaded


def _merge(path: str, dest: Any, last: Any, desired: Any) -> Any:
    if isinstance(dest, dict):
        if last is not None and not isinstance(last, dict):
            raise MergeError(f"lastApplied{path}: expecting an object")
        if desired is not None and not isinstance(desired, dict):
            raise MergeError(f"desired{path}: expecting an object")
        return _merge_object(path, dest, last or {}, desired or {})
    if isinstance(dest, list):
        if last is not None and not isinstance(last, list):
            raise MergeError(f"lastApplied{path}: expecting an array")
        if desired is not None and not isinstance(desired, list):
            raise MergeError(f"desired{path}: expecting an array")
        key = _list_map_key(dest, last or [], desired or [])
        if key:
            return _merge_list_map(path, key, dest, last or [], desired or [])
        return desired
    return desired


def _merge_object(path: str, dest: Obj, last: Obj, desired: Obj) -> Obj:
    for key in last:
        if key not in desired:
            dest.pop(key, None)
    for key, value in desired.items():
        dest[key] = _merge(f"{path}[{key}]", dest.get(key), last.get(key), value)
    return dest


def _list_map_key(*lists: list[Any]) -> str:
    common: set[str] | None = None
    for items in lists:
        for item in items:
            if not isinstance(item, dict):
                return ""
            common = set(item) if common is None else common & set(item)
    return next((k for k in KNOWN_MERGE_KEYS if common and k in common), "")


def _merge_list_map(
    path: str, key: str, dest: list[Any], last: list[Any], desired: list[Any]
) -> list[Any]:
    def as_map(items: list[Any]) -> Obj:
        return {str(item[key]): item for item in items}

    dest_map = _merge_object(path, as_map(dest), as_map(last), as_map(desired))
    out: list[Any] = []
    added: set[str] = set()
    for item in [*dest, *desired]:
        name = str(item[key])
        if name in dest_map and name not in added:
            out.append(dest_map[name])
            added.add(name)
    return out


def apply_update(orig: Obj, update: Obj) -> Obj:
    """The full object to PUT: `orig` with the change from last-applied to `update` applied."""
    last = get_last_applied(orig)
    update = copy.deepcopy(update)
    annotations = update.get("metadata", {}).get("annotations")
    if annotations:
        annotations.pop(LAST_APPLIED, None)
        if not annotations:
            del update["metadata"]["annotations"]
    merged: Obj = _merge("", copy.deepcopy(orig), last, copy.deepcopy(update))
    # System metadata and status never come from the hook.
    for field in SYSTEM_FIELDS:
        if field in orig["metadata"]:
            merged.setdefault("metadata", {})[field] = orig["metadata"][field]
        else:
            merged.get("metadata", {}).pop(field, None)
    if "status" in orig:
        merged["status"] = orig["status"]
    else:
        merged.pop("status", None)
    set_last_applied(merged, update)
    return merged
