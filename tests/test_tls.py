"""
L{gateway.tls}: the files of an ``ssl:`` endpoint, and the TLS settings workers make of them.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest
from cryptography.x509.oid import NameOID
from OpenSSL import SSL

from gateway.tls import (
    TLSFiles,
    TLSMaterial,
    TLSSetupError,
    options_from,
    read_material,
    server_options,
)
from tests.tlsfiles import make_tls_files


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory):
    return make_tls_files(tmp_path_factory.mktemp("tls"))


def test_from_keywords_defaults_as_twisted_does(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    # Twisted's ssl: endpoint reads server.pem without privateKey, and the certificate from
    # the key's file without certKey; relative paths are made absolute here, where they were
    # written, since a worker may run elsewhere.
    assert TLSFiles.from_keywords() == TLSFiles(
        str(tmp_path / "server.pem"), str(tmp_path / "server.pem")
    )
    assert TLSFiles.from_keywords(privateKey="k.pem", extraCertChain="c.pem") == TLSFiles(
        str(tmp_path / "k.pem"), str(tmp_path / "k.pem"), str(tmp_path / "c.pem")
    )


def test_json_round_trip() -> None:
    tls = TLSFiles("/k.pem", "/c.pem", "/chain.pem", "/dh.pem")
    assert TLSFiles.from_json(tls.as_json()) == tls
    plain = TLSFiles("/k.pem", "/c.pem")
    assert TLSFiles.from_json(plain.as_json()) == plain


def _common_name(certificate) -> str:
    name = certificate.to_cryptography().subject
    return name.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value


def _certificate_subject(options) -> str:
    context = options.getContext()
    return _common_name(SSL.Connection(context, None).get_certificate())


def test_key_and_certificate_in_separate_files(files) -> None:
    options = server_options(TLSFiles(str(files["key"]), str(files["cert"])))
    assert _certificate_subject(options) == "127.0.0.1"
    assert options.extraCertChain == []


def test_key_and_certificate_in_one_file(files) -> None:
    options = server_options(TLSFiles.from_keywords(privateKey=str(files["both"])))
    assert _certificate_subject(options) == "127.0.0.1"


def test_extra_certificate_chain(files) -> None:
    options = server_options(
        TLSFiles(str(files["key"]), str(files["cert"]), extra_cert_chain=str(files["chain"]))
    )
    assert [_common_name(c) for c in options.extraCertChain] == [
        "s3gateway test intermediate"
    ]


def test_missing_file_is_named(files, tmp_path: Path) -> None:
    missing = str(tmp_path / "nowhere.pem")
    with pytest.raises(TLSSetupError, match=f"private key {missing}: No such file"):
        server_options(TLSFiles(missing, str(files["cert"])))
    with pytest.raises(TLSSetupError, match=f"certificate {missing}: No such file"):
        server_options(TLSFiles(str(files["key"]), missing))


def test_key_that_does_not_match_the_certificate(files) -> None:
    with pytest.raises(TLSSetupError, match="public and private keys do not match"):
        server_options(TLSFiles(str(files["other-key"]), str(files["cert"])))


def test_file_that_is_not_pem(files, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(os.urandom(64))
    with pytest.raises(TLSSetupError, match="cannot load the TLS certificate"):
        server_options(TLSFiles(str(files["key"]), str(garbage)))
    with pytest.raises(TLSSetupError, match="holds no PEM certificates"):
        server_options(TLSFiles(str(files["key"]), str(files["cert"]), str(garbage)))


def test_unusable_diffie_hellman_parameters(files, tmp_path: Path) -> None:
    garbage = tmp_path / "dh.pem"
    garbage.write_bytes(b"not parameters")
    with pytest.raises(TLSSetupError):
        server_options(
            TLSFiles(str(files["key"]), str(files["cert"]), dh_parameters=str(garbage))
        )


def test_material_read_once_serves_without_its_files(files, tmp_path: Path) -> None:
    """
    What L{read_material} read makes the same server settings after its files are gone (a
    worker started after twistd dropped the privileges that could read them).
    """
    copies = {}
    for name in ("key", "cert", "chain"):
        copies[name] = tmp_path / f"{name}.pem"
        copies[name].write_bytes(files[name].read_bytes())
    material = read_material(
        TLSFiles(str(copies["key"]), str(copies["cert"]), extra_cert_chain=str(copies["chain"]))
    )
    for copy in copies.values():
        copy.unlink()
    options = options_from(material)
    assert _certificate_subject(options) == "127.0.0.1"
    assert [_common_name(c) for c in options.extraCertChain] == [
        "s3gateway test intermediate"
    ]


def test_diffie_hellman_parameters_read_once(files, tmp_path: Path, monkeypatch) -> None:
    """
    The parameters are read with the key (before twistd drops privileges) and used from
    memory: the file may be gone when a worker makes its context, and the temporary copy
    OpenSSL needs is removed once the context is made.
    """
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    dh = tmp_path / "dh.pem"
    dh.write_bytes(files["dh"].read_bytes())
    material = read_material(
        TLSFiles(str(files["key"]), str(files["cert"]), dh_parameters=str(dh))
    )
    assert material.dh_parameters == files["dh"].read_bytes()
    dh.unlink()
    assert _certificate_subject(options_from(material)) == "127.0.0.1"
    assert list((tmp_path / "tmp").iterdir()) == []
    # Unusable parameters are named, and leave no copy behind either.
    garbage = TLSMaterial(material.files, material.private_key, material.certificate,
                          dh_parameters=b"not parameters")
    with pytest.raises(TLSSetupError, match=f"Diffie-Hellman parameters {dh}"):
        options_from(garbage)
    assert list((tmp_path / "tmp").iterdir()) == []
    # Nowhere to write the copy: said so, as a TLS set-up error.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "missing"))
    with pytest.raises(TLSSetupError, match="to a temporary file for OpenSSL"):
        options_from(material)


def test_material_json_round_trip_keeps_every_byte() -> None:
    files = TLSFiles("/k.pem", "/c.pem", "/chain.pem", "/dh.pem")
    material = TLSMaterial(files, bytes(range(256)), b"cert\xff", b"chain", b"dh\x00")
    assert TLSMaterial.from_json(json.loads(json.dumps(material.as_json()))) == material
    plain = TLSMaterial(TLSFiles("/k.pem", "/k.pem"), b"key", b"cert")
    assert TLSMaterial.from_json(json.loads(json.dumps(plain.as_json()))) == plain


def test_material_repr_leaves_the_key_out() -> None:
    material = TLSMaterial(TLSFiles("/k.pem", "/c.pem"), b"SECRET-KEY-BYTES", b"cert")
    assert "SECRET-KEY-BYTES" not in repr(material)


def test_unreadable_chain_is_named(files, tmp_path: Path) -> None:
    missing = str(tmp_path / "nowhere.pem")
    with pytest.raises(TLSSetupError, match=f"certificate chain {missing}: No such file"):
        read_material(TLSFiles(str(files["key"]), str(files["cert"]), missing))
