"""Operator TLS identities: a self-signed certificate per operator, pinned by every other operator's config.

There is no certificate authority: each operator's config lists every operator's certificate, and a
connection is accepted only if the peer presents exactly one of them (checked by SHA-256 fingerprint after
the TLS handshake has verified possession of the private key).
"""

from __future__ import annotations

import datetime
import hashlib
import ssl
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True, slots=True)
class OperatorCertificate:
    cert_pem: bytes
    key_pem: bytes


def generate_operator_certificate(common_name: str, *, valid_days: int = 3650) -> OperatorCertificate:
    """A fresh P-256 key and a self-signed certificate for it (for devnets and tests; production operators
    may bring their own)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=valid_days))
        # CA:FALSE: a pinned operator certificate can never vouch for another certificate.
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return OperatorCertificate(
        cert_pem=certificate.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )


def certificate_fingerprint(cert_pem_or_der: bytes) -> str:
    """Hex SHA-256 of the DER certificate: what peers are pinned by."""
    der = ssl.PEM_cert_to_DER_cert(cert_pem_or_der.decode()) if cert_pem_or_der.lstrip().startswith(b"-----") else cert_pem_or_der
    return hashlib.sha256(der).hexdigest()
