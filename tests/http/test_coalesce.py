"""
L{gateway.http.coalesce}: TCP writes sent at the end of the reactor's turn, on real sockets: the
bytes and their order, large writes, closing after a write, and the ports it leaves alone.
"""

from __future__ import annotations

import os
import socket
from typing import Any, List, Tuple

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ServerEndpoint, UNIXServerEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.threads import deferToThread
from twisted.logger import globalLogPublisher

from gateway.http.coalesce import CoalescingEndpoint, CoalescingServer, TurnEndSender

BIG = os.urandom(8 * 1024 * 1024)


class Answering(Protocol):
    """
    Answers each line it receives: C{small} with three writes, C{big} with L{BIG}, C{close} with
    a write and a close, C{abort} with a write and an abort; records whether C{small} and C{big}
    left the transport registered for writability.
    """

    def connectionMade(self) -> None:
        self.factory.transports.append(self.transport)

    def dataReceived(self, data: bytes) -> None:
        for line in data.split(b"\n"):
            if line == b"small":
                self.transport.write(b"one ")
                self.transport.writeSequence([b"two ", b"three"])
                # Not sent yet, and no wake-up asked of the reactor for it.
                self.factory.registered.append(self.transport in reactor.getWriters())
            elif line == b"big":
                self.transport.write(BIG)
                # Too large to hold: Twisted's own path, at once.
                self.factory.registered.append(self.transport in reactor.getWriters())
            elif line == b"close":
                self.transport.write(b"bye")
                self.transport.loseConnection()
            elif line == b"abort":
                self.transport.write(b"lost")
                self.transport.abortConnection()


def answering_factory() -> Factory:
    factory = Factory.forProtocol(Answering)
    factory.transports = []  # type: ignore[attr-defined]
    factory.registered = []  # type: ignore[attr-defined]
    return factory


def exchange(address: Any, line: bytes, expected: int) -> bytes:
    """
    Connect to C{address} (a TCP port on loopback, or a UNIX socket's path), send C{line}, read
    until C{expected} bytes or the end; blocking (run in a thread).
    """
    if isinstance(address, int):
        client = socket.create_connection(("127.0.0.1", address), timeout=10)
    else:
        client = socket.socket(socket.AF_UNIX)
        client.settimeout(10)
        client.connect(address)
    with client:
        client.sendall(line + b"\n")
        received: List[bytes] = []
        size = 0
        while size < expected:
            try:
                chunk = client.recv(1 << 20)
            except ConnectionResetError:
                break
            if not chunk:
                break
            received.append(chunk)
            size += len(chunk)
        return b"".join(received)


async def ask(line: bytes, expected: int) -> Tuple[bytes, Factory]:
    """
    Send C{line} to a new coalescing TCP port of an L{Answering} factory; the answer (see
    L{exchange}) and the factory.
    """
    factory = answering_factory()
    port = await CoalescingEndpoint(
        TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1"), reactor
    ).listen(factory)
    try:
        answer = await deferToThread(exchange, port.getHost().port, line, expected)
    finally:
        await port.stopListening()
    return answer, factory


@pytest_twisted.ensureDeferred
async def test_small_writes_leave_together_at_the_end_of_the_turn() -> None:
    answer, factory = await ask(b"small", 13)
    assert answer == b"one two three"
    assert factory.registered == [False]
    assert type(factory.transports[0]) is CoalescingServer


@pytest_twisted.ensureDeferred
async def test_a_write_larger_than_the_socket_takes_goes_out_whole() -> None:
    answer, factory = await ask(b"big", len(BIG))
    assert answer == BIG
    assert factory.registered == [True]


@pytest_twisted.ensureDeferred
async def test_close_after_a_write_sends_it_then_closes() -> None:
    # Read to the end: the connection must close once the bytes are out.
    answer, _ = await ask(b"close", 1000)
    assert answer == b"bye"


@pytest_twisted.ensureDeferred
async def test_abort_after_a_write_drops_it() -> None:
    answer, factory = await ask(b"abort", 1000)
    assert answer == b""
    assert not factory.transports[0].connected


@pytest_twisted.ensureDeferred
async def test_other_ports_are_left_alone(tmp_path) -> None:
    factory = answering_factory()
    path = str(tmp_path / "socket")
    port = await CoalescingEndpoint(UNIXServerEndpoint(reactor, path), reactor).listen(factory)
    try:
        answer = await deferToThread(exchange, path, b"small", 13)
    finally:
        await port.stopListening()
    assert answer == b"one two three"
    # Twisted's own path: the writes registered for a wake-up.
    assert not isinstance(factory.transports[0], CoalescingServer)
    assert factory.registered == [True]


def test_a_failing_send_drops_only_its_connection() -> None:
    # A producer that raises when the send resumes it, say: that connection is closed, the
    # other connections of the turn are still sent.
    class Transport:
        def __init__(self, fails: bool) -> None:
            self.fails = fails
            self.sent = self.aborted = False

        def send_waiting(self) -> None:
            if self.fails:
                raise RuntimeError("producer broke")
            self.sent = True

        def abortConnection(self) -> None:
            self.aborted = True

    clock = Clock()
    sender = TurnEndSender(clock)
    broken, fine = Transport(True), Transport(False)
    events: List[dict] = []
    globalLogPublisher.addObserver(events.append)
    try:
        sender.add(broken)  # type: ignore[arg-type]
        sender.add(fine)  # type: ignore[arg-type]
        assert len(clock.getDelayedCalls()) == 1
        clock.advance(0)
    finally:
        globalLogPublisher.removeObserver(events.append)
    assert broken.aborted and not broken.sent
    assert fine.sent and not fine.aborted
    assert [e["log_failure"].value.args for e in events if "log_failure" in e] == [
        ("producer broke",)
    ]
