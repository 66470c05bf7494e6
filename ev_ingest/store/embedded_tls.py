"""The embedded store's mutual TLS: a throwaway certificate authority per start (issue 23 item 5).

SeaweedFS's gRPC ports (master, volume, filer, S3, admin) and its master, volume, filer and
admin HTTP ports take no credentials of their own: `weed shell` or `curl /dir/lookup` from
any local process could delete records, hand out write tokens for locked chunks, or fill
every volume slot (`/vol/grow`). SeaweedFS's `security.toml` can demand a client
certificate on all of them; this module makes the certificates.

Each start makes a new CA, signs one certificate (server and client use, SeaweedFS does not
check host names, so its components share it) and throws the CA's private key away: nobody,
not even this process, can mint another certificate the store accepts. The certificate and
its key are written 0600 into the store's 0700 data folder; whoever can read them is the
folder's owner, who could change the volume files anyway (docs/compliance.md, the threat
model). Only the S3 port stays plain HTTP: it asks for the S3 access key.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# The components whose gRPC servers (and, with `client_cert` unset, outgoing calls) use it.
GRPC_COMPONENTS = ("master", "volume", "filer", "s3", "admin", "worker", "msg_broker", "msg_agent", "mq")
# The HTTP servers that would otherwise answer anyone (S3 asks for its key, so stays HTTP).
HTTPS_COMPONENTS = ("master", "volume", "filer", "admin")
# Valid from any clock: the certificates live as long as one `weed` process, and a caller's
# clock may be moved (libfaketime in `make test-clock`) while weed keeps the real time.
# 9999-12-31 is RFC 5280's "no well-defined expiration".
NOT_BEFORE = datetime(2000, 1, 1, tzinfo=UTC)
NOT_AFTER = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)


@dataclass(frozen=True)
class StoreTLS:
    """Where one start's certificates are: the CA's certificate, the shared certificate, its key."""

    folder: Path

    @property
    def ca(self) -> Path:
        return self.folder / "ca.crt"

    @property
    def cert(self) -> Path:
        return self.folder / "store.crt"

    @property
    def key(self) -> Path:
        return self.folder / "store.key"

    def security_toml(self) -> str:
        """The `security.toml` sections that make every gRPC and internal HTTP port mutual TLS."""
        pair = f'cert = "{self.cert}"\nkey = "{self.key}"\n'
        body = f'[grpc]\nca = "{self.ca}"\n\n'
        body += "".join(f"[grpc.{name}]\n{pair}\n" for name in GRPC_COMPONENTS)
        body += f"[grpc.client]\n{pair}\n"
        # With [https.client] on, SeaweedFS's own components call each other over HTTPS,
        # presenting the certificate; a server section with `ca` demands one from callers.
        body += f'[https.client]\nenabled = true\n{pair}ca = "{self.ca}"\n\n'
        body += "".join(f'[https.{name}]\n{pair}ca = "{self.ca}"\n\n' for name in HTTPS_COMPONENTS)
        return body

    def client_toml(self) -> str:
        """A `security.toml` for the owner's own `weed shell` (in its working directory)."""
        return f'[grpc]\nca = "{self.ca}"\n\n[grpc.client]\ncert = "{self.cert}"\nkey = "{self.key}"\n'

    def ssl_context(self) -> ssl.SSLContext:
        """The owner's client context: trusts only this start's CA and presents the certificate."""
        context = ssl.create_default_context(cafile=str(self.ca))
        context.load_cert_chain(str(self.cert), str(self.key))
        return context


def _private(path: Path, data: bytes) -> None:
    path.unlink(missing_ok=True)
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
        out.write(data)


def make_store_tls(folder: Path, host: str = "127.0.0.1") -> StoreTLS:
    """A new CA and one certificate it signed, in `folder` (0700); the CA's key is not kept."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ev-ingest embedded store CA (one start)")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOT_BEFORE)
        .not_valid_after(NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )  # keyCertSign, cRLSign
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName("localhost")]
    try:
        names.append(x509.IPAddress(ipaddress.ip_address(host)))
    except ValueError:
        names.append(x509.DNSName(host))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ev-ingest embedded store")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOT_BEFORE)
        .not_valid_after(NOT_AFTER)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    tls = StoreTLS(folder)
    pem = serialization.Encoding.PEM
    _private(tls.ca, ca.public_bytes(pem))
    _private(tls.cert, cert.public_bytes(pem))
    _private(tls.key, key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return tls  # ca_key goes out of scope here: no further certificate can be signed
