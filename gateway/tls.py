"""
The TLS settings of an ``ssl:`` endpoint: its files, what they hold, and the server options made
of them.

twistd reads the key and certificates once, when it starts and before it drops privileges
(``--uid``/``--gid``), as other daemons read theirs: a key that only root may read, as in
Debian's ``/etc/ssl/private``, then serves. What was read (L{TLSMaterial}) is kept in memory. A
single process makes its endpoint of it; a supervisor hands it to each worker it starts, also to
one restarted months later, through the worker's standard input (L{TLSMaterial.as_json}), never
its command line or environment. Workers adopt a socket bound by their supervisor
(L{gateway.listening}) and wrap their site in TLS themselves, with the same meaning as Twisted's
endpoint (``privateKey``, ``certKey`` defaulting to the key's file, ``extraCertChain``,
``dhParameters``). A missing or malformed file stops the start with one clear message.

OpenSSL takes Diffie-Hellman parameters by file name only: a process that makes a TLS context
of the material writes them to a temporary file of its own, readable by its user alone, for as
long as the context takes to make (L{options_from}). So they too are read once, before the
switch, and a worker never opens the operator's file.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any, Dict, List, Optional

from attrs import asdict, field, frozen
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


@frozen
class TLSMaterial:
    """
    What the files of an ``ssl:`` endpoint hold, read once (L{read_material}).

    :ivar files: the files it was read from, named in error messages.
    :ivar private_key: the PEM private key.
    :ivar certificate: the PEM certificate.
    :ivar extra_cert_chain: the PEM certificates of the chain, or C{None}.
    :ivar dh_parameters: the PEM Diffie-Hellman parameters, or C{None}.
    """

    files: TLSFiles
    private_key: bytes = field(repr=False)
    certificate: bytes
    extra_cert_chain: Optional[bytes] = None
    dh_parameters: Optional[bytes] = None

    def as_json(self) -> Dict[str, Any]:
        """
        The material as JSON values (PEM bytes as Latin-1 text, which keeps any byte), for a
        worker's standard input; L{from_json} reads it back.
        """
        return {
            "files": self.files.as_json(),
            "private_key": self.private_key.decode("latin-1"),
            "certificate": self.certificate.decode("latin-1"),
            "extra_cert_chain": _text(self.extra_cert_chain),
            "dh_parameters": _text(self.dh_parameters),
        }

    @classmethod
    def from_json(cls, value: Dict[str, Any]) -> "TLSMaterial":
        return cls(
            files=TLSFiles.from_json(value["files"]),
            private_key=value["private_key"].encode("latin-1"),
            certificate=value["certificate"].encode("latin-1"),
            extra_cert_chain=_bytes(value["extra_cert_chain"]),
            dh_parameters=_bytes(value["dh_parameters"]),
        )


def _text(pem: Optional[bytes]) -> Optional[str]:
    return None if pem is None else pem.decode("latin-1")


def _bytes(text: Optional[str]) -> Optional[bytes]:
    return None if text is None else text.encode("latin-1")


def read_material(files: TLSFiles) -> TLSMaterial:
    """
    Read the key, the certificates and the Diffie-Hellman parameters of C{files}.

    :raise TLSSetupError: a file is missing or unreadable.
    """
    return TLSMaterial(
        files=files,
        private_key=_read(files.private_key, "private key"),
        certificate=_read(files.certificate, "certificate"),
        extra_cert_chain=(
            None if files.extra_cert_chain is None
            else _read(files.extra_cert_chain, "certificate chain")
        ),
        dh_parameters=(
            None if files.dh_parameters is None
            else _read(files.dh_parameters, "Diffie-Hellman parameters")
        ),
    )


def server_options(files: TLSFiles) -> ssl.CertificateOptions:
    """
    The TLS server settings for C{files}: what Twisted's ``ssl:`` endpoint would make of them.

    :raise TLSSetupError: a file is missing, unreadable, or not what it should be.
    """
    return options_from(read_material(files))


def options_from(material: TLSMaterial) -> ssl.CertificateOptions:
    """
    The TLS server settings made of C{material}, checked: the context is made at once, and
    kept by the options for every connection.

    :raise TLSSetupError: the material is not what it should be.
    """
    files = material.files
    try:
        identity = ssl.PrivateCertificate.loadPEM(
            material.certificate + b"\n" + material.private_key
        )
    except Exception as error:
        raise TLSSetupError(
            f"cannot load the TLS certificate {files.certificate} with the private key "
            f"{files.private_key}: {error}"
        )
    chain: Optional[List[X509]] = None
    if material.extra_cert_chain is not None:
        assert files.extra_cert_chain is not None
        chain = _certificate_chain(material.extra_cert_chain, files.extra_cert_chain)
    dh_file = None
    if material.dh_parameters is not None:
        # OpenSSL reads them by name only; the file is removed once the context is made.
        try:
            descriptor, dh_file = tempfile.mkstemp(prefix="s3gateway-dh-", suffix=".pem")
        except OSError as error:
            raise TLSSetupError(
                f"cannot copy the Diffie-Hellman parameters {files.dh_parameters} to a "
                f"temporary file for OpenSSL: {error}"
            )
        try:
            os.write(descriptor, material.dh_parameters)
        finally:
            os.close(descriptor)
    try:
        options = ssl.CertificateOptions(
            privateKey=identity.privateKey.original,
            certificate=identity.original,
            extraCertChain=chain,
            dhParameters=(
                None if dh_file is None
                else ssl.DiffieHellmanParameters.fromFile(FilePath(dh_file))
            ),
        )
        # Made now rather than at the first connection: this is where a key that does not match
        # its certificate, or unusable Diffie-Hellman parameters, are found.
        options.getContext()
    except Exception as error:
        raise TLSSetupError(
            f"cannot use the TLS certificate {files.certificate} with the private key "
            f"{files.private_key}"
            + (f" and the Diffie-Hellman parameters {files.dh_parameters}" if dh_file else "")
            + f": {error}"
        )
    finally:
        if dh_file is not None:
            os.unlink(dh_file)
    return options


def _certificate_chain(pem: bytes, path: str) -> List[X509]:
    from cryptography.x509 import load_pem_x509_certificates

    try:
        certificates = load_pem_x509_certificates(pem)
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
