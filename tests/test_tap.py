"""
The twistd plugin and its options, tested as data (magic-wormhole-mailbox-server's test_config
style): parse options, check the settings; make the service on a memory reactor, check it.
"""

from __future__ import annotations

import os
import socket
import subprocess

import pytest
from cryptography.x509.oid import NameOID
from OpenSSL import SSL
from twisted.internet.testing import MemoryReactorClock
from twisted.python import usage

from gateway.config import DEFAULTS
from gateway.tap import GatewayService, Options, makeService
from tests.e2e.clients import REPO_ROOT, Daemon
from tests.tlsfiles import make_tls_files


def parse(*argv: str) -> Options:
    options = Options()
    options.parseOptions(list(argv))
    return options


def test_defaults() -> None:
    options = parse()
    assert options.settings["listen"] == "tcp:8333:interface=127.0.0.1"
    assert options.settings["region"] == "us-east-1"
    assert options.settings["data"] == os.path.abspath(DEFAULTS["data"])
    assert options.settings["create_bucket_root"] is None
    assert options.settings["workers"] == 1


def test_command_line_overrides_config_file(tmp_path) -> None:
    config = tmp_path / "s3gateway.conf"
    config.write_text(
        "[gateway]\nlisten = tcp:9000\nregion = eu-west-1\ndata = /srv/gw\n"
        "create_bucket_root = /srv/buckets\n"
    )
    options = parse("--config", str(config), "--listen", "tcp:9001")
    assert options.settings["listen"] == "tcp:9001"
    assert options.settings["region"] == "eu-west-1"
    assert options.settings["data"] == "/srv/gw"
    assert options.settings["create_bucket_root"] == "/srv/buckets"


def test_unknown_config_setting_is_an_error(tmp_path) -> None:
    config = tmp_path / "s3gateway.conf"
    config.write_text("[gateway]\nlisten = tcp:9000\nregoin = eu-west-1\n")
    with pytest.raises(usage.UsageError, match="regoin"):
        parse("--config", str(config))


def test_missing_config_file_is_an_error(tmp_path) -> None:
    with pytest.raises(usage.UsageError, match="cannot read"):
        parse("--config", str(tmp_path / "absent.conf"))


def test_example_config_file_parses() -> None:
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    options = parse("--config", os.path.join(here, "etc", "s3gateway.conf"))
    assert options.settings["listen"] == "tcp:8333:interface=127.0.0.1"
    assert options.settings["data"] == "/var/lib/s3gateway"
    assert options.settings["workers"] == 1


def test_workers_option() -> None:
    assert parse("--workers", "3").settings["workers"] == 3
    assert parse("--workers", "auto").settings["workers"] == (os.cpu_count() or 1)


@pytest.mark.parametrize("value", ["0", "-2", "many", "1.5"])
def test_workers_must_be_positive_or_auto(value: str) -> None:
    with pytest.raises(usage.UsageError, match="workers"):
        parse("--workers", value)


def test_workers_from_config_file(tmp_path) -> None:
    config = tmp_path / "s3gateway.conf"
    config.write_text("[gateway]\nworkers = 4\n")
    assert parse("--config", str(config)).settings["workers"] == 4
    assert parse("--config", str(config), "--workers", "2").settings["workers"] == 2


def test_workers_refuse_an_endpoint_they_cannot_share() -> None:
    with pytest.raises(usage.UsageError, match="cannot share"):
        parse("--workers", "2", "--listen", "stdio:")
    # One worker serves any endpoint, as before.
    assert parse("--workers", "1", "--listen", "stdio:").settings["workers"] == 1
    assert parse("--workers", "2", "--listen", "unix:/tmp/gw.sock").settings["workers"] == 2


def test_workers_load_the_tls_files_before_starting(tmp_path) -> None:
    files = make_tls_files(tmp_path)
    listen = f"ssl:8443:privateKey={files['key']}:certKey={files['cert']}"
    assert parse("--workers", "2", "--listen", listen).settings["listen"] == listen
    missing = tmp_path / "missing.pem"
    with pytest.raises(usage.UsageError, match=f"cannot read the TLS private key {missing}"):
        parse("--workers", "2", "--listen", f"ssl:8443:privateKey={missing}")
    with pytest.raises(usage.UsageError, match="public and private keys do not match"):
        parse("--workers", "2", "--listen",
              f"ssl:8443:privateKey={files['other-key']}:certKey={files['cert']}")


