from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mirrors.api import SpecError
from mirrors.patterns import PatternSet, compile_patterns

NAMES = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?", fullmatch=True)
LITERALS = st.lists(NAMES, min_size=1, max_size=4)


def test_patterns_match_the_whole_name() -> None:
    patterns = PatternSet(["project-a-.+", "project-b-.+"], "spec.destination.namespaces")

    assert patterns.matches("project-a-main")
    assert patterns.matches("project-b-1")
    assert not patterns.matches("xproject-a-1")
    assert not patterns.matches("project-a-")
    assert not patterns.matches("project-c-main")


def test_alternation_inside_a_pattern_stays_anchored() -> None:
    patterns = PatternSet(["a|b"], "f")

    assert patterns.matches("a")
    assert not patterns.matches("ab")
    assert not patterns.matches("xa")


def test_no_patterns_match_nothing_and_are_falsy() -> None:
    patterns = PatternSet([], "f")

    assert not patterns
    assert not patterns.matches("anything")


@pytest.mark.parametrize("pattern", ["(?=x)", "(a", r"\1", "a{1001}"])
def test_patterns_re2_rejects_name_the_field_and_index(pattern: str) -> None:
    with pytest.raises(SpecError, match=r"^f\[1\] .* is not a valid RE2 pattern: "):
        PatternSet(["ok", pattern], "f")


def test_catastrophic_backtracking_pattern_is_linear_time() -> None:
    # With Python's re this takes minutes; RE2 answers at once.
    patterns = PatternSet(["(a+)+b"], "f")

    assert not patterns.matches("a" * 5000)


def test_compiled_sets_are_cached() -> None:
    assert compile_patterns(("a.+",), "f") is compile_patterns(("a.+",), "f")


@given(names=LITERALS, candidate=NAMES)
def test_escaped_literals_match_exactly_themselves(names: list[str], candidate: str) -> None:
    patterns = PatternSet([re.escape(n) for n in names], "f")

    assert patterns.matches(candidate) == (candidate in names)


@given(prefix=NAMES, suffix=NAMES, junk=NAMES)
def test_a_prefix_pattern_never_matches_with_leading_junk(
    prefix: str, suffix: str, junk: str
) -> None:
    patterns = PatternSet([re.escape(prefix) + "-.+"], "f")

    assert patterns.matches(f"{prefix}-{suffix}")
    assert not patterns.matches(f"{junk}x{prefix}-{suffix}") or f"{junk}x".startswith(prefix)
