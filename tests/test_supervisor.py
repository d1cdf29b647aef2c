"""
The pieces of ``--workers`` without processes: the supervisor on a memory reactor with a fake
``spawnProcess``, its restart backoff, the endpoint parser, the log relay and the drain.
"""

from __future__ import annotations

import errno
import io
import os
import socket
import stat
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.interfaces import IProtocolNegotiationFactory
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import Logger, LogLevel, capturedLogs, eventAsJSON
from twisted.python.failure import Failure
from twisted.web import http
from twisted.web.resource import Resource

from gateway import listening as listening_module
from gateway.drain import IDLE_CLOSE_GRACE, ConnectionTracker, drain
from gateway.http.streaming import StreamingSite
from gateway.listening import (
    DEFAULT_BACKLOG,
    ListenSpec,
    SharedSocket,
    SocketPathInUse,
    UnsupportedEndpoint,
    open_listening_socket,
    parse_listen,
    split_endpoint,
)
from gateway.logrelay import LineRelay
from gateway.tls import TLSFiles, TLSMaterial, TLSSetupError
from gateway.worker import parse_arguments, portable_event, read_tls_material
from gateway.workers import (
    KILL_GRACE,
    WORKER_LISTEN_FD,
    RestartBackoff,
    WorkerSupervisor,
)

SETTINGS = {"data": "/srv/gw", "region": "eu-west-1", "create_bucket_root": None,
            "listen": "tcp:0", "json_log": "/x.json", "workers": 2}


