"""A stand-in for Metacontroller 4.x running ONE CompositeController (test code, not product).

Follows metacontroller/pkg/controller/composite and common: finalizer first, claim children
(adopt/release by the generated `controller-uid` selector), customize (cached per parent uid
and generation) and related objects, the sync or finalize hook (v2, strict response), the
controller-uid label invariant, manage children (delete unlisted, create with owner reference
and last-applied, 3-way merge in place), then status with observedGeneration.
"""

from __future__ import annotations

import copy
import json
import logging
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from tests.e2e.driver.kube import ApiError, Informer, Kube, Obj, Resource, deleting, key_of
from tests.e2e.driver.merge import apply_update, go_json, set_last_applied
from tests.e2e.driver.workqueue import WorkQueue

log = logging.getLogger("e2e.driver")

GC_FINALIZERS = ("orphan", "foregroundDeletion")
SYNC_KEYS = {"status", "children", "resyncAfterSeconds", "finalized"}
RULE_KEYS = {"apiVersion", "resource", "labelSelector", "namespace", "names"}
UID_LABEL = "controller-uid"


class SyncError(Exception):
    pass


class TooManyRequestsError(Exception):
    def __init__(self, after: float) -> None:
        super().__init__(f"hook asked to retry after {after}s")
        self.after = after


