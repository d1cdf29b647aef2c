"""
Helpers that run the gateway daemon and S3 clients with an environment the tests control.

Test machines export ``AWS_CA_BUNDLE``, ``REQUESTS_CA_BUNDLE``, ``SSL_CERT_FILE`` and may put a
pyenv ``aws`` shim first on ``PATH``; a client that picked any of those up would test the machine,
not the gateway. So every subprocess gets an environment built from scratch and is named by an
absolute path, and every subprocess has a timeout.

Also here: a small, independent AWS Signature Version 4 signer (written from the AWS document
"Authenticating Requests (AWS Signature Version 4)", not taken from botocore, so that the gateway's
verifier is checked against a second implementation) and a raw HTTP helper for requests that no
client library will send (tampered chunks, wrong hashes, skewed clocks).
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple
from urllib.parse import quote
from xml.etree import ElementTree

from attrs import define, field, frozen

from gateway.listening import parse_listen

#: The checkout that holds ``gateway/`` and ``twisted/plugins/``.
REPO_ROOT = Path(__file__).resolve().parents[2]

#: Seconds a client subprocess may run before the test fails.
CLIENT_TIMEOUT = 180

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def venv_bin(name: str) -> Path:
    """
    A script installed next to the running interpreter (the venv's ``twistd``, ``aws``, ``s3cmd``).
    """
    return Path(sys.executable).parent / name


def free_port() -> int:
    """
    A TCP port on 127.0.0.1 that nobody listens on right now.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def base_env(home: Path, extra: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """
    A minimal environment: the venv's bin then the system's, a private HOME, a UTF-8 locale, and
    none of the host's CA or AWS variables.
    """
    env = {
        "PATH": os.pathsep.join([str(venv_bin("")), "/usr/local/bin", "/usr/bin", "/bin"]),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TMPDIR": os.environ.get("TMPDIR", "/tmp"),
    }
    env.update(extra or {})
    return env


def client_env(
    home: Path, access_key: str, secret_key: str, region: str = "us-east-1"
) -> Dict[str, str]:
    """
    The environment of an AWS client: credentials and region given, config files that exist and
    are empty (so no profile of the host leaks in), no pager.
    """
    home.mkdir(parents=True, exist_ok=True)
    config = home / "aws-config"
    credentials = home / "aws-credentials"
    config.write_text("")
    credentials.write_text("")
    return base_env(
        home,
        {
            "AWS_ACCESS_KEY_ID": access_key,
            "AWS_SECRET_ACCESS_KEY": secret_key,
            "AWS_DEFAULT_REGION": region,
            "AWS_CONFIG_FILE": str(config),
            "AWS_SHARED_CREDENTIALS_FILE": str(credentials),
            "AWS_PAGER": "",
            "AWS_EC2_METADATA_DISABLED": "true",
        },
    )


def run(
    argv: Sequence[str],
    env: Mapping[str, str],
    cwd: Optional[Path] = None,
    timeout: float = CLIENT_TIMEOUT,
    check: bool = True,
) -> "subprocess.CompletedProcess[str]":
    """
    Run a command to completion with a timeout; with C{check}, fail with its output shown.
    """
    result = subprocess.run(
        [str(arg) for arg in argv],
        env=dict(env),
        cwd=str(cwd) if cwd else None,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, argv))} exited {result.returncode}\n"
            f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
        )
    return result


@define
class Daemon:
    """
    One ``twistd -n s3gateway`` process on loopback, with its data directory and log file.
    """

    data_dir: Path
    log_path: Path
    access_key: str
    secret_key: str = field(repr=False)
    port: int = field(factory=free_port)
    extra_args: Tuple[str, ...] = ()
    region: str = "us-east-1"
    extra_env: Mapping[str, str] = field(factory=dict)
    #: The endpoint string; plain HTTP on 127.0.0.1 and L{port} when C{None}.
    listen: Optional[str] = None
    process: Optional["subprocess.Popen[bytes]"] = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> Dict[str, str]:
        return base_env(
            self.data_dir.parent,
            {
                "PYTHONPATH": str(REPO_ROOT),
                "S3GW_ACCESS_KEY": self.access_key,
                "S3GW_SECRET_KEY": self.secret_key,
                **self.extra_env,
            },
        )

    def start(self, timeout: float = 30.0) -> None:
        """
        Start the daemon and wait until its port accepts connections.
        """
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        try:
            self.process = subprocess.Popen(
                self.command(),
                cwd=str(REPO_ROOT),
                env=self.env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"gateway exited with {self.process.returncode}:\n{self.log_tail()}"
                )
            try:
                self._connect_once()
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"gateway did not listen within {timeout}s:\n{self.log_tail()}")

    def command(self) -> List[str]:
        """
        The daemon's command line (run in the repository, with L{env}).
        """
        return [
            str(venv_bin("twistd")), "-n", "--pidfile=", "s3gateway",
            "--data", str(self.data_dir),
            "--listen", self.listen or f"tcp:{self.port}:interface=127.0.0.1",
            "--region", self.region,
            *self.extra_args,
        ]  # fmt: skip

    def _connect_once(self) -> None:
        """
        Connect to where the daemon listens and hang up: its UNIX socket's path for a ``unix:``
        endpoint, else 127.0.0.1 and L{port}.
        """
        if self.listen is not None and self.listen.startswith("unix:"):
            probe = socket.socket(socket.AF_UNIX)
            try:
                probe.settimeout(1)
                probe.connect(parse_listen(self.listen).path)
            finally:
                probe.close()
            return
        socket.create_connection(("127.0.0.1", self.port), timeout=1).close()

    def stop(self, timeout: float = 15.0) -> None:
        """
        Stop the daemon (SIGTERM, then SIGKILL) and wait for it.
        """
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def admin(self, *args: str, as_json: bool = False) -> "subprocess.CompletedProcess[str]":
        """
        Run ``python -m gateway.admin --data DATA [--json] ARGS...``; fail on a non-zero status.
        """
        argv = [sys.executable, "-m", "gateway.admin", "--data", str(self.data_dir)]
        if as_json:
            argv.append("--json")
        return run([*argv, *args], env=self.env(), cwd=REPO_ROOT, timeout=60)

    def add_connection(
        self, bucket: str, path: Path, user: str = "admin", read_only: bool = False
    ) -> None:
        args = ["connection", "add", user, bucket, "--backend", "local", "--path", str(path)]
        if read_only:
            args.append("--read-only")
        self.admin(*args)

    def add_user(self, name: str) -> Tuple[str, str]:
        """
        Make a user; return its first access key pair.
        """
        out = json.loads(self.admin("user", "add", name, as_json=True).stdout)
        return out["access_key_id"], out["secret_access_key"]


def find_aws_v1() -> Path:
    return venv_bin("aws")


def find_aws_v2() -> Tuple[Optional[Path], str]:
    """
    Debian's ``awscli`` (v2) at /usr/bin/aws, or C{None} and why not.
    """
    path = Path("/usr/bin/aws")
    if not path.exists():
        return None, "/usr/bin/aws is absent (install Debian's awscli package for aws cli v2)"
    probe = run([path, "--version"], env=base_env(Path("/tmp")), timeout=60, check=False)
    version = (probe.stdout + probe.stderr).strip()
    if not version.startswith("aws-cli/2"):
        return None, f"/usr/bin/aws is not aws cli v2: {version!r}"
    return path, version


@frozen
class AwsCli:
    """
    An aws cli (v1 or v2) bound to the gateway's endpoint and one user's keys.
    """

    path: Path
    major: int
    env: Mapping[str, str]
    endpoint: str

    def __call__(
        self, *args: str, check: bool = True, cwd: Optional[Path] = None
    ) -> "subprocess.CompletedProcess[str]":
        return run(
            [self.path, "--endpoint-url", self.endpoint, *args],
            env=self.env,
            cwd=cwd,
            check=check,
        )

    def api(self, *args: str) -> dict:
        """
        An ``aws s3api`` call with JSON output, parsed (empty output gives C{{}}).
        """
        out = self("s3api", *args, "--output", "json").stdout.strip()
        return json.loads(out) if out else {}