def test_one_process_reads_the_tls_files_before_starting(tmp_path) -> None:
    """
    An ``ssl:`` endpoint's files are read when the options are (before twistd drops its
    privileges), and the endpoint is made of what was read: the files may be unreadable by
    the time the service starts.
    """
    (tmp_path / "tls").mkdir()
    files = make_tls_files(tmp_path / "tls")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    key.write_bytes(files["key"].read_bytes())
    cert.write_bytes(files["cert"].read_bytes())
    config = parse("--data", str(tmp_path / "data"), "--listen",
                   f"ssl:8443:privateKey={key}:certKey={cert}:interface=127.0.0.1:backlog=7")
    key.unlink()
    cert.unlink()
    reactor = MemoryReactorClock()
    service = makeService(config, reactor=reactor)
    service._endpoint().listen(object())
    ((port, _, context_factory, backlog, interface),) = reactor.sslServers
    assert (port, backlog, interface) == (8443, 7, "127.0.0.1")
    connection = SSL.Connection(context_factory.getContext(), None)
    subject = connection.get_certificate().to_cryptography().subject
    assert subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "127.0.0.1"
    # A missing file is a usage error at once, as with workers.
    with pytest.raises(usage.UsageError, match=f"cannot read the TLS private key {key}"):
        parse("--listen", f"ssl:8443:privateKey={key}")
    # An ssl: endpoint that only Twisted reads is left to it, as before.
    assert parse("--listen", f"ssl:8443:privateKey={key}:sslmethod=TLSv1_2_METHOD").tls is None
    assert parse("--listen", "tcp:8333").tls is None


def test_make_service_builds_gateway_service(tmp_path) -> None:
    reactor = MemoryReactorClock()
    service = makeService(parse("--data", str(tmp_path), "--listen", "tcp:0"), reactor=reactor)
    assert isinstance(service, GatewayService)
    assert service.settings["data"] == str(tmp_path)
    assert service.reactor is reactor


def test_plugin_is_discoverable() -> None:
    from twisted.plugin import getPlugins
    from twisted.application.service import IServiceMaker

    import twisted.plugins

    names = {plugin.tapname: plugin for plugin in getPlugins(IServiceMaker, twisted.plugins)}
    assert "s3gateway" in names
    assert names["s3gateway"].module == "gateway.tap"


def test_addressing_signature_and_cors_settings(tmp_path) -> None:
    config = tmp_path / "s3gateway.conf"
    config.write_text(
        "[gateway]\ndomains = s3.example.com, localhost\nsignature_v2 = false\n"
        "[cors]\nPhotos = https://app.example.com https://*.example.org\n* = *\n"
    )
    options = parse("--config", str(config))
    assert options.settings["domains"] == "s3.example.com, localhost"
    assert options.settings["signature_v2"] == "false"
    assert options.settings["cors"] == {
        "Photos": ["https://app.example.com", "https://*.example.org"],
        "*": ["*"],
    }


def test_bad_signature_v2_value_is_an_error() -> None:
    with pytest.raises(usage.UsageError, match="signature_v2"):
        parse("--signature-v2", "maybe")


def test_unknown_section_is_an_error(tmp_path) -> None:
    config = tmp_path / "s3gateway.conf"
    config.write_text("[gateway]\n[corz]\nx = y\n")
    with pytest.raises(usage.UsageError, match="corz"):
        parse("--config", str(config))


def test_access_log_setting(tmp_path, monkeypatch) -> None:
    assert parse().settings["access_log"] is None
    monkeypatch.chdir(tmp_path)
    assert parse("--access-log", "access.log").settings["access_log"] == str(
        tmp_path / "access.log"
    )
    config = tmp_path / "s3gateway.conf"
    config.write_text("[gateway]\naccess_log = /var/log/s3gateway/access.log\n")
    assert parse("--config", str(config)).settings["access_log"] == (
        "/var/log/s3gateway/access.log"
    )


def test_start_failing_before_the_reactor_runs_raises_to_twistd(tmp_path) -> None:
    """
    A failure before the start's first wait (an access log that cannot be opened) is raised
    from startService, where twistd reports it and exits with 1, rather than leaving a daemon
    that serves nothing.
    """
    options = parse("--data", str(tmp_path), "--listen", "tcp:0",
                    "--access-log", str(tmp_path / "missing" / "access.log"))
    service = makeService(options, reactor=MemoryReactorClock())
    with pytest.raises(FileNotFoundError):
        service.startService()


def test_start_failing_later_ends_the_process_with_1(tmp_path) -> None:
    """
    A failure once the reactor runs (the port is taken) stops twistd, which then exits with 1.
    """
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        daemon = Daemon(
            data_dir=tmp_path / "data", log_path=tmp_path / "gateway.log",
            access_key="AKIDFAILEDSTART00000", secret_key="s" * 40,
            listen=f"tcp:{busy.getsockname()[1]}:interface=127.0.0.1",
        )
        done = subprocess.run(
            daemon.command(), cwd=str(REPO_ROOT), env=daemon.env(), capture_output=True,
            text=True, timeout=60, check=False,
        )
    finally:
        busy.close()
    assert done.returncode == 1, done.stdout[-3000:]
    assert "s3gateway could not start" in done.stdout
    assert "Address already in use" in done.stdout
