"""
The supervisor of a gateway with ``--workers N``.

Twisted runs one reactor on one core; to use more, the twistd process binds the listening socket
(L{gateway.listening}) and starts N worker processes (L{gateway.worker}) that adopt it and serve
it, while the supervisor itself serves nothing. The kernel hands each new connection to whichever
worker accepts it first.

A worker that exits while the gateway runs is started again, after a delay that grows while
workers keep dying young (L{RestartBackoff}), so a crash loop does not spin. Stopping the service
closes the supervisor's copy of the socket, sends SIGTERM to every worker, which drains and exits,
and waits for them, killing any that outlive the drain timeout by more than
L{KILL_GRACE}; the service's stop (and twistd's exit) waits for that.

The workers' JSON log lines are relayed into the supervisor's log (L{gateway.logrelay}).
"""

from __future__ import annotations

import json
import os
import socket
import sys
from typing import Any, Callable, Dict, List, Mapping, Optional

from attrs import define, field
from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ProcessExitedAlready
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure

import gateway
from gateway.logrelay import LineRelay
from gateway.tls import TLSMaterial
from gateway.worker import DEFAULT_DRAIN_TIMEOUT

#: The descriptor number under which a worker receives the listening socket.
WORKER_LISTEN_FD = 3

#: Seconds a stopping worker may run past its drain timeout before it is killed.
KILL_GRACE = 5.0

#: Settings a worker needs; the others (json_log, workers, listen) belong to the supervisor.
WORKER_SETTINGS = (
    "data", "region", "create_bucket_root", "domains", "signature_v2", "cors", "access_log",
)

#: Environment variables not passed to workers: only the supervisor makes the first key.
PRIVATE_ENVIRONMENT = ("S3GW_ACCESS_KEY", "S3GW_SECRET_KEY")


@define
class RestartBackoff:
    """
    How long to wait before restarting a worker that exited.

    A worker that lived at least C{healthy_after} seconds is restarted after C{initial} seconds;
    each further one that died younger doubles the delay, up to C{maximum}.
    """

    initial: float = 0.5
    maximum: float = 30.0
    healthy_after: float = 10.0
    _failures: int = field(default=0, init=False)

    def delay(self, lifetime: float) -> float:
        """
        The delay before the restart of a worker that ran for C{lifetime} seconds.
        """
        if lifetime >= self.healthy_after:
            self._failures = 0
        delay = min(self.initial * (2**self._failures), self.maximum)
        self._failures += 1
        return delay


def worker_argv(
    settings: Mapping[str, Any], family: int, drain_timeout: float, tls: bool = False
) -> List[str]:
    """
    The command line of one worker process; with C{tls}, it serves TLS with the key and
    certificates it reads from its standard input (L{WorkerProcess.connectionMade} writes them).
    """
    worker_settings = {name: settings.get(name) for name in WORKER_SETTINGS}
    argv = [
        sys.executable, "-m", "gateway.worker",
        "--fd", str(WORKER_LISTEN_FD),
        "--family", str(int(family)),
        "--settings", json.dumps(worker_settings),
        "--drain-timeout", str(drain_timeout),
        "--supervisor-pid", str(os.getpid()),
    ]  # fmt: skip
    if tls:
        argv.append("--tls-on-stdin")
    return argv


def worker_environment(environ: Mapping[str, str]) -> Dict[str, str]:
    """
    The environment of a worker: the supervisor's, less the admin key, with the directory that
    holds the C{gateway} package first on C{PYTHONPATH} so that ``-m gateway.worker`` imports the
    same code the supervisor runs.
    """
    environment = {k: v for k, v in environ.items() if k not in PRIVATE_ENVIRONMENT}
    root = os.path.dirname(os.path.dirname(os.path.abspath(gateway.__file__)))
    existing = environment.get("PYTHONPATH")
    environment["PYTHONPATH"] = os.pathsep.join([root, existing] if existing else [root])
    return environment


class WorkerProcess(ProcessProtocol):
    """
    The supervisor's end of one worker: relays its output, reports its end.
    """

    def __init__(self, supervisor: "WorkerSupervisor", started: float) -> None:
        self.supervisor = supervisor
        self.started = started
        self.ended = False
        self.pid: Optional[int] = None
        self._stdout: Optional[LineRelay] = None
        self._stderr: Optional[LineRelay] = None

    def connectionMade(self) -> None:
        # Kept here: the transport forgets the pid once the process is reaped.
        self.pid = getattr(self.transport, "pid", None)
        self._stdout = LineRelay(self.pid or 0, self.supervisor.publisher, json_lines=True)
        self._stderr = LineRelay(self.pid or 0, self.supervisor.publisher, json_lines=False)
        transport = self.transport
        assert transport is not None
        tls = self.supervisor.tls
        if tls is not None:
            # Through a pipe only this worker reads: never its command line or environment,
            # which other users may see.
            transport.write(json.dumps(tls.as_json()).encode("ascii"))
        transport.closeStdin()

    def outReceived(self, data: bytes) -> None:
        if self._stdout is not None:
            self._stdout.data_received(data)

    def errReceived(self, data: bytes) -> None:
        if self._stderr is not None:
            self._stderr.data_received(data)

    def signal(self, name: str) -> None:
        """
        Send the signal C{name} (``"TERM"``, ``"KILL"``) unless the process has exited.
        """
        if self.ended or self.transport is None:
            return
        try:
            self.transport.signalProcess(name)
        except ProcessExitedAlready:
            pass

    def processEnded(self, reason: Failure) -> None:
        self.ended = True
        for relay in (self._stdout, self._stderr):
            if relay is not None:
                relay.flush()
        self.supervisor.worker_ended(self, reason)


class WorkerSupervisor(Service):
    """
    Keeps C{count} worker processes serving one listening socket.

    :param open_socket: makes the listening socket (L{gateway.listening.SharedSocket.open});
        called when the service starts, so a port in use fails the start.
    :param release_socket: closes it when the service stops (and removes a UNIX socket's path,
        L{gateway.listening.SharedSocket.release}); by default, closes it.
    :param tls: the key and certificates with which workers serve TLS (read before twistd
        dropped privileges, handed to each worker on its standard input), or C{None} for
        plain TCP.
    :param publisher: where the workers' log events go (twisted.logger's global publisher
        unless a test gives another).
    """

    log = Logger()

    def __init__(
        self,
        reactor: Any,
        count: int,
        settings: Mapping[str, Any],
        open_socket: Callable[[], socket.socket],
        publisher: Optional[Callable[[dict], None]] = None,
        drain_timeout: float = DEFAULT_DRAIN_TIMEOUT,
        backoff: Optional[RestartBackoff] = None,
        environ: Optional[Mapping[str, str]] = None,
        tls: Optional[TLSMaterial] = None,
        release_socket: Optional[Callable[[socket.socket], None]] = None,
    ) -> None:
        if publisher is None:
            from twisted.logger import globalLogPublisher

            publisher = globalLogPublisher
        self.reactor = reactor
        self.count = count
        self.settings = settings
        self.open_socket = open_socket
        self.release_socket = release_socket or socket.socket.close
        self.publisher = publisher
        self.drain_timeout = drain_timeout
        self.backoff = backoff if backoff is not None else RestartBackoff()
        self.environ = os.environ if environ is None else environ
        self.tls = tls
        self.workers: List[WorkerProcess] = []
        self.socket: Optional[socket.socket] = None
        self._pending_restarts: List[Any] = []
        self._stopping = False
        self._all_ended: Optional[Deferred[None]] = None
        self._kill_call: Optional[Any] = None

    def startService(self) -> None:
        self.socket = self.open_socket()
        super().startService()
        self._stopping = False
        for _ in range(self.count):
            self._spawn()
        self.log.info(
            "s3gateway supervisor {pid} started {count} workers on {address}",
            pid=os.getpid(),
            count=self.count,
            address=self.socket.getsockname(),
        )

    @property
    def pids(self) -> List[int]:
        """
        The process ids of the workers running now.
        """
        return [w.pid for w in self.workers if w.pid is not None and not w.ended]

    def _spawn(self) -> None:
        """
        Start one worker; raises what starting it raised (the interpreter not executable by
        the user twistd runs as, no processes or memory left), and the worker is then not
        counted: a stop waits for no process that never was.
        """
        if self._stopping or self.socket is None:
            return
        protocol = WorkerProcess(self, self.reactor.seconds())
        self.reactor.spawnProcess(
            protocol,
            sys.executable,
            worker_argv(
                self.settings, self.socket.family, self.drain_timeout, self.tls is not None
            ),
            env=worker_environment(self.environ),
            childFDs={0: "w", 1: "r", 2: "r", WORKER_LISTEN_FD: self.socket.fileno()},
        )
        self.workers.append(protocol)

    def worker_ended(self, worker: WorkerProcess, reason: Failure) -> None:
        """
        Called by a worker's protocol when its process has ended: restart it, unless stopping.
        """
        if worker in self.workers:
            self.workers.remove(worker)
        if self._stopping:
            if not self.workers and self._all_ended is not None:
                self._workers_gone()
            return
        delay = self.backoff.delay(self.reactor.seconds() - worker.started)
        self.log.warn(
            "worker {pid} exited ({reason}); starting another in {delay:.1f}s",
            pid=worker.pid,
            reason=reason.getErrorMessage(),
            delay=delay,
        )
        call = self.reactor.callLater(delay, self._restart)
        self._pending_restarts.append(call)

    def _restart(self) -> None:
        """
        Start a worker in place of one that ended; if it cannot be started (a fork refused
        for want of processes or memory, months into a run), try again later, with the same
        growing delay as for a worker that dies young, rather than serve with one fewer for
        good.
        """
        self._pending_restarts = [c for c in self._pending_restarts if c.active()]
        try:
            self._spawn()
        except Exception:
            delay = self.backoff.delay(0.0)
            self.log.failure(
                "could not start a worker; trying again in {delay:.1f}s", delay=delay
            )
            self._pending_restarts.append(self.reactor.callLater(delay, self._restart))

    def stopService(self) -> "Deferred[None]":
        """
        Stop accepting, ask every worker to drain and exit; fires when all have exited.
        """
        super().stopService()
        self._stopping = True
        for call in self._pending_restarts:
            if call.active():
                call.cancel()
        self._pending_restarts = []
        if self.socket is not None:
            self.release_socket(self.socket)
        if not self.workers:
            return succeed(None)
        self._all_ended = Deferred()
        for worker in list(self.workers):
            worker.signal("TERM")
        self._kill_call = self.reactor.callLater(
            self.drain_timeout + KILL_GRACE, self._kill_remaining
        )
        return self._all_ended

    def _kill_remaining(self) -> None:
        self._kill_call = None
        for worker in list(self.workers):
            self.log.warn("worker {pid} did not stop in time; killing it", pid=worker.pid)
            worker.signal("KILL")

    def _workers_gone(self) -> None:
        if self._kill_call is not None and self._kill_call.active():
            self._kill_call.cancel()
        self._kill_call = None
        done, self._all_ended = self._all_ended, None
        self.log.info("all workers stopped")
        if done is not None:
            done.callback(None)
