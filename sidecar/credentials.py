"""From a VaultSpec and the Secrets it names to the Vault core's Connection and Credentials.

Pure: the caller reads the Secrets (`secret_refs` says which) and the service-account token.
A missing Secret or key is a `InputError("NoSecret", ...)` that names the field to fix; no value
ever appears in a message.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from mirrors import api
from sidecar.plan import InputError, SecretData, SecretKey
from sidecar.vault import Connection, Credentials


def vault_sides(spec: api.MirrorSpec) -> Iterator[tuple[str, api.VaultSpec]]:
    """Each Vault side of a mirror with the spec path of its field, for messages."""
    if spec.source.type == "vault" and spec.source.vault is not None:
        yield "spec.source.vault", spec.source.vault
    if spec.destination.type == "vault" and spec.destination.vault is not None:
        yield "spec.destination.vault", spec.destination.vault


def vault_refs(vault: api.VaultSpec, spec: api.MirrorSpec) -> list[SecretKey]:
    """The auth and CA Secrets one Vault side needs, sorted, each once."""
    auth = vault.auth
    refs = (
        auth.token.secretRef if auth.token else None,
        auth.approle.secretRef if auth.approle else None,
        vault.tls.caSecretRef,
    )
    return sorted({(api.ref_namespace(r, spec), r.name) for r in refs if r is not None})


def secret_refs(spec: api.MirrorSpec) -> list[SecretKey]:
    """The auth and CA Secrets a mirror needs, sorted, each once."""
    return sorted({key for _, vault in vault_sides(spec) for key in vault_refs(vault, spec)})


def _value(
    secrets: Mapping[SecretKey, SecretData | None],
    ref: api.SecretRef,
    key: str,
    spec: api.MirrorSpec,
    field: str,
) -> str:
    namespace = api.ref_namespace(ref, spec)
    data = secrets.get((namespace, ref.name))
    if data is None:
        raise InputError("NoSecret", f"secret {namespace}/{ref.name} ({field}) not found")
    if key not in data:
        raise InputError("NoSecret", f"secret {namespace}/{ref.name} has no key {key!r} ({field})")
    try:
        # Files and `kubectl create secret --from-file` often end in a newline.
        return data[key].decode().strip()
    except UnicodeDecodeError:
        raise InputError(
            "InvalidData", f"key {key!r} of secret {namespace}/{ref.name} is not UTF-8 text"
        ) from None


def connection(
    vault: api.VaultSpec,
    spec: api.MirrorSpec,
    secrets: Mapping[SecretKey, SecretData | None],
    field: str,
    *,
    timeout: float = 10.0,
) -> Connection:
    tls = vault.tls
    ca_pem = ""
    if tls.caSecretRef is not None:
        ca_pem = _value(secrets, tls.caSecretRef, tls.caKey, spec, f"{field}.tls.caSecretRef")
    return Connection(
        addr=vault.addr,
        namespace=vault.namespace,
        ca_pem=ca_pem,
        insecure_skip_verify=tls.insecureSkipVerify,
        server_name=tls.serverName,
        timeout=timeout,
    )


def credentials(
    vault: api.VaultSpec,
    spec: api.MirrorSpec,
    secrets: Mapping[SecretKey, SecretData | None],
    field: str,
    *,
    service_account_token: Callable[[], str],
) -> Credentials:
    """`service_account_token` is called only for Kubernetes auth (the file rotates)."""
    auth = vault.auth
    if auth.token is not None:
        token = _value(
            secrets, auth.token.secretRef, auth.token.tokenKey, spec, f"{field}.auth.token"
        )
        return Credentials(method="token", token=token)
    if auth.approle is not None:
        approle = auth.approle
        where = f"{field}.auth.approle"
        return Credentials(
            method="approle",
            role_id=_value(secrets, approle.secretRef, approle.roleIDKey, spec, where),
            secret_id=_value(secrets, approle.secretRef, approle.secretIDKey, spec, where),
            approle_path=approle.appRolePath.strip("/") or "approle",
        )
    if auth.kubernetes is not None:
        jwt = service_account_token().strip()
        if not jwt:
            raise InputError(
                "VaultAuthFailed", f"{field}.auth.kubernetes: the service account token is empty"
            )
        return Credentials(
            method="kubernetes",
            k8s_role=auth.kubernetes.role,
            k8s_mount=auth.kubernetes.mountPath.strip("/") or "kubernetes",
            jwt=jwt,
        )
    raise InputError("InvalidSpec", f"{field}.auth must set one of token, approle, kubernetes")
