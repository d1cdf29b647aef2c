"""
The servers under test, each started on loopback in its own process group and stopped by its id.

Every server serves the bucket L{bench.presign.BUCKET} with the same key pair; the gateway,
rclone and nginx serve the same directory tree (``ROOT/bench``), SeaweedFS and moto keep their own
storage and get the same objects uploaded.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from typing import Dict, List, Optional

import attr

from bench.load import connect, send_bytes
from bench.presign import ACCESS_KEY, BUCKET, SECRET_KEY, Endpoint, Signer

LOOPBACK = "127.0.0.1"
START_TIMEOUT = 60.0


class ServerError(Exception):
    """
    A server did not start, or did not become ready in time.
    """


def free_port(also_free: int = 0) -> int:
    """
    A TCP port free on loopback now (and, with C{also_free}, also that port plus it: SeaweedFS
    puts each gRPC port 10000 above its HTTP port).
    """
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind((LOOPBACK, 0))
            port = probe.getsockname()[1]
        if not also_free:
            return port
        if port + also_free < 65536:
            try:
                with socket.socket() as other:
                    other.bind((LOOPBACK, port + also_free))
                return port
            except OSError:
                continue
    raise ServerError("no free port")


def wait_for_http(endpoint: Endpoint, process: subprocess.Popen, timeout: float) -> None:
    """
    Wait until something answers HTTP on C{endpoint}, failing early if C{process} exits.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerError(f"exited with status {process.returncode} while starting")
        try:
            connection = connect(endpoint)
            try:
                send_bytes(connection, "GET", "/", b"")
                return
            finally:
                connection.close()
        except OSError:
            time.sleep(0.2)
    raise ServerError(f"nothing answered on {endpoint.base_url} within {timeout:g} s")


def ensure_bucket(endpoint: Endpoint, timeout: float = START_TIMEOUT) -> None:
    """
    Create the bucket (an already existing one is fine) and wait until it lists.
    """
    signer = Signer(endpoint)
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        connection = connect(endpoint)
        try:
            send_bytes(connection, "PUT", signer.target("PUT"), b"")
            status, body = send_bytes(
                connection, "GET", signer.target("GET", "", {"list-type": "2", "max-keys": "1"}), b""
            )
        finally:
            connection.close()
        if status == 200:
            return
        last = (status, body[:300])
        time.sleep(0.5)
    raise ServerError(f"bucket {BUCKET} does not list: {last}")


