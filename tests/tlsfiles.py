"""
Certificates for tests of TLS endpoints: a CA of their own and a server certificate it signed
for 127.0.0.1 and localhost, written as PEM files. Made with cryptography (a dependency of
pyOpenSSL, which Twisted's TLS needs anyway).
"""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path
from typing import Any, Dict

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(
    subject: str, key: rsa.RSAPrivateKey, issuer: str, issuer_key: rsa.RSAPrivateKey, ca: bool
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([
                x509.DNSName("localhost"),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            ]),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


#: The ffdhe3072 group of RFC 7919, as Diffie-Hellman parameters (a published constant, so no test
#: waits for parameters to be generated).
FFDHE3072 = (
    b"-----BEGIN DH PARAMETERS-----\n"
    b"MIIBiAKCAYEA//////////+t+FRYortKmq/cViAnPTzx2LnFg84tNpWp4TZBFGQz\n"
    b"+8yTnc4kmz75fS/jY2MMddj2gbICrsRhetPfHtXV/WVhJDP1H18GbtCFY2VVPe0a\n"
    b"87VXE15/V8k1mE8McODmi3fipona8+/och3xWKE2rec1MKzKT0g6eXq8CrGCsyT7\n"
    b"YdEIqUuyyOP7uWrat2DX9GgdT0Kj3jlN9K5W7edjcrsZCwenyO4KbXCeAvzhzffi\n"
    b"7MA0BM0oNC9hkXL+nOmFg/+OTxIy7vKBg8P+OxtMb61zO7X8vC7CIAXFjvGDfRaD\n"
    b"ssbzSibBsu/6iGtCOGEfz9zeNVs7ZRkDW7w09N75nAI4YbRvydbmyQd62R0mkff3\n"
    b"7lmMsPrBhtkcrv4TCYUTknC0EwyTvEN5RPT9RFLi103TZPLiHnH1S/9croKrnJ32\n"
    b"nuhtK8UiNjoNq8Uhl5sN6todv5pC1cRITgq80Gv6U93vPBsg7j/VnXwl5B0rZsYu\n"
    b"N///////////AgEC\n"
    b"-----END DH PARAMETERS-----\n"
)


def make_tls_files(directory: Path) -> Dict[str, Path]:
    """
    Write, in C{directory}: C{ca.pem} (the CA a client trusts), C{key.pem} and C{cert.pem} (the
    server's key and certificate), C{both.pem} (key and certificate in one file, Twisted's
    default form), C{other-key.pem} (a key that matches no certificate) and C{chain.pem} (an
    intermediate CA's certificate, for C{extraCertChain}) and C{dh.pem} (Diffie-Hellman
    parameters, for C{dhParameters}).

    :return: the paths by those names, without the C{.pem}.
    """
    ca_key, server_key, other_key, intermediate_key = _key(), _key(), _key(), _key()
    ca = _certificate("s3gateway test CA", ca_key, "s3gateway test CA", ca_key, ca=True)
    server = _certificate("127.0.0.1", server_key, "s3gateway test CA", ca_key, ca=False)
    intermediate = _certificate(
        "s3gateway test intermediate", intermediate_key, "s3gateway test CA", ca_key, ca=True
    )
    contents: Dict[str, bytes] = {
        "ca": _pem(ca),
        "key": _key_pem(server_key),
        "cert": _pem(server),
        "both": _key_pem(server_key) + _pem(server),
        "other-key": _key_pem(other_key),
        "chain": _pem(intermediate),
        "dh": FFDHE3072,
    }
    paths = {}
    for name, content in contents.items():
        path = directory / f"{name}.pem"
        path.write_bytes(content)
        path.chmod(0o600)
        paths[name] = path
    return paths


def tls_endpoint(port: int, files: Dict[str, Path]) -> str:
    """
    The ``ssl:`` endpoint string for C{files} on 127.0.0.1:C{port}.
    """
    return (
        f"ssl:{port}:interface=127.0.0.1:privateKey={files['key']}:certKey={files['cert']}"
    )


def boto3_over_tls(daemon: Any, ca: Path) -> Any:
    """
    A boto3 S3 client of C{daemon}'s first key (a L{tests.e2e.clients.Daemon} on an ``ssl:``
    endpoint) that trusts C{ca} only: path-style addressing, no retries.
    """
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "s3",
        endpoint_url=f"https://127.0.0.1:{daemon.port}",
        aws_access_key_id=daemon.access_key,
        aws_secret_access_key=daemon.secret_key,
        region_name=daemon.region,
        verify=str(ca),
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )
