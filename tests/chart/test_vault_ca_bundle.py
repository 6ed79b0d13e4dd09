"""`vault.caBundle`: the chart sets REQUESTS_CA_BUNDLE in the sidecar; the sidecar's Vault
clients (sidecar.vault.clients.new_hvac_client, requests underneath) then trust that bundle for
mirrors without `tls.caSecretRef`. Checked against a real OpenBao serving TLS from its own CA."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chart.conftest import ROOT
from tests.support.openbao import OpenBao, scrubbed_env

pytestmark = pytest.mark.vault

PROBE = """
import sys
from sidecar.vault.clients import Connection, new_hvac_client
client = new_hvac_client(Connection(addr=sys.argv[1], retries=0, timeout=5))
try:
    print(client.sys.read_health_status(method="GET")["initialized"])
except Exception as exc:
    print(type(exc).__name__, exc)
"""


@pytest.fixture(scope="module")
def tls_bao() -> Iterator[OpenBao]:
    server = OpenBao(tls=True).start()
    try:
        yield server
    finally:
        server.close()


def probe(bao: OpenBao, extra_env: dict[str, str]) -> str:
    inherited = scrubbed_env()
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        inherited.pop(name, None)
    env = inherited | {"PYTHONPATH": str(ROOT)} | extra_env
    res = subprocess.run(
        [sys.executable, "-c", PROBE, bao.addr],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    return res.stdout.strip()


def test_ca_bundle_env_is_the_default_vault_trust_store(tls_bao: OpenBao, tmp_path: Path) -> None:
    assert "SSLError" in probe(tls_bao, {})  # the image's public CA bundle: refused
    bundle = tmp_path / "ca.crt"
    bundle.write_text(tls_bao.ca_pem)
    assert probe(tls_bao, {"REQUESTS_CA_BUNDLE": str(bundle)}) == "True"