class FakeProcess:
    """
    What C{spawnProcess} returns: records the signals sent to it, and what was written to its
    standard input before that was closed.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.signals: List[str] = []
        self.stdin = b""
        self.stdin_closed = False

    def signalProcess(self, name: str) -> None:
        self.signals.append(name)

    def write(self, data: bytes) -> None:
        assert not self.stdin_closed
        self.stdin += data

    def closeStdin(self) -> None:
        self.stdin_closed = True


class ProcessReactor(MemoryReactorClock):
    """
    A memory reactor that records C{spawnProcess} calls instead of starting processes.
    """

    def __init__(self) -> None:
        super().__init__()
        self.spawned: List[Dict[str, Any]] = []
        self._next_pid = 1000
        #: How many of the next spawns fail, as a fork refused or an interpreter the user
        #: may not run would.
        self.refuse = 0

    def spawnProcess(self, protocol, executable, args=(), env=None, path=None, uid=None,
                     gid=None, usePTY=False, childFDs=None):  # type: ignore[no-untyped-def]
        if self.refuse:
            self.refuse -= 1
            raise PermissionError(13, "Permission denied", executable)
        self._next_pid += 1
        process = FakeProcess(self._next_pid)
        protocol.makeConnection(process)
        self.spawned.append(dict(protocol=protocol, process=process, executable=executable,
                                 args=list(args), env=env, childFDs=childFDs))
        return process


def end(spawn: Dict[str, Any], reason: Optional[Failure] = None) -> None:
    spawn["process"].pid = None  # as Twisted's transport does once the process is reaped
    spawn["protocol"].processEnded(reason or Failure(ProcessTerminated(signal=9)))


@pytest.fixture
def listening() -> Any:
    sock = open_listening_socket(ListenSpec(family=socket.AF_INET, interface="127.0.0.1"))
    yield sock
    sock.close()


def make_supervisor(reactor: ProcessReactor, listening: Any, events: list,
                    count: int = 2) -> WorkerSupervisor:
    return WorkerSupervisor(
        reactor, count, SETTINGS, lambda: listening, publisher=events.append,
        drain_timeout=30.0, environ={"PATH": "/bin", "S3GW_SECRET_KEY": "secret",
                                     "S3GW_ACCESS_KEY": "AKID", "PYTHONPATH": "/elsewhere"},
    )


def test_start_spawns_workers_with_the_socket(listening) -> None:
    reactor = ProcessReactor()
    supervisor = make_supervisor(reactor, listening, [])
    supervisor.startService()
    assert len(reactor.spawned) == 2
    for spawn in reactor.spawned:
        assert spawn["childFDs"] == {0: "w", 1: "r", 2: "r", WORKER_LISTEN_FD: listening.fileno()}
        args = spawn["args"]
        assert args[1:3] == ["-m", "gateway.worker"]
        assert args[args.index("--fd") + 1] == str(WORKER_LISTEN_FD)
        assert args[args.index("--family") + 1] == str(int(socket.AF_INET))
        assert '"region": "eu-west-1"' in args[args.index("--settings") + 1]
        assert "json_log" not in args[args.index("--settings") + 1]
        assert "S3GW_SECRET_KEY" not in spawn["env"] and "S3GW_ACCESS_KEY" not in spawn["env"]
        assert spawn["env"]["PYTHONPATH"].endswith("/elsewhere")
        assert "--tls-on-stdin" not in args
        # A worker reads nothing from its standard input, which is closed at once.
        assert spawn["process"].stdin == b"" and spawn["process"].stdin_closed
    assert sorted(supervisor.pids) == [1001, 1002]


def test_worker_without_its_tls_material_refuses_to_start() -> None:
    """
    A worker told to read TLS from its standard input that finds nothing there (a supervisor
    gone before it wrote) stops with a clear error.
    """
    with pytest.raises(TLSSetupError, match="no TLS key and certificates on standard input"):
        read_tls_material(io.BytesIO(b""))
    with pytest.raises(TLSSetupError, match="no TLS key and certificates on standard input"):
        read_tls_material(io.BytesIO(b'{"files": {}}'))


def test_workers_are_handed_the_tls_material_on_stdin(listening) -> None:
    """
    The key and certificates the supervisor read go to each worker through its standard input,
    which is then closed; the command line only says to read them there.
    """
    reactor = ProcessReactor()
    files = TLSFiles("/etc/gw/key.pem", "/etc/gw/cert.pem", extra_cert_chain="/etc/gw/chain.pem")
    material = TLSMaterial(files, b"-----KEY-----", b"-----CERT-----", b"-----CHAIN-----")
    supervisor = WorkerSupervisor(reactor, 2, SETTINGS, lambda: listening, publisher=[].append,
                                  tls=material)
    supervisor.startService()
    for spawn in reactor.spawned:
        args = spawn["args"]
        arguments = parse_arguments(args[3:])
        assert arguments.tls_on_stdin and arguments.fd == WORKER_LISTEN_FD
        assert not any("KEY" in arg or "/etc/gw" in arg for arg in args)
        process = spawn["process"]
        assert process.stdin_closed
        assert read_tls_material(io.BytesIO(process.stdin)) == material
    # A worker started again later is handed the same, with no file read.
    end(reactor.spawned[0])
    reactor.advance(60)
    assert read_tls_material(io.BytesIO(reactor.spawned[-1]["process"].stdin)) == material


def test_dead_worker_is_restarted_after_a_growing_delay(listening) -> None:
    reactor = ProcessReactor()
    supervisor = make_supervisor(reactor, listening, [])
    supervisor.startService()
    end(reactor.spawned[0])
    assert len(reactor.spawned) == 2 and supervisor.pids == [1002]
    reactor.advance(0.4)
    assert len(reactor.spawned) == 2
    reactor.advance(0.1)
    assert len(reactor.spawned) == 3 and sorted(supervisor.pids) == [1002, 1003]
    # The replacement dies young: the next restart waits twice as long.
    end(reactor.spawned[2])
    reactor.advance(0.9)
    assert len(reactor.spawned) == 3
    reactor.advance(0.1)
    assert len(reactor.spawned) == 4


def test_stop_terms_workers_and_waits_for_them(listening) -> None:
    reactor = ProcessReactor()
    supervisor = make_supervisor(reactor, listening, [])
    supervisor.startService()
    end(reactor.spawned[0])  # a restart is pending when the stop comes
    stopped = supervisor.stopService()
    assert listening.fileno() == -1, "the supervisor's copy of the socket is closed"
    assert reactor.spawned[1]["process"].signals == ["TERM"]
    fired: list = []
    stopped.addCallback(fired.append)
    reactor.advance(10)
    assert fired == [] and len(reactor.spawned) == 2, "no restart while stopping"
    end(reactor.spawned[1], Failure(ProcessDone(0)))
    assert fired == [None]
    reactor.advance(60)
    assert reactor.spawned[1]["process"].signals == ["TERM"]


def test_a_worker_that_cannot_be_started_fails_the_start(listening) -> None:
    """
    The start fails with what starting the worker raised, and the stop that follows waits
    only for the workers that did start (it waited for ever before, and twistd with it).
    """
    reactor = ProcessReactor()
    supervisor = make_supervisor(reactor, listening, [])
    reactor.refuse = 1
    with pytest.raises(PermissionError):
        supervisor.startService()
    assert supervisor.pids == [] and reactor.spawned == []
    fired: list = []
    supervisor.stopService().addCallback(fired.append)
    assert fired == [None]
    # One started, the next not: the stop waits for the one.
    reactor = ProcessReactor()
    supervisor = make_supervisor(reactor, listening, [])
    reactor.refuse = 0
    original = reactor.spawnProcess

    def second_refused(*args, **kwargs):  # type: ignore[no-untyped-def]
        if reactor.spawned:
            reactor.refuse = 1
        return original(*args, **kwargs)

    reactor.spawnProcess = second_refused  # type: ignore[method-assign]
    with pytest.raises(PermissionError):
        supervisor.startService()
    assert supervisor.pids == [1001]
    fired = []
    supervisor.stopService().addCallback(fired.append)
    assert fired == [] and reactor.spawned[0]["process"].signals == ["TERM"]
    end(reactor.spawned[0], Failure(ProcessDone(0)))
    assert fired == [None]


def test_a_restart_that_cannot_start_a_worker_tries_again(listening) -> None:
    """
    A worker that cannot be started in place of one that died is tried again after a
    growing delay, until one starts; a stop meanwhile cancels the tries and waits for no
    worker that never started.
    """
    reactor = ProcessReactor()
    supervisor = make_supervisor(reactor, listening, [])
    supervisor.startService()
    end(reactor.spawned[0])
    reactor.refuse = 2
    with capturedLogs() as logged:
        reactor.advance(0.5)  # the restart: refused
    assert len(reactor.spawned) == 2 and supervisor.pids == [1002]
    (failure,) = [e for e in logged if "could not start a worker" in e["log_format"]]
    assert failure["log_failure"].check(PermissionError)
    reactor.advance(0.9)
    assert len(reactor.spawned) == 2
    reactor.advance(0.1)  # the second try, a second later: refused
    reactor.advance(2.0)  # the third, two seconds later: started
    assert len(reactor.spawned) == 3 and sorted(supervisor.pids) == [1002, 1003]
    end(reactor.spawned[2])
    reactor.refuse = 1
    reactor.advance(4.0)  # refused again, and a stop comes before the next try
    assert len(reactor.spawned) == 3
    fired: list = []
    supervisor.stopService().addCallback(fired.append)
    reactor.advance(60)
    assert len(reactor.spawned) == 3 and fired == []
    end(reactor.spawned[1], Failure(ProcessDone(0)))
    assert fired == [None]


def test_stop_kills_a_worker_that_does_not_drain_in_time(listening) -> None:
    reactor = ProcessReactor()
    supervisor = make_supervisor(reactor, listening, [])
    supervisor.startService()
    stopped = supervisor.stopService()
    reactor.advance(30.0 + KILL_GRACE - 0.1)
    assert all(s["process"].signals == ["TERM"] for s in reactor.spawned)
    reactor.advance(0.1)
    assert all(s["process"].signals == ["TERM", "KILL"] for s in reactor.spawned)
    fired: list = []
    stopped.addCallback(fired.append)
    for spawn in reactor.spawned:
        end(spawn)
    assert fired == [None]


def test_worker_output_is_relayed_as_events(listening) -> None:
    reactor = ProcessReactor()
    events: list = []
    supervisor = make_supervisor(reactor, listening, events, count=1)
    supervisor.startService()
    protocol = reactor.spawned[0]["protocol"]
    logged: list = []
    Logger(namespace="s3gateway.access", observer=logged.append).info(
        "GET /{bucket} {status}", bucket="b", status=200
    )
    line = eventAsJSON(logged[0]).encode() + b"\n"
    protocol.outReceived(line[:10])
    assert events == []
    protocol.outReceived(line[10:] + b"not json\n")
    protocol.errReceived(b"Fatal Python error")
    end(reactor.spawned[0])  # flushes the unterminated stderr line
    first, second, third = events[:3]
    assert first["log_namespace"] == "s3gateway.access" and first["status"] == 200
    assert first["worker_pid"] == 1001
    assert first["log_system"] == "s3gateway.access#info worker=1001"
    assert (second["line"], second["log_level"]) == ("not json", LogLevel.info)
    assert (third["line"], third["log_level"]) == ("Fatal Python error", LogLevel.error)


def test_line_relay_splits_an_overlong_line() -> None:
    events: list = []
    relay = LineRelay(7, events.append, json_lines=False)
    relay.data_received(b"x" * (1024 * 1024 + 1))
    assert len(events) == 1 and len(events[0]["line"]) == 1024 * 1024 + 1


def test_portable_event_keeps_the_exception_text() -> None:
    try:
        1 / 0
    except ZeroDivisionError:
        failure = Failure()
    event = {"log_failure": failure, "log_format": "x"}
    portable = portable_event(event)
    assert portable["log_failure"].value == "division by zero"
    assert event["log_failure"] is failure and isinstance(failure.value, ZeroDivisionError)
    assert '"division by zero"' in eventAsJSON(portable)


def test_restart_backoff() -> None:
    backoff = RestartBackoff(initial=0.5, maximum=4.0, healthy_after=10.0)
    assert [backoff.delay(1.0) for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert backoff.delay(60.0) == 0.5
    assert backoff.delay(60.0) == 0.5


@pytest.mark.parametrize(
    "description, spec",
    [
        ("tcp:8333", ListenSpec(socket.AF_INET, "", 8333, DEFAULT_BACKLOG)),
        ("tcp:8333:interface=127.0.0.1", ListenSpec(socket.AF_INET, "127.0.0.1", 8333)),
        ("tcp:port=80:backlog=512", ListenSpec(socket.AF_INET, "", 80, 512)),
        ("tcp:80:interface=\\:\\:1", ListenSpec(socket.AF_INET6, "::1", 80)),
        ("tcp6:80", ListenSpec(socket.AF_INET6, "::", 80)),
        ("systemd:domain=INET6:index=1", ListenSpec(socket.AF_INET6, inherited_fd=4)),
    ],
)
def test_parse_listen(description: str, spec: ListenSpec) -> None:
    assert parse_listen(description) == spec


def test_parse_listen_tls(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert parse_listen("ssl:443:privateKey=k.pem:interface=127.0.0.1:backlog=9") == ListenSpec(
        socket.AF_INET, "127.0.0.1", 443, 9, tls=TLSFiles.from_keywords(privateKey="k.pem")
    )
    # Twisted's positional order: port, privateKey, certKey (sslmethod, refused, comes next).
    assert parse_listen("ssl:8443:/etc/k.pem:/etc/c.pem:dhParameters=dh.pem") == ListenSpec(
        socket.AF_INET, "", 8443,
        tls=TLSFiles("/etc/k.pem", "/etc/c.pem", dh_parameters=str(tmp_path / "dh.pem")),
    )
    assert parse_listen("ssl:443:interface=\\:\\:1:extraCertChain=/c").tls == TLSFiles(
        str(tmp_path / "server.pem"), str(tmp_path / "server.pem"), extra_cert_chain="/c"
    )
    assert parse_listen("ssl:443:interface=\\:\\:1").family == socket.AF_INET6


@pytest.mark.parametrize(
    "description",
    ["ssl:443:privateKey=k.pem:sslmethod=TLSv1_2_METHOD", "ssl:443:k.pem:c.pem:TLSv1_METHOD",
     "ssl:privateKey=k.pem", "ssl:443:frobnicate=1", "systemd:domain=UNIX:index=0", "tcp:http",
     "tcp", "tcp:80:frobnicate=1", "tcp:80:a:9:x", "8333", "unix:", "unix:/run/gw.sock:mode=9",
     "unix:/run/gw.sock:mode=17777", "unix:/run/gw.sock:lockfile=2",
     "unix:/run/gw.sock:frobnicate=1", "unix:/run/gw.sock:666:50:1:extra", "unix:\0abstract"],
)
def test_parse_listen_refuses(description: str) -> None:
    with pytest.raises(UnsupportedEndpoint):
        parse_listen(description)


def test_parse_listen_unix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_listen("unix:/run/gw.sock") == ListenSpec(
        socket.AF_UNIX, path="/run/gw.sock", mode=0o666
    )
    assert parse_listen("unix:/run/gw.sock:mode=660:backlog=128:lockfile=0") == ListenSpec(
        socket.AF_UNIX, path="/run/gw.sock", mode=0o660, backlog=128
    )
    assert parse_listen("unix:/run/gw.sock:600:10") == ListenSpec(
        socket.AF_UNIX, path="/run/gw.sock", mode=0o600, backlog=10
    )
    # A relative path is the supervisor's: made absolute for the workers.
    monkeypatch.chdir(tmp_path)
    assert parse_listen("unix:gw.sock").path == str(tmp_path / "gw.sock")


def test_split_endpoint_escapes() -> None:
    assert split_endpoint("tcp:80:interface=\\:\\:1") == ("tcp", ["80"], {"interface": "::1"})


def test_open_listening_socket_listens_non_blocking() -> None:
    sock = open_listening_socket(ListenSpec(socket.AF_INET, "127.0.0.1", 0))
    try:
        assert sock.getblocking() is False
        socket.create_connection(sock.getsockname(), timeout=5).close()
    finally:
        sock.close()


def test_shared_unix_socket_made_with_its_mode_and_removed(tmp_path: Path) -> None:
    path = tmp_path / "gw.sock"
    shared = SharedSocket(ListenSpec(socket.AF_UNIX, path=str(path), mode=0o640))
    listening = shared.open()
    assert listening.getblocking() is False
    assert stat.S_ISSOCK(path.lstat().st_mode) and stat.S_IMODE(path.lstat().st_mode) == 0o640
    client = socket.socket(socket.AF_UNIX)
    client.connect(str(path))
    client.close()
    shared.release(listening)
    assert listening.fileno() == -1
    assert not path.exists()


def test_shared_unix_socket_replaces_a_stale_one_only(tmp_path: Path) -> None:
    """
    A socket left by a process that died is replaced; one that a process listens on, or a file
    that is not a socket, is left, and the start fails.
    """
    path = tmp_path / "gw.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()  # the path stays, and nobody listens
    shared = SharedSocket(ListenSpec(socket.AF_UNIX, path=str(path)))
    listening = shared.open()
    try:
        with pytest.raises(SocketPathInUse):
            SharedSocket(ListenSpec(socket.AF_UNIX, path=str(path))).open()
        assert path.exists()
    finally:
        shared.release(listening)
    path.write_text("not a socket")
    with pytest.raises(OSError) as raised:
        SharedSocket(ListenSpec(socket.AF_UNIX, path=str(path))).open()
    assert raised.value.errno == errno.EADDRINUSE
    assert path.read_text() == "not a socket"


def test_shared_unix_socket_with_a_busy_listener_is_in_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    A listener whose backlog is full does not take the probe's connection: that is a process
    listening all the same, not a stale socket to remove.
    """
    monkeypatch.setattr(listening_module, "STALE_PROBE_SECONDS", 0.2)
    path = tmp_path / "gw.sock"
    busy = socket.socket(socket.AF_UNIX)
    busy.bind(str(path))
    busy.listen(0)
    waiting = []
    try:
        while True:
            client = socket.socket(socket.AF_UNIX)
            client.setblocking(False)
            waiting.append(client)
            try:
                client.connect(str(path))
            except BlockingIOError:
                break
        with pytest.raises(SocketPathInUse):
            SharedSocket(ListenSpec(socket.AF_UNIX, path=str(path))).open()
        assert stat.S_ISSOCK(path.lstat().st_mode)
    finally:
        for client in waiting:
            client.close()
        busy.close()


def test_shared_unix_socket_leaves_a_path_made_since(tmp_path: Path) -> None:
    """
    A path that another process bound again after this one started is not removed on release.
    """
    path = tmp_path / "gw.sock"
    shared = SharedSocket(ListenSpec(socket.AF_UNIX, path=str(path)))
    listening = shared.open()
    os.unlink(path)
    other = socket.socket(socket.AF_UNIX)
    other.bind(str(path))
    try:
        shared.release(listening)
        assert stat.S_ISSOCK(path.lstat().st_mode)
    finally:
        other.close()


def test_shared_tcp_socket_released_by_closing() -> None:
    shared = SharedSocket(ListenSpec(socket.AF_INET, "127.0.0.1", 0))
    listening = shared.open()
    address = listening.getsockname()
    shared.release(listening)
    with pytest.raises(OSError):
        socket.create_connection(address, timeout=5).close()


class FakeTransport:
    def __init__(self) -> None:
        self.disconnected = False
        self.calls: List[str] = []

    def loseConnection(self) -> None:
        self.calls.append("lose")
        self.disconnected = True

    def abortConnection(self) -> None:
        self.calls.append("abort")
        self.disconnected = True


class FakeChannel:
    def __init__(self, busy: bool) -> None:
        self.transport = FakeTransport()
        self.requests = [object()] if busy else []
        self.persistent = True


class FakeSite:
    def __init__(self) -> None:
        self.built: list = []

    def buildProtocol(self, addr: Any) -> Any:
        channel = FakeChannel(busy=addr == "busy")
        self.built.append(channel)
        return channel


def test_tracker_offers_http_1_1_over_alpn(monkeypatch) -> None:
    # twisted.web offers h2 too where the h2 package is installed; the gateway's channel does
    # not speak it.
    monkeypatch.setattr(http, "H2_ENABLED", True)
    tracker = ConnectionTracker(StreamingSite(Resource()))
    assert IProtocolNegotiationFactory.providedBy(tracker)
    assert tracker.acceptableProtocols() == [b"http/1.1"]


def test_drain_closes_idle_waits_for_busy() -> None:
    reactor = MemoryReactorClock()
    tracker = ConnectionTracker(FakeSite())
    idle, busy = tracker.buildProtocol("idle"), tracker.buildProtocol("busy")
    result: list = []
    drain(tracker, reactor, timeout=30.0).addCallback(result.append)
    assert idle.transport.calls == ["lose"]
    assert busy.transport.calls == [] and busy.persistent is False
    reactor.advance(5)
    assert result == []
    busy.requests = []  # the response is done; twisted.web would now close it
    busy.transport.disconnected = True
    reactor.advance(0.1)
    assert result == [0] and busy.transport.calls == []


def test_drain_cuts_an_idle_connection_that_does_not_close() -> None:
    # As over TLS: closing waits for the client's close_notify, which an idle client never sends.
    reactor = MemoryReactorClock()
    tracker = ConnectionTracker(FakeSite())
    idle = tracker.buildProtocol("idle")
    idle.transport.loseConnection = lambda: idle.transport.calls.append("lose")
    result: list = []
    drain(tracker, reactor, timeout=30.0).addCallback(result.append)
    reactor.pump([0.1] * int(IDLE_CLOSE_GRACE / 0.1 - 1))
    assert idle.transport.calls == ["lose"] and result == []
    reactor.pump([0.1] * 3)
    assert idle.transport.calls == ["lose", "abort"]
    # Cut before the deadline: not counted among the connections aborted there.
    assert result == [0]


def test_drain_aborts_at_the_deadline() -> None:
    reactor = MemoryReactorClock()
    tracker = ConnectionTracker(FakeSite())
    busy = tracker.buildProtocol("busy")
    result: list = []
    drain(tracker, reactor, timeout=3.0).addCallback(result.append)
    reactor.pump([0.1] * 29)
    assert result == []
    reactor.pump([0.1] * 2)
    assert result == [1] and busy.transport.calls == ["abort"]


def test_accept_fairly_caps_accepts_per_wakeup() -> None:
    from gateway.worker import accept_fairly

    class FakePort:
        numberAccepts = 100
        seen: List[int] = []

        def doRead(self) -> None:
            self.seen.append(self.numberAccepts)
            self.numberAccepts += 20  # as tcp.Port does after a full batch

    port = FakePort()
    accept_fairly(port, per_wakeup=2)
    port.doRead()
    port.doRead()
    assert port.seen == [2, 2]