def _duration(text: str) -> float:
    """A Go duration as the CompositeController writes it (`10s`, `500ms`, `1m`)."""
    for suffix, scale in (("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0)):
        if text.endswith(suffix) and text[: -len(suffix)].replace(".", "", 1).isdigit():
            return float(text[: -len(suffix)]) * scale
    raise ValueError(f"bad duration {text!r}")


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """metav1.LabelSelector semantics; an empty or absent selector matches everything."""
    if not selector:
        return True
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }.get(op)
        if ok is None:
            raise SyncError(f"unknown selector operator {op!r}")
        if not ok:
            return False
    return True


_LABEL_NAME = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def _check_label(text: str, *, key: bool) -> None:
    prefix, slash, name = text.rpartition("/")
    bad = len(name) > 63 or not _LABEL_NAME.fullmatch(name) or (key and not name)
    if key and slash:
        bad = bad or len(prefix) > 253 or not _DNS_SUBDOMAIN.fullmatch(prefix)
    if bad or (not key and slash):
        raise SyncError(f"invalid label {'key' if key else 'value'} {text!r}")


def check_selector(selector: Mapping[str, Any]) -> None:
    """What metav1.LabelSelectorAsSelector rejects: Metacontroller fails the sync there,
    before calling the sync hook."""
    for key, value in (selector.get("matchLabels") or {}).items():
        _check_label(key, key=True)
        _check_label(value, key=False)
    for expr in selector.get("matchExpressions") or []:
        op, values = expr.get("operator"), expr.get("values") or []
        _check_label(expr.get("key", ""), key=True)
        if op in ("In", "NotIn") and not values:
            raise SyncError(f"for 'in', 'notin' operators, values set can't be empty: {expr}")
        if op in ("Exists", "DoesNotExist") and values:
            raise SyncError(f"values set must be empty for exists and does not exist: {expr}")
        if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            raise SyncError(f"{op!r} is not a valid label selector operator")
        for value in values:
            _check_label(value, key=False)


def with_hooks_url(controller: Obj, base_url: str) -> Obj:
    """The CompositeController with every webhook URL moved to `base_url` (path kept)."""
    cc = copy.deepcopy(controller)
    for hook in cc["spec"].get("hooks", {}).values():
        path = urlsplit(hook["webhook"]["url"]).path
        hook["webhook"]["url"] = base_url.rstrip("/") + path
    return cc


class CompositeDriver:
    def __init__(self, kube: Kube, controller: Obj, *, workers: int = 2) -> None:
        self.kube, self.cc = kube, controller
        spec = controller["spec"]
        self.name: str = controller["metadata"]["name"]
        self.finalizer = f"metacontroller.io/compositecontroller-{self.name}"
        if not spec.get("generateSelector"):
            raise ValueError("this driver supports generateSelector: true only")
        self.hooks: dict[str, Obj] = spec.get("hooks") or {}
        parent_rule = spec["parentResource"]
        self.ignore_status = bool(parent_rule.get("ignoreStatusChanges"))
        self.resync_period = spec.get("resyncPeriodSeconds")
        self.parent_res = kube.resource(parent_rule["apiVersion"], parent_rule["resource"])
        self.informers: dict[tuple[str, str], Informer] = {}
        self.parents = self._informer(self.parent_res)
        self.parents.add_handlers(self._enqueue, self._on_parent_update, self._enqueue)
        self.children: dict[str, tuple[Resource, str, Informer]] = {}
        for rule in spec.get("childResources") or []:
            res = kube.resource(rule["apiVersion"], rule["resource"])
            method = (rule.get("updateStrategy") or {}).get("method", "OnDelete")
            informer = self._informer(res)
            informer.add_handlers(self._on_child, self._on_child_update, self._on_child_delete)
            self.children[res.group_key] = (res, method, informer)
        self.related_watched: set[tuple[str, str]] = set()
        self.customized: dict[str, tuple[int, list[Obj]]] = {}
        self.queue = WorkQueue()
        self.workers = workers
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, timeout: float = 60.0) -> None:
        for informer in self.informers.values():
            informer.start()
        for informer in list(self.informers.values()):
            if not informer.synced.wait(timeout):
                raise TimeoutError(f"informer for {informer.res.plural} never synced")
        targets = [self._worker] * self.workers
        if self.resync_period:
            targets.append(self._resync_loop)
        for target in targets:
            thread = threading.Thread(target=target, name=f"driver-{self.name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        log.info("driver started", extra={"controller": self.name, "workers": self.workers})

    def stop(self) -> None:
        self._stop.set()
        self.queue.shutdown()
        for informer in self.informers.values():
            informer.stop()
        for thread in self._threads:
            thread.join(15)

    def __enter__(self) -> CompositeDriver:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _informer(self, res: Resource) -> Informer:
        key = (res.api_version, res.plural)
        if key not in self.informers:
            self.informers[key] = Informer(self.kube, res)
        return self.informers[key]

    # -- event handlers ----------------------------------------------------------------------

    def _enqueue(self, parent: Obj) -> None:
        self.queue.add(key_of(parent))

    def _on_parent_update(self, old: Obj, new: Obj) -> None:
        if self.ignore_status:
            o, n = old["metadata"], new["metadata"]
            if (
                o.get("generation") == n.get("generation")
                and o.get("labels") == n.get("labels")
                and o.get("annotations") == n.get("annotations")
                and n.get("deletionTimestamp") is None
            ):
                return
        self._enqueue(new)

    def _resolve(self, child: Obj) -> Obj | None:
        ref = _controller_ref(child)
        if ref is None or ref.get("kind") != self.parent_res.kind:
            return None
        if ref.get("apiVersion", "").split("/")[0] != self.parent_res.api_version.split("/")[0]:
            return None
        ns = child["metadata"].get("namespace", "") if self.parent_res.namespaced else ""
        parent = self.parents.get(f"{ns}/{ref['name']}" if ns else ref["name"])
        return parent if parent and parent["metadata"]["uid"] == ref.get("uid") else None

    def _on_child(self, child: Obj) -> None:
        if deleting(child):
            self._on_child_delete(child)
            return
        if _controller_ref(child) is not None:
            if (parent := self._resolve(child)) is not None:
                self._enqueue(parent)
            return
        uid = (child["metadata"].get("labels") or {}).get(UID_LABEL)
        for parent in self.parents.list():  # an orphan: whoever's selector matches may adopt
            if parent["metadata"]["uid"] == uid:
                self._enqueue(parent)

    def _on_child_update(self, old: Obj, new: Obj) -> None:
        if old["metadata"].get("resourceVersion") != new["metadata"].get("resourceVersion"):
            self._on_child(new)

    def _on_child_delete(self, child: Obj) -> None:
        if (parent := self._resolve(child)) is not None:
            self._enqueue(parent)

    def _on_related(self, res: Resource, *objs: Obj) -> None:
        for parent in self.parents.list():
            with self._lock:
                cached = self.customized.get(parent["metadata"]["uid"])
            if cached is None or cached[0] != parent["metadata"].get("generation"):
                continue
            if any(_rule_matches(rule, res, obj) for rule in cached[1] for obj in objs):
                self._enqueue(parent)

    def _watch_related(self, res: Resource) -> Informer:
        informer = self._informer(res)
        key = (res.api_version, res.plural)
        with self._lock:
            first = key not in self.related_watched
            self.related_watched.add(key)
        if first:

            def on_add(obj: Obj) -> None:
                self._on_related(res, obj)

            def on_update(old: Obj, new: Obj) -> None:
                if old["metadata"].get("resourceVersion") != new["metadata"].get("resourceVersion"):
                    self._on_related(res, old, new)

            informer.add_handlers(on_add, on_update, on_add)
            informer.start()
        if not informer.synced.wait(60):
            raise SyncError(f"informer for related {res.plural} never synced")
        return informer

    # -- workers -----------------------------------------------------------------------------

    def _worker(self) -> None:
        while (key := self.queue.get()) is not None:
            started = time.monotonic()
            try:
                self._sync(key)
            except TooManyRequestsError as exc:
                log.info("hook back-pressure", extra={"parent": key, "after": exc.after})
                self.queue.forget(key)
                self.queue.add_after(key, exc.after)
            except Exception as exc:
                delay = self.queue.add_rate_limited(key)
                log.warning(
                    "sync failed", extra={"parent": key, "error": str(exc), "retry_in": delay}
                )
            else:
                self.queue.forget(key)
                log.debug("synced", extra={"parent": key, "seconds": time.monotonic() - started})
            finally:
                self.queue.done(key)

    def _resync_loop(self) -> None:
        period = max(float(self.resync_period or 0), 1.0)
        while not self._stop.wait(period):
            for parent in self.parents.list():  # an informer resync: Update(obj, obj)
                self._on_parent_update(parent, parent)

    # -- one sync ----------------------------------------------------------------------------

    def _sync(self, key: str) -> None:
        parent = self.parents.get(key)
        if parent is None:
            return
        parent = self._sync_finalizer(parent)
        observed = self._claim_children(parent)
        related = self._related(parent)
        finalizing = deleting(parent) and "finalize" in self.hooks
        request = {
            "controller": self.cc,
            "parent": parent,
            "children": observed,
            "related": related,
            "finalizing": finalizing,
        }
        response = self._call("finalize" if finalizing else "sync", request, SYNC_KEYS)
        desired = self._desired(parent, response.get("children") or [])
        resync = response.get("resyncAfterSeconds") or 0
        if resync > 0:
            self.queue.add_after(key, float(resync))
        if response.get("finalized"):
            parent = self._update_finalizers(parent, add=False)
        manage_error = None
        if not deleting(parent) or self._should_finalize(parent):
            try:
                self._manage_children(parent, observed, desired)
            except SyncError as exc:
                manage_error = exc
        self._update_status(parent, response.get("status"))
        if manage_error is not None:
            raise manage_error

    def _should_finalize(self, parent: Obj) -> bool:
        finalizers = parent["metadata"].get("finalizers") or []
        if any(f in GC_FINALIZERS for f in finalizers):
            return False  # the garbage collector deletes or orphans the children
        return self.finalizer in finalizers and "finalize" in self.hooks

    def _sync_finalizer(self, parent: Obj) -> Obj:
        want = "finalize" in self.hooks
        has = self.finalizer in (parent["metadata"].get("finalizers") or [])
        if has == want or (want and deleting(parent)):
            return parent
        return self._update_finalizers(parent, add=want)

    def _update_finalizers(self, parent: Obj, *, add: bool) -> Obj:
        meta = parent["metadata"]
        path = self.parent_res.path(meta.get("namespace", ""), meta["name"])
        for _ in range(5):
            fresh = self.kube.request("GET", path)
            if fresh["metadata"]["uid"] != meta["uid"]:
                raise SyncError(f"parent {meta['name']} was replaced")
            finalizers = [
                f for f in fresh["metadata"].get("finalizers") or [] if f != self.finalizer
            ]
            if add:
                finalizers.append(self.finalizer)
            if finalizers == (fresh["metadata"].get("finalizers") or []):
                return fresh
            fresh["metadata"]["finalizers"] = finalizers
            try:
                return self.kube.request("PUT", path, body=fresh)
            except ApiError as exc:
                if exc.status != 409:
                    raise
        raise SyncError(f"can't update finalizers of {meta['name']}: conflicts")

    def _claim_children(self, parent: Obj) -> dict[str, dict[str, Obj]]:
        uid = parent["metadata"]["uid"]
        claimed: dict[str, dict[str, Obj]] = {}
        for group, (res, _, informer) in self.children.items():
            claimed[group] = {}
            for child in informer.list():
                meta = child["metadata"]
                matches = (meta.get("labels") or {}).get(UID_LABEL) == uid
                ref = _controller_ref(child)
                if ref is not None:
                    if ref.get("uid") != uid:
                        continue
                    if matches:
                        claimed[group][key_of(child)] = child
                    elif not deleting(parent):
                        self._patch_refs(res, child, parent, adopt=False)
                    continue
                if not matches or deleting(parent) or deleting(child):
                    continue
                fresh = self.kube.request(
                    "GET", self.parent_res.path(name=parent["metadata"]["name"])
                )
                if fresh["metadata"]["uid"] != uid or deleting(fresh):
                    continue  # canAdopt: never adopt for a parent that is going away
                adopted = self._patch_refs(res, child, parent, adopt=True)
                if adopted is not None:
                    claimed[group][key_of(adopted)] = adopted
        return claimed

    def _patch_refs(self, res: Resource, child: Obj, parent: Obj, *, adopt: bool) -> Obj | None:
        meta = child["metadata"]
        refs = [
            r
            for r in meta.get("ownerReferences") or []
            if r.get("uid") != parent["metadata"]["uid"]
        ]
        if adopt:
            refs.append(_controller_ref_for(parent))
        patch = {
            "metadata": {
                "ownerReferences": refs,
                "uid": meta["uid"],
                "resourceVersion": meta["resourceVersion"],
            }
        }
        log.info("adopting" if adopt else "releasing", extra={"child": key_of(child)})
        try:
            return self.kube.request(
                "PATCH", res.path(meta.get("namespace", ""), meta["name"]), body=patch,
                content_type="application/merge-patch+json",
            )  # fmt: skip
        except ApiError as exc:
            if exc.status in (404, 409):
                return None
            raise

    def _customize(self, parent: Obj) -> list[Obj]:
        meta = parent["metadata"]
        with self._lock:
            cached = self.customized.get(meta["uid"])
        if cached is not None and cached[0] == meta.get("generation"):
            return cached[1]
        if "customize" not in self.hooks:
            rules: list[Obj] = []
        else:
            body = {"controller": self.cc, "parent": parent}
            rules = (
                self._call("customize", body, {"relatedResources"}).get("relatedResources") or []
            )
        for rule in rules:
            if not isinstance(rule, dict) or set(rule) - RULE_KEYS:
                raise SyncError(f"customize: bad related rule {rule!r}")
            if rule.get("labelSelector") is not None and (
                rule.get("namespace") or rule.get("names")
            ):
                raise SyncError(
                    f"related rule cannot have both labelSelector and namespace/names: {rule}"
                )
            check_selector(rule.get("labelSelector") or {})
        with self._lock:
            self.customized[meta["uid"]] = (meta.get("generation", 0), rules)
        return rules

    def _related(self, parent: Obj) -> dict[str, dict[str, Obj]]:
        related: dict[str, dict[str, Obj]] = {}
        for rule in self._customize(parent):
            res = self.kube.resource(rule["apiVersion"], rule["resource"])
            informer = self._watch_related(res)
            group = related.setdefault(f"{res.kind}.{rule['apiVersion']}", {})
            for obj in informer.list():
                if _rule_matches(rule, res, obj):
                    group[key_of(obj)] = obj
        return related

    def _call(self, hook: str, body: Obj, allowed: set[str]) -> Obj:
        webhook = self.hooks[hook]["webhook"]
        timeout = _duration(webhook.get("timeout", "10s"))
        request = urllib.request.Request(
            webhook["url"], data=json.dumps(body).encode(), method="POST",
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        try:
            with self._opener.open(request, timeout=timeout) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            if exc.code == 429:
                after = exc.headers.get("Retry-After", "")
                raise TooManyRequestsError(float(after) if after.isdigit() else 1.0) from None
            raise SyncError(f"{hook} hook: HTTP {exc.code}: {exc.read()[:300]!r}") from None
        except OSError as exc:
            raise SyncError(f"{hook} hook: {exc}") from None
        if status != 200:
            raise SyncError(f"{hook} hook: HTTP {status}")
        try:
            answer = json.loads(raw)
        except ValueError as exc:
            raise SyncError(f"{hook} hook: response is not JSON: {exc}") from None
        if not isinstance(answer, dict) or set(answer) - allowed:
            unknown = set(answer) - allowed if isinstance(answer, dict) else answer
            raise SyncError(f"{hook} hook: strict v2 decoding: unknown field(s) {unknown}")
        _check_types(hook, answer)
        return answer

    def _desired(self, parent: Obj, children: list[Obj]) -> dict[str, dict[str, Obj]]:
        uid = parent["metadata"]["uid"]
        desired: dict[str, dict[str, Obj]] = {}
        for child in children:
            meta = child.get("metadata") or {}
            group = f"{child.get('kind')}.{child.get('apiVersion')}"
            if group not in self.children or not meta.get("name"):
                raise SyncError(f"desired child is not a named child resource: {group} {meta}")
            if self.children[group][0].namespaced and not meta.get("namespace"):
                raise SyncError(f"desired child {group} {meta['name']} has no namespace")
            labels = meta.get("labels") or {}
            labels.setdefault(UID_LABEL, uid)
            meta["labels"] = labels
            if labels[UID_LABEL] != uid:
                raise SyncError(
                    f"labels on desired child {key_of(child)} don't match parent selector"
                )
            desired.setdefault(group, {})[key_of(child)] = child
        return desired

    def _manage_children(
        self, parent: Obj, observed: dict[str, dict[str, Obj]], desired: dict[str, dict[str, Obj]]
    ) -> None:
        errors: list[str] = []
        for group, objs in observed.items():
            res = self.children[group][0]
            for key, obj in objs.items():
                if deleting(obj) or key in desired.get(group, {}):
                    continue
                meta = obj["metadata"]
                body = {"preconditions": {"uid": meta["uid"]}, "propagationPolicy": "Background"}
                log.info("deleting child", extra={"parent": key_of(parent), "child": key})
                try:
                    self.kube.request(
                        "DELETE", res.path(meta["namespace"], meta["name"]), body=body
                    )
                except ApiError as exc:
                    if exc.status != 404:
                        errors.append(str(exc))
        for group, objs in desired.items():
            res, method, _ = self.children[group]
            for key, obj in objs.items():
                old = observed.get(group, {}).get(key)
                path = res.path(obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
                try:
                    if old is None:
                        set_last_applied(obj, json.loads(go_json(obj)))
                        obj["metadata"]["ownerReferences"] = [
                            *(obj["metadata"].get("ownerReferences") or []),
                            _controller_ref_for(parent),
                        ]
                        log.info("creating child", extra={"parent": key_of(parent), "child": key})
                        self.kube.request(
                            "POST", res.path(obj["metadata"].get("namespace", "")), body=obj
                        )
                        continue
                    new = apply_update(old, obj)
                    if new == old or deleting(old) or method not in ("InPlace", "RollingInPlace"):
                        continue  # unchanged, going away, or OnDelete (Recreate not supported)
                    log.info("updating child", extra={"parent": key_of(parent), "child": key})
                    self.kube.request("PUT", path, body=new)
                except ApiError as exc:
                    # AlreadyExists: someone else's object, skipped silently. NotFound/Conflict:
                    # it changed under us; the resulting event brings us back.
                    if exc.status not in (404, 409):
                        errors.append(str(exc))
        if errors:
            raise SyncError(f"can't reconcile children of {key_of(parent)}: " + "; ".join(errors))

    def _update_status(self, parent: Obj, status: Obj | None) -> None:
        status = dict(status or {})
        meta = parent["metadata"]
        status["observedGeneration"] = meta.get("generation")
        path = self.parent_res.path(meta.get("namespace", ""), meta["name"])
        for _ in range(5):
            try:
                fresh = self.kube.request("GET", path)
                if fresh["metadata"]["uid"] != meta["uid"] or fresh.get("status") == status:
                    return
                fresh["status"] = status
                self.kube.request("PUT", path + "/status", body=fresh)
                return
            except ApiError as exc:
                if exc.status == 404:
                    return
                if exc.status != 409:
                    raise
        log.info("status update kept conflicting", extra={"parent": key_of(parent)})


def _controller_ref(obj: Obj) -> Obj | None:
    refs = obj["metadata"].get("ownerReferences") or []
    return next((r for r in refs if r.get("controller")), None)


def _controller_ref_for(parent: Obj) -> Obj:
    meta = parent["metadata"]
    return {
        "apiVersion": parent["apiVersion"],
        "kind": parent["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _rule_matches(rule: Obj, res: Resource, obj: Obj) -> bool:
    if rule["apiVersion"] != res.api_version or rule["resource"] != res.plural:
        return False
    meta = obj["metadata"]
    if rule.get("labelSelector") is not None or not (rule.get("namespace") or rule.get("names")):
        return selector_matches(rule.get("labelSelector"), meta.get("labels") or {})
    if rule.get("namespace") and meta.get("namespace") != rule["namespace"]:
        return False
    return not rule.get("names") or meta["name"] in rule["names"]


def _check_types(hook: str, answer: Obj) -> None:
    types: dict[str, tuple[type, ...]] = {
        "status": (dict, type(None)),
        "children": (list, type(None)),
        "resyncAfterSeconds": (int, float),
        "finalized": (bool,),
        "relatedResources": (list, type(None)),
    }
    for key, value in answer.items():
        if not isinstance(value, types[key]) or (
            key == "resyncAfterSeconds" and isinstance(value, bool)
        ):
            raise SyncError(f"{hook} hook: field {key!r} has the wrong type: {value!r}")
