"""KV v1 and v2 against a real OpenBao: detection, path forms, byte-exact values, writes."""

from __future__ import annotations

import pytest

from mirrors.state import DestinationState, content_hash
from sidecar.vault import (
    Clients,
    Connection,
    Credentials,
    VaultError,
    find_mount,
    read_source,
    write_destination,
)
from tests.support.openbao import OpenBao
from tests.vault.conftest import approle_identity, now, root, unique

pytestmark = pytest.mark.vault

BASE64_LOOKALIKES = {
    "user": "test",
    "password": "admin123",
    "encoded": "dGVzdA==",
    "hexish": "deadbeef",
    "empty": "",
}


def put(server: OpenBao, mount: str, version: int, name: str, data: object) -> None:
    api_path = f"{mount}/data/{name}" if version == 2 else f"{mount}/{name}"
    body = {"data": data} if version == 2 else data
    server.api("POST", api_path, body)


def read_back(server: OpenBao, mount: str, version: int, name: str) -> dict[str, object]:
    if version == 2:
        return dict(server.api("GET", f"{mount}/data/{name}")["data"]["data"])
    return dict(server.api("GET", f"{mount}/{name}")["data"])


@pytest.mark.parametrize(
    ("version", "form"),
    [(1, "{m}/app/cfg"), (1, "/{m}/app/cfg"), (2, "/{m}/data/app/cfg"), (2, "{m}/app/cfg")],
)
def test_read_kv_both_versions_and_path_forms(
    bao: OpenBao, clients: Clients, version: int, form: str
) -> None:
    mount = unique(f"kv{version}")
    bao.enable_kv(mount, version)
    put(bao, mount, version, "app/cfg", BASE64_LOOKALIKES)
    conn, creds = approle_identity(bao, [mount])
    path = form.format(m=mount)
    data, state = read_source(clients, conn, creds, path, None, now=now())
    assert data == {k: v.encode() for k, v in BASE64_LOOKALIKES.items()}
    assert state.path == path
    assert state.kvVersion == version
    assert state.secretVersion == (1 if version == 2 else None)
    assert state.leaseId == ""
    assert state.dataVersion == 1
    assert state.contentHash == content_hash(data)


def test_kv_v2_version_and_data_version_follow_changes(bao: OpenBao, clients: Clients) -> None:
    mount = unique("kv")
    bao.enable_kv(mount, 2)
    put(bao, mount, 2, "x", {"a": "1"})
    conn, creds = root(bao)
    _, first = read_source(clients, conn, creds, f"{mount}/x", None, now=now())
    _, same = read_source(clients, conn, creds, f"{mount}/x", first, now=now())
    assert (same.dataVersion, same.secretVersion) == (1, 1)
    put(bao, mount, 2, "x", {"a": "2"})
    data, changed = read_source(clients, conn, creds, f"{mount}/x", same, now=now())
    assert data == {"a": b"2"}
    assert (changed.dataVersion, changed.secretVersion) == (2, 2)
    # A new KV version with the same content is not a data change.
    put(bao, mount, 2, "x", {"a": "2"})
    _, rewritten = read_source(clients, conn, creds, f"{mount}/x", changed, now=now())
    assert (rewritten.dataVersion, rewritten.secretVersion) == (2, 3)


def test_non_string_values_are_json_text(bao: OpenBao, clients: Clients) -> None:
    mount = unique("kv")
    bao.enable_kv(mount, 2)
    put(
        bao,
        mount,
        2,
        "typed",
        {"port": 5432, "ratio": 0.5, "on": True, "off": False, "none": None,
         "list": [1, "a"], "obj": {"k": "v", "n": 1}, "text": "plain"},
    )  # fmt: skip
    data, _ = read_source(clients, *root(bao), f"{mount}/typed", None, now=now())
    assert data == {
        "port": b"5432",
        "ratio": b"0.5",
        "on": b"true",
        "off": b"false",
        "none": b"null",
        "list": b'[1, "a"]',
        "obj": b'{"k": "v", "n": 1}',
        "text": b"plain",
    }


@pytest.mark.parametrize("version", [1, 2])
def test_round_trip_bytes_vault_bytes(bao: OpenBao, clients: Clients, version: int) -> None:
    mount = unique(f"rt{version}")
    bao.enable_kv(mount, version)
    conn, creds = approle_identity(bao, [mount], write=True)
    original = {
        "password": b"test",
        "b64": b"dGVzdA==",
        "admin": b"admin123",
        "unicode": "pässwörd ✓ 密码".encode(),
        "pem": b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        "spaces": b"  leading and trailing  \n",
        "empty": b"",
        "json": b'{"not": "parsed"}',
        "number": b"5432",
    }
    path = f"/{mount}/data/app" if version == 2 else f"{mount}/app"
    written = write_destination(clients, conn, creds, path, original, None, now=now())
    assert written.contentHash == content_hash(original)
    assert written.secretVersion == (1 if version == 2 else None)
    # Vault holds the text itself, not base64 of it.
    assert read_back(bao, mount, version, "app")["password"] == "test"
    data, state = read_source(clients, conn, creds, path, None, now=now())
    assert data == original
    assert state.contentHash == written.contentHash


