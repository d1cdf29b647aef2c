"""
The TLS settings of an ``ssl:`` endpoint, for worker processes that adopt a shared socket.

A single-process gateway hands its ``ssl:`` endpoint string to Twisted, which loads the key and
certificates. Workers cannot: they adopt a socket bound by their supervisor
(L{gateway.listening}), so each wraps its site in TLS itself, with the same files and the same
meaning as Twisted's endpoint (``privateKey``, ``certKey`` defaulting to the key's file,
``extraCertChain``, ``dhParameters``). The supervisor loads them once before it starts any worker,
so that a missing or malformed file stops the start with one clear message rather than a crash
loop of workers.
"""

from __future__ import annotations

import os
from typing import Dict, List, Optional

from attrs import asdict, frozen
from OpenSSL.crypto import X509
from twisted.internet import ssl
from twisted.python.filepath import FilePath


class TLSSetupError(ValueError):
    """
    A TLS file could not be read or did not hold what it should; the message names it.
    """


@frozen
class TLSFiles:
    """
    The files of an ``ssl:`` endpoint, as absolute paths (a worker may run in another directory).

    :ivar private_key: the PEM private key (``privateKey``).
    :ivar certificate: the PEM certificate (``certKey``); the key's file when not given.
    :ivar extra_cert_chain: PEM certificates from the CA that signed C{certificate} up, or
        C{None} (``extraCertChain``).
    :ivar dh_parameters: PEM Diffie-Hellman parameters, or C{None} (``dhParameters``).
    """

    private_key: str
    certificate: str
    extra_cert_chain: Optional[str] = None
    dh_parameters: Optional[str] = None

    @classmethod
    def from_keywords(
        cls,
        privateKey: str = "server.pem",
        certKey: Optional[str] = None,
        extraCertChain: Optional[str] = None,
        dhParameters: Optional[str] = None,
    ) -> "TLSFiles":
        """
        The files named by an endpoint string's keywords, with Twisted's defaults, made absolute.
        """
        return cls(
            private_key=os.path.abspath(privateKey),
            certificate=os.path.abspath(certKey if certKey is not None else privateKey),
            extra_cert_chain=os.path.abspath(extraCertChain) if extraCertChain else None,
            dh_parameters=os.path.abspath(dhParameters) if dhParameters else None,
        )

    def as_json(self) -> Dict[str, Optional[str]]:
        """
        The files, as the worker's command line carries them (L{from_json} reads them back).
        """
        return asdict(self)

    @classmethod
    def from_json(cls, value: Dict[str, Optional[str]]) -> "TLSFiles":
        return cls(**value)  # type: ignore[arg-type]


def server_options(files: TLSFiles) -> ssl.CertificateOptions:
    """
    The TLS server settings for C{files}: what Twisted's ``ssl:`` endpoint would make of them.

    :raise TLSSetupError: a file is missing, unreadable, or not what it should be.
    """
    key_pem = _read(files.private_key, "private key")
    certificate_pem = _read(files.certificate, "certificate")
    try:
        identity = ssl.PrivateCertificate.loadPEM(certificate_pem + b"\n" + key_pem)
    except Exception as error:
        raise TLSSetupError(
            f"cannot load the TLS certificate {files.certificate} with the private key "
            f"{files.private_key}: {error}"
        )
    chain: Optional[List[X509]] = None
    if files.extra_cert_chain is not None:
        chain = _certificate_chain(files.extra_cert_chain)
    dh_parameters = None
    if files.dh_parameters is not None:
        _read(files.dh_parameters, "Diffie-Hellman parameters")
        dh_parameters = ssl.DiffieHellmanParameters.fromFile(FilePath(files.dh_parameters))
    options = ssl.CertificateOptions(
        privateKey=identity.privateKey.original,
        certificate=identity.original,
        extraCertChain=chain,
        dhParameters=dh_parameters,
    )
    try:
        # Made now rather than at the first connection: this is where a key that does not match
        # its certificate, or unusable Diffie-Hellman parameters, are found.
        options.getContext()
    except Exception as error:
        raise TLSSetupError(
            f"cannot use the TLS certificate {files.certificate} with the private key "
            f"{files.private_key}: {error}"
        )
    return options


def _certificate_chain(path: str) -> List[X509]:
    from cryptography.x509 import load_pem_x509_certificates

    try:
        certificates = load_pem_x509_certificates(_read(path, "certificate chain"))
    except ValueError as error:
        raise TLSSetupError(
            f"the TLS certificate chain {path} holds no PEM certificates: {error}"
        )
    return [X509.from_cryptography(certificate) for certificate in certificates]


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as source:
            return source.read()
    except OSError as error:
        raise TLSSetupError(f"cannot read the TLS {what} {path}: {error.strerror}")
