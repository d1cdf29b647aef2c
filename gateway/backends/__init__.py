"""
Storage backends, one module each, and the registry that makes one for a connection.
"""

from __future__ import annotations

import os
from typing import Callable, Dict, Tuple

from attrs import define, field
from twisted.internet.interfaces import IReactorThreads

from gateway.interfaces import IBackend
from gateway.model import Connection

BackendKey = Tuple[str, str, str, Tuple[Tuple[str, str], ...], bool]


def _local(connection: Connection, data_dir: str, reactor: IReactorThreads) -> IBackend:
    from gateway.backends.local import LocalBackend

    index_path = os.path.join(data_dir, "objects", connection.user, connection.bucket + ".sqlite3")
    return LocalBackend(
        connection.settings["path"], index_path, reactor, read_only=connection.read_only
    )


def _memory(connection: Connection, data_dir: str, reactor: IReactorThreads) -> IBackend:
    from gateway.backends.memory import MemoryBackend

    return MemoryBackend(read_only=connection.read_only)


#: Backend name -> factory taking (connection, data directory, reactor).
FACTORIES: Dict[str, Callable[[Connection, str, IReactorThreads], IBackend]] = {
    "local": _local,
    "memory": _memory,
}


@define
class BackendRegistry:
    """
    Makes, and keeps, one backend per connection, so that a backend's open resources (an index
    database, a remote session) are shared by the requests to its bucket.
    """

    data_dir: str
    reactor: IReactorThreads
    _backends: Dict[BackendKey, IBackend] = field(factory=dict)

    def backend_for(self, connection: Connection) -> IBackend:
        key: BackendKey = (
            connection.user,
            connection.bucket,
            connection.backend,
            tuple(sorted(connection.settings.items())),
            connection.read_only,
        )
        backend = self._backends.get(key)
        if backend is None:
            factory = FACTORIES.get(connection.backend)
            if factory is None:
                raise KeyError(f"unknown backend {connection.backend!r}")
            backend = self._backends[key] = factory(connection, self.data_dir, self.reactor)
        return backend

    def forget(self, connection: Connection) -> None:
        """
        Drop the backends of a removed connection.
        """
        for key in [k for k in self._backends if k[:2] == (connection.user, connection.bucket)]:
            del self._backends[key]
