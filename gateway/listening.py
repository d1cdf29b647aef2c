"""
The listening socket of a gateway with several workers.

With ``--workers N`` (N > 1) the supervisor owns the listening socket and its workers adopt it
(L{twisted.internet.interfaces.IReactorSocket.adoptStreamPort}), so the endpoint string cannot
go through L{twisted.internet.endpoints.serverFromString}, which would start accepting in the
supervisor. L{parse_listen} reads the endpoint types that can be shared this way and refuses the
others with a message that says what to use instead; L{SharedSocket} makes the socket.

Supported: ``tcp:PORT[:interface=ADDR][:backlog=N]``, ``tcp6:...`` (the same),
``ssl:PORT:privateKey=KEY[:certKey=CERT][:extraCertChain=CHAIN][:dhParameters=DH]`` with the
same ``interface`` and ``backlog`` (each worker then wraps its connections in TLS, with the files
of L{ListenSpec.tls}), ``systemd:domain=INET|INET6:index=I`` and
``unix:PATH[:mode=MODE][:backlog=N][:lockfile=0|1]``.
Not supported with workers: ``ssl:``'s ``sslmethod`` (Twisted's default, TLS 1.2 and later, is
kept).

A ``unix:`` socket's path belongs to the supervisor (L{SharedSocket}): it removes a stale socket
left at the path by a process that died (one that refuses connections), refuses to start if
another process is listening there, and removes the path when it stops. Workers never remove it
(L{gateway.adoption}). Twisted's ``lockfile`` is not used for that: one check by connecting does
the same without a second file, so ``lockfile`` is accepted and changes nothing.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
from typing import Callable, Dict, List, Optional, Tuple

from attrs import evolve, frozen
from twisted.internet.abstract import isIPv6Address

from gateway.tls import TLSFiles

#: Twisted's listen backlog, used when the endpoint names none, as in the single-process gateway.
DEFAULT_BACKLOG = 50

#: The first file descriptor systemd passes (``SD_LISTEN_FDS_START``).
SYSTEMD_FIRST_FD = 3


class UnsupportedEndpoint(ValueError):
    """
    The endpoint string cannot be shared by worker processes; the message says why.
    """


@frozen
class ListenSpec:
    """
    Where the workers' shared socket listens.

    :ivar family: C{socket.AF_INET}, C{socket.AF_INET6} or C{socket.AF_UNIX}.
    :ivar interface: the address to bind (C{""} for every interface); unused for systemd.
    :ivar port: the TCP port (0 for any); unused for systemd.
    :ivar backlog: the listen backlog.
    :ivar inherited_fd: the descriptor systemd passed, or C{None} to bind a new socket.
    :ivar tls: the key and certificates of an ``ssl:`` endpoint, or C{None} for plain TCP.
    :ivar path: a UNIX socket's path.
    :ivar mode: a UNIX socket's permissions (Twisted's default for ``unix:``, 0666).
    """

    family: int
    interface: str = ""
    port: int = 0
    backlog: int = DEFAULT_BACKLOG
    inherited_fd: Optional[int] = None
    tls: Optional[TLSFiles] = None
    path: str = ""
    mode: int = 0o666


def split_endpoint(description: str) -> Tuple[str, List[str], Dict[str, str]]:
    """
    Split a Twisted endpoint string into its type, positional and keyword arguments, honouring
    backslash escapes (``interface=\\:\\:1``) as L{serverFromString} does.
    """
    parts: List[str] = []
    current: List[str] = []
    characters = iter(description)
    for character in characters:
        if character == "\\":
            current.append(next(characters, ""))
        elif character == ":":
            parts.append("".join(current))
            current = []
        else:
            current.append(character)
    parts.append("".join(current))
    kind, arguments = parts[0], parts[1:]
    positional: List[str] = []
    keywords: Dict[str, str] = {}
    for argument in arguments:
        name, equals, value = argument.partition("=")
        if equals:
            keywords[name] = value
        else:
            positional.append(argument)
    return kind, positional, keywords


def parse_listen(description: str) -> ListenSpec:
    """
    The socket that workers can share for the endpoint string C{description}.

    :raise UnsupportedEndpoint: for any other endpoint type, or a malformed one.
    """
    kind, positional, keywords = split_endpoint(description)
    if kind in ("tcp", "tcp6"):
        return _parse_tcp(kind, positional, keywords, description)
    if kind == "ssl":
        return _parse_ssl(positional, keywords, description)
    if kind == "systemd":
        return _parse_systemd(keywords, description)
    if kind == "unix":
        return _parse_unix(positional, keywords, description)
    raise UnsupportedEndpoint(
        f"--workers above 1 cannot share the endpoint {description!r}: only tcp:, tcp6:, ssl:, "
        "unix: and systemd: (domain INET or INET6) endpoints can be; run one worker for the others"
    )


def _parse_unix(positional: List[str], keywords: Dict[str, str], description: str) -> ListenSpec:
    names = ("address", "mode", "backlog", "lockfile")
    values = dict(zip(names, positional))
    values.update(keywords)
    if set(values) - set(names) or len(positional) > len(names) or not values.get("address"):
        raise UnsupportedEndpoint(f"cannot read the endpoint {description!r}")
    if values["address"].startswith("\0"):
        raise UnsupportedEndpoint(
            f"--workers above 1 cannot share a socket of the abstract namespace: {description!r}"
        )
    # Absolute: workers read the path back from the socket, whatever their directory.
    path = os.path.abspath(values["address"])
    try:
        mode = int(values.get("mode", "666"), 8)
        backlog = int(values.get("backlog", DEFAULT_BACKLOG))
        lockfile = int(values.get("lockfile", "1"))
    except ValueError:
        raise UnsupportedEndpoint(f"cannot read the endpoint {description!r}")
    if not 0 <= mode <= 0o7777 or lockfile not in (0, 1):
        raise UnsupportedEndpoint(f"cannot read the endpoint {description!r}")
    return ListenSpec(family=socket.AF_UNIX, path=path, mode=mode, backlog=backlog)


#: The keywords of an ``ssl:`` endpoint that name its files, and the positions Twisted's parser
#: gives them (after the port; ``sslmethod``, third, is refused).
_TLS_KEYWORDS = ("privateKey", "certKey", "extraCertChain", "dhParameters")
_SSL_POSITIONS = ("port", "privateKey", "certKey", "sslmethod", "interface", "backlog",
                  "extraCertChain", "dhParameters")


def _parse_ssl(positional: List[str], keywords: Dict[str, str], description: str) -> ListenSpec:
    if len(positional) > len(_SSL_POSITIONS):
        raise UnsupportedEndpoint(f"cannot read the endpoint {description!r}")
    values = dict(zip(_SSL_POSITIONS, positional))
    values.update(keywords)
    if "sslmethod" in values:
        raise UnsupportedEndpoint(
            f"--workers above 1 cannot use sslmethod in {description!r}: leave it out (TLS 1.2 "
            "and later are offered), or run one worker"
        )
    files = {name: values.pop(name) for name in _TLS_KEYWORDS if name in values}
    return evolve(
        _parse_tcp("tcp", [], values, description), tls=TLSFiles.from_keywords(**files)
    )


def _parse_tcp(
    kind: str, positional: List[str], keywords: Dict[str, str], description: str
) -> ListenSpec:
    names = ("port", "interface", "backlog")
    values = dict(zip(names, positional))
    values.update(keywords)
    unknown = set(values) - set(names)
    if unknown or "port" not in values or len(positional) > len(names):
        raise UnsupportedEndpoint(f"cannot read the endpoint {description!r}")
    try:
        port = int(values["port"])
        backlog = int(values.get("backlog", DEFAULT_BACKLOG))
    except ValueError:
        raise UnsupportedEndpoint(f"cannot read the endpoint {description!r}")
    interface = values.get("interface", "")
    if kind == "tcp6":
        family = socket.AF_INET6
        interface = interface or "::"
    else:
        family = socket.AF_INET6 if isIPv6Address(interface) else socket.AF_INET
    return ListenSpec(family=family, interface=interface, port=port, backlog=backlog)


def _parse_systemd(keywords: Dict[str, str], description: str) -> ListenSpec:
    families = {"INET": socket.AF_INET, "INET6": socket.AF_INET6}
    domain = keywords.get("domain", "")
    if domain not in families or "index" not in keywords:
        raise UnsupportedEndpoint(
            f"--workers above 1 can share systemd: endpoints with domain=INET or domain=INET6 "
            f"and an index=, not {description!r}"
        )
    try:
        index = int(keywords["index"])
    except ValueError:
        raise UnsupportedEndpoint(f"cannot read the endpoint {description!r}")
    return ListenSpec(family=families[domain], inherited_fd=SYSTEMD_FIRST_FD + index)


def open_listening_socket(spec: ListenSpec) -> socket.socket:
    """
    A non-blocking listening socket for C{spec}: bound and listening like Twisted's
    C{listenTCP} (``SO_REUSEADDR``, close-on-exec), or systemd's inherited one.

    The socket is non-blocking because adopting processes require it; the flag belongs to the
    socket, not the descriptor, so every worker's copy shares it.
    """
    if spec.inherited_fd is not None:
        listening = socket.socket(fileno=os.dup(spec.inherited_fd))
        listening.setblocking(False)
        return listening

    def bind(listening: socket.socket) -> None:
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listening.bind((spec.interface, spec.port))

    return _listening(spec, bind)


def _listening(spec: ListenSpec, bind: Callable[[socket.socket], None]) -> socket.socket:
    """
    A new non-blocking socket of C{spec}'s family, bound by C{bind}, listening; closed if that
    fails.
    """
    listening = socket.socket(spec.family, socket.SOCK_STREAM)
    try:
        bind(listening)
        listening.listen(spec.backlog)
    except BaseException:
        listening.close()
        raise
    listening.setblocking(False)
    return listening


#: How long the check for a live listener on a UNIX socket's path waits to connect.
STALE_PROBE_SECONDS = 5.0


class SocketPathInUse(OSError):
    """
    Another process is listening on the UNIX socket's path.
    """


def _remove_stale_socket(path: str) -> None:
    """
    Remove a UNIX socket left at C{path} by a process that is gone (it refuses connections);
    leave anything else, for C{bind} to refuse.

    :raise SocketPathInUse: if a process is listening there.
    """
    try:
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            return
    except FileNotFoundError:
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    # A listener too busy to take the probe (its backlog full: EAGAIN, or no answer in time)
    # is a listener all the same.
    probe.settimeout(STALE_PROBE_SECONDS)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        os.unlink(path)
        return
    except (socket.timeout, BlockingIOError):
        pass
    except OSError:
        return
    finally:
        probe.close()
    raise SocketPathInUse(errno.EADDRINUSE, "another process is listening on this socket", path)


class SharedSocket:
    """
    The supervisor's listening socket for a L{ListenSpec}, which workers adopt; for ``unix:``,
    also the socket's path, made with the spec's permissions and removed when it is released
    (if it is still the socket made here).
    """

    def __init__(self, spec: ListenSpec) -> None:
        self.spec = spec
        self._made: Optional[Tuple[int, int]] = None

    def open(self) -> socket.socket:
        """
        The listening socket (L{open_listening_socket}; for ``unix:``, bound to its path).
        """
        spec = self.spec
        if spec.family != socket.AF_UNIX:
            return open_listening_socket(spec)
        _remove_stale_socket(spec.path)

        def bind(listening: socket.socket) -> None:
            listening.bind(spec.path)
            os.chmod(spec.path, spec.mode)
            made = os.lstat(spec.path)
            self._made = (made.st_dev, made.st_ino)

        return _listening(spec, bind)

    def release(self, listening: socket.socket) -> None:
        """
        Close the supervisor's copy of the socket, and remove a ``unix:`` socket's path so that
        no new client reaches the workers, which drain the connections they have.
        """
        listening.close()
        made, self._made = self._made, None
        if made is None:
            return
        try:
            found = os.lstat(self.spec.path)
        except FileNotFoundError:
            return
        if (found.st_dev, found.st_ino) == made:
            os.unlink(self.spec.path)
