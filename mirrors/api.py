"""The SecretMirror API (`mirrors.kts.studio/v1alpha2`) as typed, immutable values.

The CRD schema defaults and validates most fields at the API server; this module repeats the
defaults so that the hooks and the sidecar behave the same on objects written before a default
existed, and checks what a schema cannot (RE2 syntax, one Vault auth method).
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

GROUP = "mirrors.kts.studio"
VERSION = "v1alpha2"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "SecretMirror"
PLURAL = "secretmirrors"

DEFAULT_SOURCE_NAMESPACE = "default"
DEFAULT_POLL_PERIOD_SECONDS = 180
MIN_POLL_PERIOD_SECONDS = 5


class _Value(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Base for spec values: immutable, keyword-only, unknown fields ignored (forward compat)."""


class SecretRef(_Value, frozen=True):
    name: str
    namespace: str = ""


class TokenAuth(_Value, frozen=True):
    secretRef: SecretRef
    tokenKey: str = "token"


class AppRoleAuth(_Value, frozen=True):
    secretRef: SecretRef
    appRolePath: str = "approle"
    roleIDKey: str = "role-id"
    secretIDKey: str = "secret-id"


class KubernetesAuth(_Value, frozen=True):
    role: str
    mountPath: str = "kubernetes"


class VaultAuth(_Value, frozen=True):
    token: TokenAuth | None = None
    approle: AppRoleAuth | None = None
    kubernetes: KubernetesAuth | None = None


class VaultTLS(_Value, frozen=True):
    caSecretRef: SecretRef | None = None
    caKey: str = "ca.crt"
    insecureSkipVerify: bool = False
    serverName: str = ""


class VaultSpec(_Value, frozen=True):
    addr: str
    path: str
    namespace: str = ""
    auth: VaultAuth = VaultAuth()
    tls: VaultTLS = VaultTLS()


class LabelSelectorRequirement(_Value, frozen=True):
    key: str
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: tuple[str, ...] = ()


class LabelSelector(_Value, frozen=True):
    matchLabels: dict[str, str] = {}
    matchExpressions: tuple[LabelSelectorRequirement, ...] = ()


class Source(_Value, frozen=True):
    type: Literal["secret", "vault"] = "secret"
    name: str = ""
    namespace: str = DEFAULT_SOURCE_NAMESPACE
    vault: VaultSpec | None = None


class Destination(_Value, frozen=True):
    type: Literal["namespaces", "vault"] = "namespaces"
    namespaces: tuple[str, ...] = ()
    excludeNamespaces: tuple[str, ...] = ()
    namespaceSelector: LabelSelector | None = None
    vault: VaultSpec | None = None


class MirrorSpec(_Value, frozen=True):
    source: Source = Source()
    destination: Destination = Destination()
    deletePolicy: Literal["delete", "retain"] = "delete"
    pollPeriodSeconds: Annotated[int, msgspec.Meta(ge=MIN_POLL_PERIOD_SECONDS)] = (
        DEFAULT_POLL_PERIOD_SECONDS
    )


class SpecError(ValueError):
    """The spec cannot be acted on; the message names the field and says why."""


_decoder = msgspec.json.Decoder(MirrorSpec)


def decode_spec(raw: bytes) -> MirrorSpec:
    """Decode `spec` from JSON bytes, raising SpecError with a field path on bad input."""
    try:
        return _decoder.decode(raw)
    except msgspec.ValidationError as exc:
        # msgspec paths read `$.source.type`; users know the field as `spec.source.type`.
        message = str(exc).replace("`$", "`spec")
        # msgspec names no path for the top level (`spec: null`); the user still needs one.
        raise SpecError(message if " - at `" in message else f"{message} - at `spec`") from None
    except msgspec.DecodeError as exc:
        raise SpecError(f"spec is not valid JSON: {exc}") from None


def source_name(spec: MirrorSpec, mirror_name: str) -> str:
    """The source Secret's name (type secret) and the name of every copy."""
    return spec.source.name or mirror_name


def ref_namespace(ref: SecretRef, spec: MirrorSpec) -> str:
    """An omitted `secretRef.namespace` means the source namespace, as in the original."""
    return ref.namespace or spec.source.namespace


def involves_vault(spec: MirrorSpec) -> bool:
    return spec.source.type == "vault" or spec.destination.type == "vault"


def check_vault(vault: VaultSpec | None, field: str) -> None:
    if vault is None:
        raise SpecError(f"{field} is required when {field.rsplit('.', 1)[0]}.type is vault")
    if not vault.addr:
        raise SpecError(f"{field}.addr must not be empty")
    if not vault.path.strip("/"):
        raise SpecError(f"{field}.path must not be empty")
    methods = [m for m in ("token", "approle", "kubernetes") if getattr(vault.auth, m) is not None]
    if len(methods) != 1:
        raise SpecError(
            f"{field}.auth must set exactly one of token, approle, kubernetes "
            f"(found {', '.join(methods) or 'none'})"
        )


def check_spec(spec: MirrorSpec) -> None:
    """Cross-field rules (mirrored by CEL rules in the CRD). Patterns are checked by patterns."""
    if spec.source.type == "vault":
        check_vault(spec.source.vault, "spec.source.vault")
    elif not spec.source.namespace:
        raise SpecError("spec.source.namespace must not be empty")
    destination = spec.destination
    if destination.type == "vault":
        check_vault(destination.vault, "spec.destination.vault")
    elif not destination.namespaces and destination.namespaceSelector is None:
        raise SpecError(
            "spec.destination.namespaces or spec.destination.namespaceSelector is required "
            "when spec.destination.type is namespaces"
        )