def command_output(command: List[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"unknown ({error})"
    return (done.stdout + done.stderr).strip()


@attr.s(auto_attribs=True)
class Server:
    """
    One server under test. Subclasses say how to start it.

    :ivar name: its column in the results.
    :ivar s3: whether it speaks S3 (nginx does not: it serves the files for reads only).
    :ivar own_storage: whether objects must be uploaded to it (else it serves the shared tree).
    """

    name: str
    s3: bool = True
    own_storage: bool = False
    endpoint: Optional[Endpoint] = None
    process: Optional[subprocess.Popen] = None
    log_path: Optional[str] = None
    unavailable: Optional[str] = None

    def command(self, workdir: str, root: str, port: int) -> List[str]:
        raise NotImplementedError

    def environment(self) -> Dict[str, str]:
        return dict(os.environ)

    def prepare(self, workdir: str, root: str) -> None:
        """
        Anything to do before the process starts (configuration files, users).
        """

    def working_directory(self, workdir: str) -> str:
        return workdir

    def version(self) -> str:
        raise NotImplementedError

    def start(self, workdir: str, root: str) -> Endpoint:
        """
        Start the server and wait until it serves the bucket.
        """
        own = os.path.join(workdir, self.name)
        os.makedirs(own, exist_ok=True)
        self.prepare(own, root)
        port = free_port()
        self.endpoint = Endpoint(LOOPBACK, port)
        self.log_path = os.path.join(own, "server.log")
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command(own, root, port), stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, cwd=self.working_directory(own),
                env=self.environment(), start_new_session=True,
            )
        try:
            wait_for_http(self.endpoint, self.process, START_TIMEOUT)
            if self.s3:
                ensure_bucket(self.endpoint)
        except Exception:
            self.stop()
            raise
        return self.endpoint

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stop(self, grace: float = 15.0) -> None:
        """
        SIGTERM to the server's process group (it was started as its leader), then SIGKILL to
        the group if it has not exited within C{grace} seconds.
        """
        if self.process is None or self.process.poll() is not None:
            return
        group = self.process.pid
        try:
            os.killpg(group, signal.SIGTERM)
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(group, signal.SIGKILL)
            self.process.wait(timeout=grace)
        except ProcessLookupError:
            pass

    def log_tail(self, size: int = 2000) -> str:
        if not self.log_path or not os.path.exists(self.log_path):
            return ""
        with open(self.log_path, "rb") as log:
            log.seek(max(0, os.path.getsize(self.log_path) - size))
            return log.read().decode("utf-8", "replace")


def twistd_command(python: str) -> List[str]:
    """
    How to run twistd with C{python}: the script beside it, else twistd's entry point.
    """
    script = os.path.join(os.path.dirname(python), "twistd")
    if os.path.exists(script):
        return [script]
    return [python, "-c", "import sys; from twisted.scripts.twistd import run; sys.argv[0]='twistd'; run()"]


@attr.s(auto_attribs=True)
class Gateway(Server):
    """
    This project's gateway from the source tree C{source}, with C{workers} (``None`` for the
    default single process); C{repository} is the git checkout it was copied from, if any.

    Two gateways may share one C{data} directory (store and object index), as workers do; the
    second then finds the ETags the first computed, so its first listing is not a cold one
    (C{cold_listing} false).
    """

    source: str = ""
    workers: Optional[str] = None
    python: str = sys.executable
    repository: str = ""
    data: str = ""
    cold_listing: bool = True
    _help_text: Optional[str] = attr.ib(default=None, init=False, repr=False)

    def data_directory(self, workdir: str) -> str:
        return self.data or os.path.join(workdir, "data")

    def environment(self) -> Dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = self.source + os.pathsep + env.get("PYTHONPATH", "")
        env["S3GW_ACCESS_KEY"] = ACCESS_KEY
        env["S3GW_SECRET_KEY"] = SECRET_KEY
        return env

    def working_directory(self, workdir: str) -> str:
        return self.source

    def has_workers_option(self) -> bool:
        return "--workers" in self._help()

    def _help(self) -> str:
        if self._help_text is None:
            self._help_text = _output_env(
                twistd_command(self.python) + ["s3gateway", "--help"], self.environment(),
                self.source,
            )
        return self._help_text

    def prepare(self, workdir: str, root: str) -> None:
        data = self.data_directory(workdir)
        if os.path.isdir(data):
            return
        os.makedirs(data, mode=0o700)
        admin = [self.python, "-m", "gateway.admin", "--data", data]
        for arguments in (
            ["user", "add", "admin", "--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY],
            ["connection", "add", "admin", BUCKET, "--backend", "local",
             "--path", os.path.join(root, BUCKET)],
        ):
            done = subprocess.run(
                admin + arguments, capture_output=True, text=True, env=self.environment(),
                cwd=self.source, timeout=60, check=False,
            )
            if done.returncode != 0:
                raise ServerError("gateway.admin failed: " + (done.stdout + done.stderr).strip())

    def command(self, workdir: str, root: str, port: int) -> List[str]:
        command = twistd_command(self.python) + [
            "-n", "--pidfile=", "s3gateway", "--data", self.data_directory(workdir),
            "--listen", f"tcp:{port}:interface={LOOPBACK}",
        ]
        if self.workers is not None:
            command += ["--workers", self.workers]
        if "--access-log" in self._help():
            # The access log as an operator of a busy gateway keeps it: a file of its own,
            # written by each process (the peers log no request at all).
            command += ["--access-log", os.path.join(workdir, f"access-{self.name}.log")]
        return command

    def version(self) -> str:
        repository = self.repository or self.source
        revision = command_output(["git", "-C", repository, "rev-parse", "--short", "HEAD"])
        dirty = command_output(["git", "-C", repository, "status", "--porcelain", "--", "gateway", "twisted"])
        twisted = command_output([self.python, "-c", "import twisted; print(twisted.__version__)"])
        label = revision if len(revision) < 20 else "unknown"
        if dirty and len(revision) < 20:
            label += "+local changes"
        return f"s3gateway {label} (Twisted {twisted}, Python {sys.version.split()[0]})"


def _output_env(command: List[str], env: Dict[str, str], cwd: str) -> str:
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=60, check=False, env=env, cwd=cwd
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return str(error)
    return done.stdout + done.stderr
