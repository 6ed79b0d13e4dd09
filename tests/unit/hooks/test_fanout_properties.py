"""Properties of the fan-out over arbitrary clusters (hypothesis)."""

from __future__ import annotations

from typing import Any

import msgspec
import re2
from hypothesis import given, settings
from hypothesis import strategies as st

from hooks import protocol, reconcile
from tests.support.objects import as_stored, load_example, namespace, owned_copy, secret
from tests.support.objects import sync_request as request

NOW = "2026-12-03T12:00:00Z"
NAME = st.from_regex(r"(project-[ab]-|x?project-a|default|kube-)[a-z0-9]{0,6}", fullmatch=True)
PATTERNS = st.lists(
    st.sampled_from(["project-a-.+", "project-b-.+", "default", "kube-.*"]), min_size=1, max_size=3
)
EXCLUDES = st.lists(st.sampled_from(["project-a-1.*", "kube-system", ".*9"]), max_size=2)


def run(body: dict[str, Any]) -> dict[str, Any]:
    encoded = msgspec.json.encode(body)
    result: dict[str, Any] = msgspec.json.decode(
        protocol.encode(
            reconcile.sync(protocol.decode_sync(encoded), now=NOW, controller_namespace="mirrors")
        )
    )
    return result


def cluster(draw_names: list[str], foreign: set[str], terminating: set[str]) -> dict[str, Any]:
    mirror = as_stored(load_example("mysecret-mirror.yaml"))
    return {
        "mirror": mirror,
        "namespaces": [namespace(n, terminating=n in terminating) for n in draw_names],
        "foreign": [secret(n, "mysecret", {"other": "value"}) for n in sorted(foreign)],
    }


@st.composite
def clusters(draw: st.DrawFn) -> dict[str, Any]:
    names = sorted(set(draw(st.lists(NAME, max_size=25))))
    others = [n for n in names if n != "default"]  # default/mysecret is the source
    foreign = set(draw(st.lists(st.sampled_from(others), max_size=3))) if others else set()
    terminating = set(draw(st.lists(st.sampled_from(names), max_size=2))) if names else set()
    world = cluster(names, foreign, terminating)
    world["mirror"]["spec"]["destination"]["namespaces"] = draw(PATTERNS)
    world["mirror"]["spec"]["destination"]["excludeNamespaces"] = draw(EXCLUDES)
    return world


SOURCE = secret("default", "mysecret", {"username": "hellothere", "password": "generalkenobi"})


def full(pattern_list: list[str], name: str) -> bool:
    return any(re2.fullmatch(p, name) for p in pattern_list)


@settings(max_examples=150, deadline=None)
@given(world=clusters())
def test_copies_go_exactly_where_the_rules_say(world: dict[str, Any]) -> None:
    mirror = world["mirror"]
    destination = mirror["spec"]["destination"]
    body = request(mirror, namespaces=world["namespaces"], secrets=[SOURCE, *world["foreign"]])

    response = run(body)

    got = [c["metadata"]["namespace"] for c in response["children"]]
    foreign = {s["metadata"]["namespace"] for s in world["foreign"]}
    expected = [
        n["metadata"]["name"]
        for n in world["namespaces"]
        if full(destination["namespaces"], n["metadata"]["name"])
        and not full(destination["excludeNamespaces"], n["metadata"]["name"])
        and n["metadata"]["name"] != "default"
        and n["metadata"]["name"] not in foreign
        and "deletionTimestamp" not in n["metadata"]
    ]
    assert got == expected  # sorted, one per namespace
    assert all(c["data"] == SOURCE["data"] for c in response["children"])
    assert sorted(response["status"].get("conflictNamespaces", [])) == sorted(
        n
        for n in foreign
        if n in {x["metadata"]["name"] for x in world["namespaces"]}
        and full(destination["namespaces"], n)
        and not full(destination["excludeNamespaces"], n)
        and n != "default"
        and n
        not in {
            x["metadata"]["name"]
            for x in world["namespaces"]
            if "deletionTimestamp" in x["metadata"]
        }
    )


@settings(max_examples=100, deadline=None)
@given(world=clusters())
def test_sync_is_deterministic_and_converges(world: dict[str, Any]) -> None:
    mirror = world["mirror"]
    body = request(mirror, namespaces=world["namespaces"], secrets=[SOURCE, *world["foreign"]])
    first = run(body)
    assert run(body) == first

    # Feed the answer back as Metacontroller would after applying it: same children, all synced.
    copies = [owned_copy(mirror, c["metadata"]["namespace"], SOURCE) for c in first["children"]]
    mirror["status"] = first["status"]
    second = run(
        request(
            mirror,
            children=copies,
            namespaces=world["namespaces"],
            secrets=[SOURCE, *world["foreign"], *copies],
        )
    )
    assert second["children"] == first["children"]
    assert second["status"]["namespaces"]["pending"] == 0
    assert second["status"]["namespaces"]["synced"] == len(copies)

    mirror["status"] = second["status"]
    third = run(
        request(
            mirror,
            children=copies,
            namespaces=world["namespaces"],
            secrets=[SOURCE, *world["foreign"], *copies],
        )
    )
    assert third["status"] == second["status"]  # a resync writes nothing
