"""TLS to the cloud (issue 9): a certificate the machine does not trust is one clear line with
what to do; ``--os-cacert`` and ``--insecure`` get past it. The cloud here is a local HTTPS
server with a fresh self-signed certificate that answers every request with a 404."""

from __future__ import annotations

import datetime
import http.server
import ipaddress
import os
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

REPO = Path(__file__).resolve().parents[2]
TLS_ERROR = "cloudrescue: error: listing instances: the cloud's TLS certificate was not accepted"


def self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


class NotFound(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_error(404)

    def do_POST(self) -> None:
        self.send_error(404)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def https_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """(clouds.yaml naming cloud ``tls`` at the server, the server's certificate)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = self_signed(folder)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    clouds = folder / "clouds.yaml"
    clouds.write_text(
        "clouds:\n  tls:\n    auth:\n"
        f"      auth_url: https://localhost:{server.server_address[1]}/v3\n"
        "      username: u\n      password: p\n      project_name: p\n"
        "      user_domain_name: Default\n      project_domain_name: Default\n"
    )
    yield clouds, cert
    server.shutdown()


def cli(clouds: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(clouds.parent),
        "OS_CLIENT_CONFIG_FILE": str(clouds),
        "OS_CLOUD": "tls",
        "CLOUDRESCUE_STATE_DIR": str(clouds.parent / "state"),
        "XDG_CACHE_HOME": str(clouds.parent / "cache"),
    }
    return subprocess.run(
        [str(REPO / ".venv/bin/cloudrescue"), "console", "log", "web-1", *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_an_untrusted_certificate_is_one_line_and_a_hint(https_cloud: tuple[Path, Path]) -> None:
    clouds, _ = https_cloud
    result = cli(clouds)
    assert result.returncode == 5
    error, hint = result.stderr.splitlines()
    assert error.startswith(TLS_ERROR) and "self-signed certificate" in error, error
    assert (
        hint == "hint: give its CA with --os-cacert FILE (or OS_CACERT); --insecure skips the check"
    )


@pytest.mark.parametrize("option", ["--os-cacert", "--insecure"])
def test_cacert_or_insecure_get_past_it(https_cloud: tuple[Path, Path], option: str) -> None:
    clouds, cert = https_cloud
    result = cli(clouds, *([option, str(cert)] if option == "--os-cacert" else [option]))
    assert result.returncode == 5  # the server answers 404 to everything: past TLS, then refused
    assert result.stderr.startswith("cloudrescue: error: ")
    assert TLS_ERROR not in result.stderr and "Traceback" not in result.stderr
