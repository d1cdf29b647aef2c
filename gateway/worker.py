"""
One worker process of a gateway with ``--workers N``: ``python -m gateway.worker``.

The supervisor (L{gateway.workers}) has bound the listening socket and passes it as a file
descriptor; the worker opens the metadata store, builds the same site as a single-process gateway
(L{gateway.serving.build_site}) and adopts the socket, wrapping its connections in TLS for an
``ssl:`` endpoint with the key and certificates its supervisor writes to its standard input
(L{gateway.tls}). Its log events go to standard output as JSON lines, which the supervisor relays
into its own log.

On SIGTERM (or when its supervisor is gone) it stops accepting, lets the requests in flight
finish (L{gateway.drain}), closes the store and exits.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import signal
import sys
from typing import Any, BinaryIO, Dict, List, Optional

from twisted.internet.defer import ensureDeferred
from twisted.internet.task import LoopingCall
from twisted.logger import (
    FilteringLogObserver,
    ILogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    Logger,
    FileLogObserver,
    globalLogBeginner,
)
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.reflect import safe_str
from zope.interface import provider

from gateway.adoption import adopt_listening_port
from gateway.allocator import keep_freed_memory
from gateway.drain import ConnectionTracker, drain
from gateway.heap import freeze_startup_heap
from gateway.http.coalesce import coalesce_writes
from gateway.logrelay import event_as_json
from gateway.accessfile import AccessLogFile
from gateway.backends import BackendRegistry
from gateway.serving import build_site, open_store
from gateway.tls import TLSMaterial, TLSSetupError, options_from

#: How long a stopping worker waits for requests in flight, in seconds.
DEFAULT_DRAIN_TIMEOUT = 30.0

#: Connections a worker accepts each time the shared socket is ready (see L{accept_fairly}).
ACCEPTS_PER_WAKEUP = 1

#: How often a worker checks that its supervisor is still there, in seconds.
PARENT_CHECK_INTERVAL = 1.0

_log = Logger(namespace="gateway.worker")


def parse_arguments(argv: List[str]) -> argparse.Namespace:
    """
    The worker's command line, as L{gateway.workers.worker_argv} writes it.
    """
    parser = argparse.ArgumentParser(prog="python -m gateway.worker")
    parser.add_argument("--fd", type=int, required=True, help="the listening socket")
    parser.add_argument("--family", type=int, required=True, help="its address family")
    parser.add_argument("--settings", type=json.loads, required=True, help="settings, as JSON")
    parser.add_argument("--tls-on-stdin", action="store_true",
                        help="serve TLS with the key and certificates given on standard input "
                             "(gateway.tls.TLSMaterial, as JSON)")
    parser.add_argument("--drain-timeout", type=float, default=DEFAULT_DRAIN_TIMEOUT)
    parser.add_argument("--supervisor-pid", type=int, default=None,
                        help="stop when this process is no longer the parent")
    return parser.parse_args(argv)


class Worker:
    """
    The serving life of one worker: start, serve, drain, stop.
    """

    def __init__(
        self, reactor: Any, arguments: argparse.Namespace, tls: Optional[TLSMaterial] = None
    ) -> None:
        self.reactor = reactor
        self.arguments = arguments
        self.tls = tls
        self.store: Optional[Any] = None
        self.port: Optional[Any] = None
        self.tracker: Optional[ConnectionTracker] = None
        self.access_log: Optional[AccessLogFile] = None
        self.backends: Optional[BackendRegistry] = None
        #: The start in progress or done (its failure already handled), awaited by L{stop}.
        self.starting: Optional[Any] = None

    async def start(self) -> None:
        """
        Open the store, then adopt the listening socket and serve it.
        """
        settings = self.arguments.settings
        self.store = await open_store(settings["data"], self.reactor)
        if settings.get("access_log"):
            self.access_log = AccessLogFile(settings["access_log"], reactor=self.reactor)
        self.backends = BackendRegistry(str(settings["data"]), self.reactor)
        self.tracker = ConnectionTracker(
            build_site(self.store, settings, self.reactor, self.access_log, self.backends)
        )
        factory: Any = self.tracker
        if self.tls is not None:
            factory = TLSMemoryBIOFactory(options_from(self.tls), False, self.tracker)
        self.port = adopt_listening_port(
            self.reactor, self.arguments.fd, self.arguments.family, factory
        )
        coalesce_writes(self.port, self.reactor)
        accept_fairly(self.port)
        # The port holds its own duplicate; closing ours lets the socket close with the port.
        os.close(self.arguments.fd)
        keep_freed_memory()
        freeze_startup_heap()
        _log.info("worker {pid} serving", pid=os.getpid())

    async def stop(self) -> None:
        """
        Stop accepting, wait for the requests in flight (at most the drain timeout), close the
        store.
        """
        if self.starting is not None:
            # A stop during the start waits for it: the store's thread must be stopped, or the
            # process would not exit.
            await self.starting
        if self.port is not None:
            await self.port.stopListening()
        if self.tracker is not None:
            busy = len(self.tracker.open_channels())
            if busy:
                _log.info("worker {pid} draining {count} connection(s)", pid=os.getpid(),
                          count=busy)
            await drain(self.tracker, self.reactor, self.arguments.drain_timeout)
        if self.backends is not None:
            await self.backends.close()
        if self.store is not None:
            await self.store.close()
        if self.access_log is not None:
            self.access_log.close()
        _log.info("worker {pid} stopped", pid=os.getpid())


def read_tls_material(stream: BinaryIO) -> TLSMaterial:
    """
    The TLS material the supervisor wrote to C{stream} (the worker's standard input) and closed.

    :raise TLSSetupError: the input was not that (a supervisor gone before it wrote).
    """
    try:
        return TLSMaterial.from_json(json.loads(stream.read()))
    except (ValueError, KeyError, TypeError) as error:
        raise TLSSetupError(f"no TLS key and certificates on standard input: {error}")


def accept_fairly(port: Any, per_wakeup: int = ACCEPTS_PER_WAKEUP) -> None:
    """
    Make C{port} accept at most C{per_wakeup} connections each time the reactor finds it ready.

    Every worker is woken when a connection arrives on the shared socket. Twisted's port accepts
    in a loop until the queue is empty (up to C{numberAccepts}, which grows while the queue stays
    full), so one worker would take a whole burst of new connections, and keep them: keep-alive
    clients stay on the worker they first reached. Taking a few at a time leaves the rest to the
    workers that come back to their event loop first, which are the least busy ones.
    """
    if not hasattr(port, "numberAccepts"):
        return
    read = port.doRead

    def do_read() -> Any:
        port.numberAccepts = per_wakeup
        return read()

    port.doRead = do_read


def log_to_stdout() -> None:
    """
    Send every log event of level info and above to standard output as one JSON object per line,
    and turn stray writes to C{sys.stdout}/C{sys.stderr} into log events, so that the pipe to the
    supervisor carries only JSON.
    """
    predicate = LogLevelFilterPredicate(defaultLogLevel=LogLevel.info)
    # What jsonFileLogObserver writes, quicker for access-log events (see gateway.logrelay).
    to_json = FileLogObserver(sys.stdout, lambda event: event_as_json(event) + "\n")

    @provider(ILogObserver)
    def observer(event: Dict[str, Any]) -> None:
        try:
            to_json(portable_event(event))
        except OSError:
            # The supervisor is gone (a broken pipe): nobody reads the log any more, and the
            # worker is about to notice and stop (see watch_parent).
            pass

    filtered = FilteringLogObserver(observer, [predicate])
    globalLogBeginner.beginLoggingTo([filtered], redirectStandardIO=True)


def portable_event(event: Dict[str, Any]) -> Dict[str, Any]:
    """
    C{event}, with the exception of its failure (if any) replaced by the exception's text: JSON
    cannot carry the exception object, and the supervisor's log should still say what it was.
    """
    failure = event.get("log_failure")
    if failure is None or isinstance(getattr(failure, "value", None), str):
        return event
    portable = copy.copy(failure)
    portable.value = safe_str(failure.value)
    return dict(event, log_failure=portable)


def stop_on_signals(reactor: Any) -> None:
    """
    Stop the reactor on SIGTERM or SIGINT, once: a worker can get the same signal twice (from its
    supervisor and from a process-group or control-group kill), and Twisted's own handler would
    then try to stop a stopped reactor.
    """
    stopping = [False]

    def stop() -> None:
        if not stopping[0] and reactor.running:
            stopping[0] = True
            reactor.stop()

    def handler(signum: int, frame: Any) -> None:
        reactor.callFromThread(stop)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def watch_parent(reactor: Any, parent: int) -> LoopingCall:
    """
    Stop (and so drain) when the supervisor C{parent} is no longer this process's parent: an
    orphan worker would hold the port forever. The supervisor's pid comes from the command line,
    as it may have died before this process got here.
    """

    def check() -> None:
        if os.getppid() != parent:
            loop.stop()
            os.kill(os.getpid(), signal.SIGTERM)

    loop = LoopingCall(check)
    loop.clock = reactor
    loop.start(PARENT_CHECK_INTERVAL, now=False)
    return loop


def main(argv: Optional[List[str]] = None) -> int:
    """
    Run one worker until it is told to stop; return its exit status.
    """
    arguments = parse_arguments(sys.argv[1:] if argv is None else argv)
    from twisted.internet import reactor

    log_to_stdout()
    tls = None
    if arguments.tls_on_stdin:
        # Read before the reactor runs: the supervisor writes it all at once, then closes.
        try:
            tls = read_tls_material(sys.stdin.buffer)
        except TLSSetupError as error:
            _log.error("worker {pid} could not start: {error}", pid=os.getpid(), error=error)
            return 1
    worker = Worker(reactor, arguments, tls)
    status = [0]

    def failed(failure: Any) -> None:
        _log.failure("worker {pid} could not start", failure, pid=os.getpid())
        status[0] = 1
        os.kill(os.getpid(), signal.SIGTERM)

    def begin() -> None:
        worker.starting = ensureDeferred(worker.start()).addErrback(failed)

    reactor.addSystemEventTrigger(  # type: ignore[attr-defined]
        "before", "shutdown", lambda: ensureDeferred(worker.stop())
    )
    reactor.callWhenRunning(stop_on_signals, reactor)  # type: ignore[attr-defined]
    reactor.callWhenRunning(begin)  # type: ignore[attr-defined]
    parent = arguments.supervisor_pid or os.getppid()
    reactor.callWhenRunning(watch_parent, reactor, parent)  # type: ignore[attr-defined]
    reactor.run()  # type: ignore[attr-defined]
    return status[0]


if __name__ == "__main__":
    sys.exit(main())
