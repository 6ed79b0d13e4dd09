from __future__ import annotations

from mirrors.state import MirrorState, SourceState, content_hash, decode, encode


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