@frozen
class S3cmd:
    """
    The venv's s3cmd with a generated config file: path-style addressing, plain HTTP, SigV4.
    """

    config: Path
    env: Mapping[str, str]

    @classmethod
    def configure(
        cls, home: Path, port: int, access_key: str, secret_key: str
    ) -> "S3cmd":
        home.mkdir(parents=True, exist_ok=True)
        config = home / "s3cfg"
        config.write_text(
            "[default]\n"
            f"access_key = {access_key}\n"
            f"secret_key = {secret_key}\n"
            f"host_base = 127.0.0.1:{port}\n"
            f"host_bucket = 127.0.0.1:{port}\n"
            "bucket_location = us-east-1\n"
            "use_https = False\n"
            "signature_v2 = False\n"
            "check_ssl_certificate = False\n"
            "progress_meter = False\n"
            "max_retries = 2\n"
            "socket_timeout = 30\n"
        )
        return cls(config=config, env=base_env(home))

    def __call__(
        self, *args: str, check: bool = True
    ) -> "subprocess.CompletedProcess[str]":
        return run([venv_bin("s3cmd"), "-c", self.config, *args], env=self.env, check=check)


def uri_encode(text: str, safe: str = "") -> str:
    """
    SigV4's UriEncode: every byte but the unreserved characters percent-encoded, upper-case hex.
    """
    return quote(text, safe="-_.~" + safe)


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()


@frozen
class Signer:
    """
    AWS Signature Version 4 for S3, header form, computed from the AWS document.
    """

    access_key: str
    secret_key: str = field(repr=False)
    region: str = "us-east-1"

    def scope(self, when: datetime) -> str:
        return f"{when:%Y%m%d}/{self.region}/s3/aws4_request"

    def signing_key(self, when: datetime) -> bytes:
        key = _hmac(("AWS4" + self.secret_key).encode("utf-8"), f"{when:%Y%m%d}")
        for part in (self.region, "s3", "aws4_request"):
            key = _hmac(key, part)
        return key

    def sign(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        payload_hash: str,
        query: Iterable[Tuple[str, str]] = (),
        when: Optional[datetime] = None,
    ) -> Tuple[Dict[str, str], str]:
        """
        Sign a request whose C{path} is already percent-encoded as it goes on the wire.

        :return: the headers to send (C{headers} plus Host, X-Amz-Date, X-Amz-Content-SHA256
            and Authorization) and the signature, which seeds a chunked upload.
        """
        when = when or datetime.now(timezone.utc)
        amz_date = f"{when:%Y%m%dT%H%M%SZ}"
        out = dict(headers)
        out["x-amz-date"] = amz_date
        out["x-amz-content-sha256"] = payload_hash
        signed = {name.lower(): " ".join(str(value).split()) for name, value in out.items()}
        names = sorted(signed)
        canonical_query = "&".join(
            f"{uri_encode(k)}={uri_encode(v)}" for k, v in sorted(query)
        )
        canonical = "\n".join(
            [
                method,
                path,
                canonical_query,
                "".join(f"{name}:{signed[name]}\n" for name in names),
                ";".join(names),
                payload_hash,
            ]
        )
        string_to_sign = "\n".join(
            [
                "AWS4-HMAC-SHA256",
                amz_date,
                self.scope(when),
                hashlib.sha256(canonical.encode("utf-8")).hexdigest(),
            ]
        )
        signature = hmac.new(
            self.signing_key(when), string_to_sign.encode("utf-8"), hashlib.sha256
        ).hexdigest()
        out["Authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={self.access_key}/{self.scope(when)}, "
            f"SignedHeaders={';'.join(names)}, Signature={signature}"
        )
        return out, signature

    def chunk_signature(self, when: datetime, previous: str, chunk: bytes) -> str:
        """
        The signature of one chunk of a STREAMING-AWS4-HMAC-SHA256-PAYLOAD body.
        """
        string_to_sign = "\n".join(
            [
                "AWS4-HMAC-SHA256-PAYLOAD",
                f"{when:%Y%m%dT%H%M%SZ}",
                self.scope(when),
                previous,
                EMPTY_SHA256,
                hashlib.sha256(chunk).hexdigest(),
            ]
        )
        return hmac.new(
            self.signing_key(when), string_to_sign.encode("utf-8"), hashlib.sha256
        ).hexdigest()


@frozen
class RawResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes

    @property
    def error_code(self) -> Optional[str]:
        """
        The ``<Code>`` of an S3 error body, if the body is one.
        """
        try:
            return ElementTree.fromstring(self.body).findtext("Code")
        except ElementTree.ParseError:
            return None


def raw_request(
    port: int,
    method: str,
    target: str,
    headers: Mapping[str, str],
    body: bytes = b"",
    timeout: float = 60,
) -> RawResponse:
    """
    One HTTP/1.1 request sent exactly as given (no normalisation of the target).
    """
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        for name, value in headers.items():
            conn.putheader(name, value)
        if body and not any(name.lower() == "content-length" for name in headers):
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders()
        if body:
            conn.send(body)
        response = conn.getresponse()
        data = response.read()
        return RawResponse(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
    finally:
        conn.close()


def files_under(root: Path) -> List[Path]:
    """
    Every regular file below C{root}, recursively. A folder that goes while it is walked is
    skipped: the gateway removes what it set aside (an aborted upload's parts, a replaced large
    object) in a thread after its answer, and a test may look meanwhile.
    """
    found = []
    for folder, _, names in os.walk(root):  # os.walk skips folders it cannot list
        for name in names:
            path = Path(folder) / name
            if path.is_file():
                found.append(path)
    return sorted(found)


def tree_bytes(root: Path, skip: str = ".s3gateway") -> Dict[str, bytes]:
    """
    The files of a directory tree as C{{relative posix path: bytes}}, without the gateway's own
    state directory.
    """
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in files_under(root)
        if skip not in path.relative_to(root).parts
    }



def signed_request(
    port: int,
    signer: Signer,
    method: str,
    path: str,
    query: Sequence[Tuple[str, str]] = (),
    headers: Optional[Mapping[str, str]] = None,
    body: bytes = b"",
    payload_hash: Optional[str] = None,
    when: Optional[datetime] = None,
    canonical_path: Optional[str] = None,
) -> RawResponse:
    """
    Sign (header form) and send one request; C{path} is percent-encoded already and is signed as
    sent unless C{canonical_path} says otherwise. The payload hash defaults to the body's SHA-256.
    """
    all_headers = {"host": f"127.0.0.1:{port}", **(headers or {})}
    if payload_hash is None:
        payload_hash = hashlib.sha256(body).hexdigest()
    sent, _ = signer.sign(method, canonical_path or path, all_headers, payload_hash, query, when)
    if body or method in ("PUT", "POST"):
        sent.setdefault("Content-Length", str(len(body)))
    target = path
    if query:
        target += "?" + "&".join(f"{uri_encode(k)}={uri_encode(v)}" for k, v in query)
    return raw_request(port, method, target, sent, body)


def error_of(excinfo: object) -> Tuple[str, int]:
    """
    The S3 error code and HTTP status of a botocore C{ClientError} caught by C{pytest.raises}.
    """
    response = getattr(excinfo, "value").response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def multipart_etag(parts: Sequence[bytes]) -> str:
    """
    S3's ETag of a multipart object, computed here independently: the MD5 of the concatenated
    binary MD5s of the parts, a dash, and the number of parts.
    """
    digests = b"".join(hashlib.md5(part).digest() for part in parts)
    return f"{hashlib.md5(digests).hexdigest()}-{len(parts)}"