@pytest.mark.parametrize("version", [1, 2])
def test_non_utf8_is_refused_and_nothing_written(
    bao: OpenBao, clients: Clients, version: int
) -> None:
    mount = unique(f"bin{version}")
    bao.enable_kv(mount, version)
    conn, creds = root(bao)
    path = f"{mount}/blob"
    good = {"a": b"keep"}
    first = write_destination(clients, conn, creds, path, good, None, now=now())
    bad = {"a": b"new", "cert.der": b"\x30\x82\xff\xfe"}
    with pytest.raises(VaultError) as caught:
        write_destination(clients, conn, creds, path, bad, first, now=now())
    assert caught.value.reason == "InvalidData"
    assert "cert.der" in caught.value.message
    assert "\\x" not in caught.value.message
    assert read_back(bao, mount, version, "blob") == {"a": "keep"}
    # And with nothing there before, nothing appears.
    with pytest.raises(VaultError):
        write_destination(clients, conn, creds, f"{mount}/fresh", bad, None, now=now())
    status, _ = bao.request("GET", f"{mount}/data/fresh" if version == 2 else f"{mount}/fresh")
    assert status == 404


def test_write_only_when_content_changes(bao: OpenBao, clients: Clients) -> None:
    mount = unique("kv")
    bao.enable_kv(mount, 2)
    conn, creds = root(bao)
    path = f"{mount}/w"
    first = write_destination(clients, conn, creds, path, {"k": b"1"}, None, now=now())
    again = write_destination(clients, conn, creds, path, {"k": b"1"}, first, now=now())
    assert again is first
    meta = bao.api("GET", f"{mount}/metadata/w")["data"]
    assert meta["current_version"] == 1
    changed = write_destination(clients, conn, creds, path, {"k": b"2"}, first, now=now())
    assert changed.secretVersion == 2
    # A new path is written even with the same content.
    moved = write_destination(clients, conn, creds, f"{mount}/w2", {"k": b"2"}, changed, now=now())
    assert moved.path == f"{mount}/w2"
    assert read_back(bao, mount, 2, "w2") == {"k": "2"}
    forced = write_destination(
        clients, conn, creds, path, {"k": b"2"}, changed, now=now(), force=True
    )
    assert forced.secretVersion == 3


@pytest.mark.parametrize("version", [1, 2])
def test_destination_changed_or_deleted_behind_our_back_is_written_again(
    bao: OpenBao, clients: Clients, version: int
) -> None:
    mount = unique("kv")
    bao.enable_kv(mount, version)
    conn, creds = root(bao)
    path = f"{mount}/pushed"
    api_path = f"{mount}/data/pushed" if version == 2 else f"{mount}/pushed"
    first = write_destination(clients, conn, creds, path, {"k": b"ours"}, None, now=now())
    bao.api("POST", api_path, {"data": {"k": "theirs"}} if version == 2 else {"k": "theirs"})

    repaired = write_destination(clients, conn, creds, path, {"k": b"ours"}, first, now=now())

    assert read_back(bao, mount, version, "pushed") == {"k": "ours"}
    assert repaired is not first
    bao.api("DELETE", api_path)
    again = write_destination(clients, conn, creds, path, {"k": b"ours"}, repaired, now=now())
    assert read_back(bao, mount, version, "pushed") == {"k": "ours"}
    assert write_destination(clients, conn, creds, path, {"k": b"ours"}, again, now=now()) is again


def test_missing_secret_mount_and_deleted_version(bao: OpenBao, clients: Clients) -> None:
    mount = unique("kv")
    bao.enable_kv(mount, 2)
    conn, creds = root(bao)
    with pytest.raises(VaultError) as caught:
        read_source(clients, conn, creds, f"{mount}/absent", None, now=now())
    assert caught.value.reason == "VaultNotFound"
    with pytest.raises(VaultError) as caught:
        read_source(clients, conn, creds, f"{unique('nomount')}/x", None, now=now())
    assert caught.value.reason == "VaultNotFound"
    put(bao, mount, 2, "gone", {"a": "1"})
    bao.api("DELETE", f"{mount}/data/gone")
    with pytest.raises(VaultError) as caught:
        read_source(clients, conn, creds, f"{mount}/gone", None, now=now())
    assert caught.value.reason == "VaultNotFound"


def test_writing_to_a_non_kv_engine_is_refused(bao: OpenBao, clients: Clients) -> None:
    mount = unique("transit")
    bao.api("POST", f"sys/mounts/{mount}", {"type": "transit"})
    with pytest.raises(VaultError) as caught:
        write_destination(clients, *root(bao), f"{mount}/keys/x", {"a": b"1"}, None, now=now())
    assert caught.value.reason == "VaultError"
    assert "transit" in caught.value.message


def test_mount_detection_with_a_narrow_token(bao: OpenBao, clients: Clients) -> None:
    """sys/internal/ui/mounts answers a token that can only read one secret."""
    mount = unique("kv")
    bao.enable_kv(mount, 2)
    put(bao, mount, 2, "team/one", {"a": "1"})
    policy = unique("pol")
    bao.put_policy(policy, f'path "{mount}/data/team/one" {{ capabilities = ["read"] }}')
    conn = Connection(addr=bao.addr)
    creds = Credentials(method="token", token=bao.token([policy]))
    found = find_mount(clients, conn, creds, f"{mount}/team/one")
    assert (found.path, found.kv_version) == (f"{mount}/", 2)
    data, _ = read_source(clients, conn, creds, f"{mount}/team/one", None, now=now())
    assert data == {"a": b"1"}


def test_destination_state_is_unchanged_type(bao: OpenBao, clients: Clients) -> None:
    mount = unique("kv")
    bao.enable_kv(mount, 1)
    state = write_destination(clients, *root(bao), f"{mount}/s", {"a": b"1"}, None, now=now())
    assert isinstance(state, DestinationState)
    assert state.secretVersion is None
    assert state.writtenAt.endswith("Z")
