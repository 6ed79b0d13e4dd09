from __future__ import annotations

from mirrors.names import label_value, state_secret_name


def test_state_secret_name_is_prefixed() -> None:
    assert state_secret_name("mysecret-mirror") == "mirror-state-mysecret-mirror"


def test_state_secret_name_of_a_long_mirror_stays_valid_and_distinct() -> None:
    a = state_secret_name("a" * 250 + "x")
    b = state_secret_name("a" * 250 + "y")

    assert len(a) == 253
    assert a != b


def test_label_value_only_when_it_fits() -> None:
    assert label_value("m" * 63) == "m" * 63
    assert label_value("m" * 64) is None
