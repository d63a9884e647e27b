"""A `tls://` URL: connect() speaks TLS, checks the server's certificate, and refuses a server without TLS."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from maestro.embedded import start_nats_server
from maestro.errors import CannotRun
from maestro.runtime import Unreachable, connect
from maestro.settings import Settings

pytestmark = pytest.mark.skipif(
    shutil.which("openssl") is None, reason="openssl makes the test's certificate"
)


def _tls_server_config(tmp_path: Path) -> Path:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *(
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
            ),
            *("-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    config = tmp_path / "tls.conf"
    config.write_text(f'tls {{ cert_file: "{cert}", key_file: "{key}" }}\n')
    return config


async def test_a_tls_url_speaks_tls_to_a_server_whose_certificate_is_trusted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = start_nats_server(tmp_path / "js", config=_tls_server_config(tmp_path))
    try:
        url = f"tls://127.0.0.1:{server.port}"
        # Not trusted: the certificate is checked, so the connection is refused.
        with pytest.raises(Unreachable):
            await connect(Settings(nats_url=url), "untrusting", patience_s=2)
        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "cert.pem"))
        nc = await connect(Settings(nats_url=url), "trusting", patience_s=5)
        try:
            await nc.flush(timeout=2)
            assert nc.is_connected
        finally:
            await nc.close()
    finally:
        server.stop()


async def test_a_tls_url_refuses_a_server_without_tls(tmp_path: Path) -> None:
    server = start_nats_server(tmp_path / "js")
    try:
        with pytest.raises(CannotRun, match="does not use TLS"):
            await connect(Settings(nats_url=f"tls://127.0.0.1:{server.port}"), "plain", patience_s=5)
    finally:
        server.stop()
