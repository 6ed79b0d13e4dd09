from __future__ import annotations

import pytest

from mirrors.api import LabelSelector, LabelSelectorRequirement, SpecError
from mirrors.selectors import check_selector, matches, to_api

LABELS = {"team": "a", "env": "prod"}


def requirement(key: str, operator: str, *values: str) -> LabelSelectorRequirement:
    return LabelSelectorRequirement(key=key, operator=operator, values=values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        (LabelSelector(), True),
        (LabelSelector(matchLabels={"team": "a"}), True),
        (LabelSelector(matchLabels={"team": "b"}), False),
        (LabelSelector(matchLabels={"team": "a", "env": "dev"}), False),
        (LabelSelector(matchExpressions=(requirement("team", "In", "a", "b"),)), True),
        (LabelSelector(matchExpressions=(requirement("team", "NotIn", "a"),)), False),
        (LabelSelector(matchExpressions=(requirement("missing", "NotIn", "a"),)), True),
        (LabelSelector(matchExpressions=(requirement("env", "Exists"),)), True),
        (LabelSelector(matchExpressions=(requirement("env", "DoesNotExist"),)), False),
        (LabelSelector(matchExpressions=(requirement("missing", "In", "a"),)), False),
    ],
)
def test_selector_semantics_follow_kubernetes(selector: LabelSelector, expected: bool) -> None:
    assert matches(selector, LABELS) is expected


def test_in_without_values_is_rejected() -> None:
    selector = LabelSelector(matchExpressions=(requirement("team", "In"),))

    with pytest.raises(SpecError, match=r"^sel.matchExpressions\[0\]: In needs values$"):
        check_selector(selector, "sel")


def test_exists_with_values_is_rejected() -> None:
    selector = LabelSelector(matchExpressions=(requirement("team", "Exists", "a"),))

    with pytest.raises(SpecError, match="Exists takes no values"):
        check_selector(selector, "sel")


def test_to_api_renders_a_kubernetes_label_selector() -> None:
    selector = LabelSelector(
        matchLabels={"z": "1", "a": "2"},
        matchExpressions=(requirement("env", "Exists"), requirement("t", "In", "x")),
    )

    assert to_api(selector) == {
        "matchLabels": {"a": "2", "z": "1"},
        "matchExpressions": [
            {"key": "env", "operator": "Exists"},
            {"key": "t", "operator": "In", "values": ["x"]},
        ],
    }
    assert to_api(LabelSelector()) == {}


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        (LabelSelector(matchLabels={"bad key": "a"}), r"'bad key' is not a valid label key"),
        (LabelSelector(matchLabels={"-team": "a"}), "not a valid label key"),
        (LabelSelector(matchLabels={"Example.com/team": "a"}), r"\(bad prefix\)"),
        (LabelSelector(matchLabels={"/team": "a"}), r"\(bad prefix\)"),
        (LabelSelector(matchLabels={"team": "a b"}), r"^sel.matchLabels\[team\]: 'a b' is not"),
        (LabelSelector(matchLabels={"team": "x" * 64}), "not a valid label value"),
        (
            LabelSelector(matchExpressions=(requirement("team", "In", "ok", "-no"),)),
            r"^sel.matchExpressions\[0\].values: '-no' is not a valid label value",
        ),
        (
            LabelSelector(matchExpressions=(requirement("a/b/c", "Exists"),)),
            r"^sel.matchExpressions\[0\].key: 'a/b/c' is not a valid label key",
        ),
    ],
)
def test_label_syntax_the_api_server_rejects_is_rejected(
    selector: LabelSelector, message: str
) -> None:
    with pytest.raises(SpecError, match=message):
        check_selector(selector, "sel")


def test_valid_label_syntax_passes() -> None:
    check_selector(
        LabelSelector(
            matchLabels={"mirrors.kts.studio/registry": "enabled", "empty": "", "a_b.c-d": "X.1"},
            matchExpressions=(requirement("kubernetes.io/metadata.name", "In", "a-1"),),
        ),
        "sel",
    )
