"""Connection and Credentials from a VaultSpec and the Secrets it names."""

from __future__ import annotations

import pytest

from mirrors import api
from sidecar import credentials
from sidecar.plan import InputError
from sidecar.vault import Connection, Credentials


def spec_of(vault: dict[str, object], source_ns: str = "apps") -> api.MirrorSpec:
    raw = {
        "source": {
            "type": "vault",
            "namespace": source_ns,
            "vault": {"addr": "https://v:8200", "path": "kv/x", **vault},
        },
        "destination": {"namespaces": ["a"]},
    }
    import msgspec

    return api.decode_spec(msgspec.json.encode(raw))


def side(spec: api.MirrorSpec) -> api.VaultSpec:
    assert spec.source.vault is not None
    return spec.source.vault


def never() -> str:
    raise AssertionError("the service account token must only be read for Kubernetes auth")


def test_token_auth_uses_token_key_and_strips_the_newline() -> None:
    spec = spec_of({"auth": {"token": {"secretRef": {"name": "t"}, "tokenKey": "tk"}}})
    secrets = {("apps", "t"): {"tk": b"hvs.abc\n"}}
    creds = credentials.credentials(
        side(spec), spec, secrets, "spec.source.vault", service_account_token=never
    )
    assert creds == Credentials(method="token", token="hvs.abc")


def test_approle_defaults_namespace_to_the_source_namespace() -> None:
    spec = spec_of({"auth": {"approle": {"secretRef": {"name": "ar"}, "appRolePath": "/custom/"}}})
    assert credentials.secret_refs(spec) == [("apps", "ar")]
    secrets = {("apps", "ar"): {"role-id": b"r", "secret-id": b"s"}}
    creds = credentials.credentials(side(spec), spec, secrets, "f", service_account_token=never)
    assert creds == Credentials(method="approle", role_id="r", secret_id="s", approle_path="custom")


def test_kubernetes_auth_reads_the_token_file_content() -> None:
    spec = spec_of({"auth": {"kubernetes": {"role": "mirrors", "mountPath": "k8s-east"}}})
    assert credentials.secret_refs(spec) == []
    creds = credentials.credentials(
        side(spec), spec, {}, "f", service_account_token=lambda: "jwt.x.y\n"
    )
    assert creds == Credentials(
        method="kubernetes", k8s_role="mirrors", k8s_mount="k8s-east", jwt="jwt.x.y"
    )
    with pytest.raises(InputError) as info:
        credentials.credentials(side(spec), spec, {}, "f", service_account_token=lambda: "")
    assert info.value.reason == "VaultAuthFailed"


def test_missing_secret_or_key_names_the_field_and_never_a_value() -> None:
    spec = spec_of({"auth": {"approle": {"secretRef": {"name": "ar", "namespace": "vault-auth"}}}})
    with pytest.raises(InputError) as info:
        credentials.credentials(
            side(spec),
            spec,
            {("vault-auth", "ar"): None},
            "spec.source.vault",
            service_account_token=never,
        )
    assert info.value.reason == "NoSecret"
    assert info.value.message == "secret vault-auth/ar (spec.source.vault.auth.approle) not found"
    partial = {("vault-auth", "ar"): {"role-id": b"topsecret-role"}}
    with pytest.raises(InputError) as info:
        credentials.credentials(
            side(spec), spec, partial, "spec.source.vault", service_account_token=never
        )
    assert "no key 'secret-id'" in info.value.message
    assert "topsecret" not in info.value.message


def test_non_utf8_material_is_refused() -> None:
    spec = spec_of({"auth": {"token": {"secretRef": {"name": "t"}}}})
    with pytest.raises(InputError) as info:
        credentials.credentials(
            side(spec), spec, {("apps", "t"): {"token": b"\xff"}}, "f", service_account_token=never
        )
    assert info.value.reason == "InvalidData"


def test_connection_with_tls_from_a_ca_secret() -> None:
    spec = spec_of(
        {
            "namespace": "team-a",
            "auth": {"token": {"secretRef": {"name": "t"}}},
            "tls": {
                "caSecretRef": {"name": "ca", "namespace": "pki"},
                "caKey": "bundle.pem",
                "serverName": "vault.internal",
            },
        }
    )
    assert credentials.secret_refs(spec) == [("apps", "t"), ("pki", "ca")]
    conn = credentials.connection(
        side(spec),
        spec,
        {("pki", "ca"): {"bundle.pem": b"-----BEGIN CERTIFICATE-----\n"}},
        "f",
        timeout=3.0,
    )
    assert conn == Connection(
        addr="https://v:8200",
        namespace="team-a",
        ca_pem="-----BEGIN CERTIFICATE-----",
        server_name="vault.internal",
        timeout=3.0,
    )


def test_both_sides_of_vault_to_vault_are_listed_once() -> None:
    import msgspec

    ref = {"secretRef": {"name": "shared"}}
    raw = {
        "source": {
            "type": "vault",
            "vault": {"addr": "http://a", "path": "kv/x", "auth": {"approle": ref}},
        },
        "destination": {
            "type": "vault",
            "vault": {"addr": "http://b", "path": "kv/y", "auth": {"token": ref}},
        },
    }
    spec = api.decode_spec(msgspec.json.encode(raw))
    assert [f for f, _ in credentials.vault_sides(spec)] == [
        "spec.source.vault",
        "spec.destination.vault",
    ]
    assert credentials.secret_refs(spec) == [("default", "shared")]
