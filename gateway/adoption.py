"""
A worker's adoption of the supervisor's listening socket.

Twisted's C{adoptStreamPort} serves TCP sockets as they are. A UNIX socket it would treat as its
own: it sets the path's permissions to the port's default mode (0666) when it starts listening,
and removes the path when it stops, so one worker that stopped or died would leave the others
listening on a socket no client can reach any more. The path is the supervisor's
(L{gateway.listening.SharedSocket}); a worker's L{SharedUNIXPort} leaves it alone.
"""

from __future__ import annotations

import os
import socket
import stat
from typing import Any

from twisted.internet import tcp, unix
from twisted.internet.interfaces import IListeningPort
from twisted.python.failure import Failure


class SharedUNIXPort(unix.Port):
    """
    A UNIX port on a socket another process bound, and whose path it keeps.
    """

    def connectionLost(self, reason: Failure) -> None:
        # unix.Port's own would remove the path first; the rest of it is TCP's.
        tcp.Port.connectionLost(self, reason)


def adopt_listening_port(reactor: Any, fd: int, family: int, factory: Any) -> IListeningPort:
    """
    Start serving the listening socket C{fd} (of address C{family}) with C{factory}.
    """
    if family != socket.AF_UNIX:
        return reactor.adoptStreamPort(fd, family, factory)  # type: ignore[no-any-return]
    # As the reactor's adoptStreamPort does for AF_UNIX, with the port class above; the port's
    # mode is the one the path has, so that starting changes nothing.
    port = SharedUNIXPort._fromListeningDescriptor(reactor, fd, factory)
    path = port._bindPath
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    port.mode = stat.S_IMODE(os.stat(path).st_mode)
    port.startListening()
    return port  # type: ignore[no-any-return]
