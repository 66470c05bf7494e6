"""TLS: verification is on by default, a private CA is one option away, and turning
verification off is explicit. The simulator serves https with a certificate signed by a
CA made here (no network, nothing shipped)."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ev_ingest.client import ClientSettings, ExacqClient, ExacqError
from tests.conftest import PASSWORD


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def make_ca_and_server_cert(folder: Path) -> tuple[Path, Path, Path]:
    """A private CA, and a certificate for 127.0.0.1 signed by it: (ca.pem, cert.pem, key.pem)."""
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("ev-ingest test CA"))
        .issuer_name(_name("ev-ingest test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )  # keyCertSign, cRLSign
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    paths[2].chmod(0o600)
    return paths


@pytest.fixture(scope="module")
def tls_sim(tmp_path_factory):
    from ev_ingest.simulator import SimulatorServer
    from tests.conftest import sim_config

    ca, cert, key = make_ca_and_server_cert(tmp_path_factory.mktemp("tls"))
    with SimulatorServer(sim_config(cameras=2, tls_cert=cert, tls_key=key)) as server:
        yield server, ca


def test_verification_is_on_by_default_and_says_why_it_failed(tls_sim):
    server, _ = tls_sim
    assert server.url.startswith("https://127.0.0.1:")
    url = f"exacqvision://admin@{server.url.removeprefix('https://')}/?tls=true"
    settings = ClientSettings.from_url(url, password=PASSWORD)
    assert settings.verify() is True
    with pytest.raises(ExacqError) as refused, ExacqClient(settings=settings) as ev:
        ev.cameras.list()
    assert "CERTIFICATE_VERIFY_FAILED" in str(refused.value) or "certificate" in str(refused.value).lower()
    assert PASSWORD not in str(refused.value)


def test_a_private_ca_is_one_option(tls_sim):
    server, ca = tls_sim
    url = f"exacqvision://admin@{server.url.removeprefix('https://')}/?tls=true&ca_file={ca}"
    with ExacqClient(settings=ClientSettings.from_url(url, password=PASSWORD)) as ev:
        assert [c.name for c in ev.cameras.list()] == ["Lobby", "Parking North"]


def test_turning_verification_off_is_explicit(tls_sim):
    server, _ = tls_sim
    url = f"exacqvision://admin@{server.url.removeprefix('https://')}/?tls=true&tls_verify=false"
    with ExacqClient(settings=ClientSettings.from_url(url, password=PASSWORD)) as ev:
        assert len(ev.cameras.list()) == 2
