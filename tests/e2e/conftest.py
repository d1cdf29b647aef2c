"""
Fixtures of the end-to-end tests: one gateway daemon for the session, a fresh bucket (directory and
connection) per test, boto3 clients, the aws clis and s3cmd bound to the daemon.
"""

from __future__ import annotations

import itertools
import os
import secrets
import string
from pathlib import Path
from typing import Callable, Iterator, Optional, Tuple

import pytest
from attrs import frozen

from tests.e2e.clients import (
    AwsCli,
    Daemon,
    S3cmd,
    Signer,
    client_env,
    find_aws_v1,
    find_aws_v2,
)

boto3 = pytest.importorskip("boto3")
from botocore.config import Config  # noqa: E402

_bucket_numbers = itertools.count(1)


def _secret() -> str:
    alphabet = string.ascii_letters + string.digits + "+/"
    return "".join(secrets.choice(alphabet) for _ in range(40))


def _access_key(prefix: str) -> str:
    alphabet = string.ascii_uppercase + string.digits
    return (prefix + "".join(secrets.choice(alphabet) for _ in range(20)))[:20]


@pytest.fixture(scope="package", autouse=True)
def _aws_environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """
    Keep the host's AWS settings out of the boto3 clients made in this process: no profile, no
    config file, no CA bundle, botocore's shipped defaults.
    """
    patch = pytest.MonkeyPatch()
    empty = tmp_path_factory.mktemp("aws-home")
    for name in list(os.environ):
        if name.startswith("AWS_") or name in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
            patch.delenv(name)
    patch.setenv("AWS_CONFIG_FILE", str(empty / "config"))
    patch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty / "credentials"))
    patch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    yield
    patch.undo()


def _make_daemon(root: Path, extra_args: tuple = (), region: str = "us-east-1") -> Daemon:
    return Daemon(
        data_dir=root / "data",
        log_path=root / "gateway.log",
        access_key=_access_key("AKE2E"),
        secret_key=_secret(),
        extra_args=extra_args,
        region=region,
    )


def _started(daemon: Daemon) -> Iterator[Daemon]:
    daemon.start()
    try:
        yield daemon
    finally:
        died = not daemon.alive()
        daemon.stop()
        if died:
            print(f"gateway died during the tests; log tail:\n{daemon.log_tail()}")


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """
    The session's daemon (admin keys from S3GW_ACCESS_KEY / S3GW_SECRET_KEY).
    """
    yield from _started(_make_daemon(tmp_path_factory.mktemp("gateway")))


@pytest.fixture
def make_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Daemon]]:
    """
    A factory of extra daemons (not started), each stopped at the end of the test.
    """
    made = []

    def make(*extra_args: str, region: str = "us-east-1") -> Daemon:
        root = tmp_path_factory.mktemp("own-gateway")
        daemon = _make_daemon(root, tuple(extra_args), region)
        made.append(daemon)
        return daemon

    yield make
    for daemon in made:
        daemon.stop()


@pytest.fixture(autouse=True)
def _daemon_alive(request: pytest.FixtureRequest) -> Iterator[None]:
    """
    Fail a test loudly, with the daemon's log, if the session daemon died during it.
    """
    yield
    if "gateway" in request.fixturenames:
        daemon = request.getfixturevalue("gateway")
        assert daemon.alive(), f"the gateway died; log tail:\n{daemon.log_tail()}"


@frozen
class Bucket:
    """
    A connection of the admin user to a fresh directory.
    """

    name: str
    path: Path


def new_bucket_name() -> str:
    return f"e2e-{next(_bucket_numbers)}-{secrets.token_hex(4)}"


def add_bucket(
    daemon: Daemon, root: Path, user: str = "admin", read_only: bool = False
) -> Bucket:
    name = new_bucket_name()
    path = root / name
    path.mkdir(parents=True)
    daemon.add_connection(name, path, user=user, read_only=read_only)
    return Bucket(name, path)


@pytest.fixture
def bucket(gateway: Daemon, tmp_path: Path) -> Bucket:
    return add_bucket(gateway, tmp_path / "buckets")


def boto3_client(
    endpoint: str, access_key: str, secret_key: str, **config: object
) -> "boto3.client":
    """
    A boto3 S3 client for the gateway: path-style, us-east-1, no retries, short timeouts.
    """
    settings = dict(
        s3={"addressing_style": "path"},
        retries={"max_attempts": 1, "mode": "standard"},
        signature_version="s3v4",
        connect_timeout=10,
        read_timeout=120,
    )
    settings.update(config)
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=Config(**settings),
    )


def two_workers_and_bucket(
    make_daemon: Callable[..., Daemon], root: Path, connections: int
) -> Tuple[Daemon, Bucket, "boto3.client"]:
    """
    A started daemon with two workers, a bucket on the local backend under C{root}, and a boto3
    client for it that keeps up to C{connections} connections open.
    """
    daemon = make_daemon("--workers", "2")
    daemon.start()
    bucket = add_bucket(daemon, root)
    client = boto3_client(
        daemon.endpoint, daemon.access_key, daemon.secret_key, max_pool_connections=connections
    )
    return daemon, bucket, client


@pytest.fixture
def s3(gateway: Daemon):
    return boto3_client(gateway.endpoint, gateway.access_key, gateway.secret_key)


@pytest.fixture
def signer(gateway: Daemon) -> Signer:
    return Signer(gateway.access_key, gateway.secret_key)


@pytest.fixture(params=[1, 2], ids=["awscli-v1", "awscli-v2"])
def aws(request: pytest.FixtureRequest, gateway: Daemon, tmp_path: Path) -> AwsCli:
    """
    The aws cli, v1 (the venv's, from PyPI) and v2 (Debian's /usr/bin/aws).
    """
    path: Optional[Path]
    if request.param == 1:
        path = find_aws_v1()
    else:
        path, why = find_aws_v2()
        if path is None:
            pytest.skip(why)
    env = client_env(tmp_path / "aws-home", gateway.access_key, gateway.secret_key)
    return AwsCli(path=path, major=request.param, env=env, endpoint=gateway.endpoint)


@pytest.fixture
def s3cmd(gateway: Daemon, tmp_path: Path) -> S3cmd:
    return S3cmd.configure(
        tmp_path / "s3cmd-home", gateway.port, gateway.access_key, gateway.secret_key
    )
