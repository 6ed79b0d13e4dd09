from __future__ import annotations

import pytest

from mirrors.api import VaultSpec
from mirrors.state import MirrorState, SourceState, content_hash, decode, encode, same_place


def test_content_hash_is_order_independent_and_unambiguous() -> None:
    assert content_hash({"a": b"1", "b": b"2"}) == content_hash({"b": b"2", "a": b"1"})
    # Length-prefixed: moving bytes between key and value changes the digest.
    assert content_hash({"ab": b"c"}) != content_hash({"a": b"bc"})
    assert content_hash({}).startswith("sha256:")


def test_state_round_trips_and_omits_defaults() -> None:
    state = MirrorState(
        generation=3,
        source=SourceState(path="secret/data/x", readAt="t", contentHash="sha256:00"),
    )

    text = encode(state)

    assert decode(text) == state
    assert "leaseId" not in text


@pytest.mark.parametrize(
    ("path", "addr", "expected"),
    [
        ("/secret/data/x", "https://v:8200", True),
        ("secret/data/x/", "https://v:8200/", True),
        ("secret/data/x", "", True),  # recorded before the addr was: trusted
        ("secret/data/y", "https://v:8200", False),
        ("secret/data/x", "https://w:8200", False),
    ],
)
def test_same_place_compares_path_and_addr(path: str, addr: str, expected: bool) -> None:
    vault = VaultSpec(addr="https://v:8200", path="secret/data/x")

    recorded = SourceState(path=path, addr=addr, readAt="t", contentHash="sha256:00")

    assert same_place(recorded, vault) is expected
