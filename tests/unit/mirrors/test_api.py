from __future__ import annotations

import msgspec
import pytest

from mirrors import api
from tests.support.objects import load_example

EXAMPLES = [
    "mysecret-mirror.yaml",
    "myvaultsecret-mirror.yaml",
    "myvaultsecret-mirror-reverse.yaml",
    "secretmirror-from-vault-mongo-to-ns.yaml",
    "secretmirror-from-vault-to-vault.yaml",
    "project-tls-mirror.yaml",
    "exclude-namespaces.yaml",
]


def spec_of(filename: str) -> api.MirrorSpec:
    return api.decode_spec(msgspec.json.encode(load_example(filename)["spec"]))


@pytest.mark.parametrize("filename", EXAMPLES)
def test_every_example_is_a_valid_spec(filename: str) -> None:
    api.check_spec(spec_of(filename))


def test_defaults_match_the_original() -> None:
    spec = api.decode_spec(b'{"destination": {"namespaces": ["a"]}}')

    assert spec.source.type == "secret"
    assert spec.source.namespace == "default"
    assert spec.destination.type == "namespaces"
    assert spec.deletePolicy == "delete"
    assert spec.pollPeriodSeconds == 180
    assert api.source_name(spec, "mirror-name") == "mirror-name"


def test_approle_defaults_and_ref_namespace() -> None:
    spec = spec_of("myvaultsecret-mirror.yaml")
    assert spec.source.vault is not None
    approle = spec.source.vault.auth.approle
    assert approle is not None

    assert (approle.appRolePath, approle.roleIDKey, approle.secretIDKey) == (
        "approle",
        "role-id",
        "secret-id",
    )
    assert api.ref_namespace(approle.secretRef, spec) == "default"
    assert api.involves_vault(spec)


def test_unknown_fields_are_ignored_for_forward_compatibility() -> None:
    spec = api.decode_spec(b'{"destination": {"namespaces": ["a"]}, "future": 1}')

    assert spec.destination.namespaces == ("a",)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            b'{"source": {"type": "vault"}, "destination": {"namespaces": ["a"]}}',
            "spec.source.vault is required when spec.source.type is vault",
        ),
        (
            b'{"destination": {"type": "vault"}}',
            "spec.destination.vault is required when spec.destination.type is vault",
        ),
        (
            b'{"destination": {"type": "vault", "vault": {"addr": "http://v", "path": "kv/x"}}}',
            "spec.destination.vault.auth must set exactly one of token, approle, kubernetes "
            "(found none)",
        ),
        (
            b'{"destination": {"type": "vault", "vault": {"addr": "http://v", "path": "kv/x", '
            b'"auth": {"token": {"secretRef": {"name": "t"}}, "kubernetes": {"role": "r"}}}}}',
            "spec.destination.vault.auth must set exactly one of token, approle, kubernetes "
            "(found token, kubernetes)",
        ),
        (
            b'{"destination": {"type": "vault", "vault": {"addr": "http://v", "path": "/", '
            b'"auth": {"token": {"secretRef": {"name": "t"}}}}}}',
            "spec.destination.vault.path must not be empty",
        ),
    ],
)
def test_cross_field_rules(spec: bytes, message: str) -> None:
    with pytest.raises(api.SpecError) as error:
        api.check_spec(api.decode_spec(spec))

    assert str(error.value) == message


def test_poll_period_has_a_floor() -> None:
    with pytest.raises(api.SpecError, match=r"Expected `int` >= 5 - at `spec.pollPeriodSeconds`"):
        api.decode_spec(b'{"pollPeriodSeconds": 1}')


def test_invalid_json_is_a_spec_error() -> None:
    with pytest.raises(api.SpecError, match="spec is not valid JSON"):
        api.decode_spec(b"{")


@pytest.mark.parametrize("raw", [b"null", b"[]"])
def test_a_spec_that_is_not_an_object_names_the_field(raw: bytes) -> None:
    with pytest.raises(api.SpecError, match=r"^Expected `object`, got `\w+` - at `spec`$"):
        api.decode_spec(raw)