def _access_event() -> dict:
    logged: list = []
    Logger(namespace="s3gateway.access", observer=logged.append).info(
        "{access_line}", access_line="GET /b/k 200", status=200, duration_ms=1.5,
        disconnected=False, key="k{}\n\u00e9", note=None,
    )
    return logged[0]


def test_event_as_json_plain_event_round_trips() -> None:
    """
    An event of plain fields (an access-log event) is written without twisted.logger's
    flattening, and read back by the relay as twisted.logger would read eventAsJSON's text.
    """
    from twisted.logger import eventFromJSON, formatEvent

    from gateway.logrelay import event_as_json

    text = event_as_json(_access_event())
    assert "log_flattened" not in text
    events: list = []
    LineRelay(5, events.append, json_lines=True).data_received(text.encode() + b"\n")
    (relayed,) = events
    expected = eventFromJSON(eventAsJSON(_access_event()))
    for name in ("log_level", "log_namespace", "log_format", "status", "duration_ms", "key",
                 "disconnected", "note", "access_line", "log_logger"):
        assert relayed[name] == expected[name], name
    assert relayed["log_level"] is LogLevel.info
    assert formatEvent(relayed) == "GET /b/k 200"
    assert relayed["worker_pid"] == 5


def test_event_as_json_other_events_take_twisted_way() -> None:
    from gateway.logrelay import event_as_json

    try:
        1 / 0
    except ZeroDivisionError:
        failure = Failure()
    logged: list = []
    Logger(namespace="x", observer=logged.append).failure("boom {n}", failure, n=(1, 2))
    text = event_as_json(portable_event(logged[0]))
    assert "log_flattened" in text
    events: list = []
    LineRelay(5, events.append, json_lines=True).data_received(text.encode() + b"\n")
    (relayed,) = events
    assert relayed["log_level"] is LogLevel.critical
    assert relayed["log_failure"].value == "division by zero"


def test_relay_reads_a_string_that_looks_like_a_level_marker() -> None:
    logged: list = []
    Logger(namespace="x", observer=logged.append).info("{v}", v="__class_uuid__")
    from gateway.logrelay import event_as_json

    events: list = []
    LineRelay(5, events.append, json_lines=True).data_received(
        event_as_json(logged[0]).encode() + b"\n"
    )
    assert events[0]["v"] == "__class_uuid__" and events[0]["log_level"] is LogLevel.info
