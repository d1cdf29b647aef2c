"""
Storage backends, one module each, and the registry that makes one for a connection.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Dict, Optional, Tuple

from attrs import define, field
from twisted.internet.interfaces import IReactorThreads
from twisted.logger import Logger

from gateway.interfaces import IBackend
from gateway.model import Connection

BackendKey = Tuple[str, str, str, Tuple[Tuple[str, str], ...], bool]

_log = Logger()


def _local(connection: Connection, registry: "BackendRegistry") -> IBackend:
    from gateway.backends.local import LocalBackend

    index_path = os.path.join(
        registry.data_dir, "objects", connection.user, connection.bucket + ".sqlite3"
    )
    return LocalBackend(
        connection.settings["path"], index_path, registry.reactor,
        read_only=connection.read_only, watcher=registry.folder_watcher(),
        large_folders=registry.large_folder_names(),
        kept_rows=registry.kept_rows_budget(),
        commits=registry.commit_threads(),
        kernel_syncs=registry.kernel_syncs(),
    )


def _memory(connection: Connection, registry: "BackendRegistry") -> IBackend:
    from gateway.backends.memory import MemoryBackend

    return MemoryBackend(read_only=connection.read_only)


#: Backend name -> factory taking (connection, the registry).
FACTORIES: Dict[str, Callable[[Connection, "BackendRegistry"], IBackend]] = {
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
    _watcher: Optional[Any] = None
    _names: Optional[Any] = None
    _kept_rows: Optional[Any] = None
    _commits: Optional[Any] = None
    _kernel_syncs: Optional[Any] = None
    _kernel_syncs_tried: bool = False

    def folder_watcher(self) -> Any:
        """
        The process's one watcher of kept folders (L{gateway.backends.localwatch}), shared by
        every local bucket: the kernel allows a user few inotify instances.
        """
        if self._watcher is None:
            from gateway.backends.localwatch import FolderWatcher

            self._watcher = FolderWatcher()
        return self._watcher

    def large_folder_names(self) -> Any:
        """
        The process's one cache of large folders' names (L{gateway.backends.localnames}),
        shared by every local bucket so that its limit bounds them all.
        """
        if self._names is None:
            from gateway.backends.localnames import NameCache

            self._names = NameCache()
        return self._names

    def kept_rows_budget(self) -> Any:
        """
        The process's one budget of index rows kept in memory (L{gateway.backends.keptrows}),
        shared by every local bucket so that it bounds them all.
        """
        if self._kept_rows is None:
            from gateway.backends.keptrows import KeptRowsBudget

            self._kept_rows = KeptRowsBudget()
        return self._kept_rows

    def commit_threads(self) -> Any:
        """
        The process's threads for commits of PUTs (L{gateway.backends.batches}), one per
        filesystem, shared by every local bucket on it: a thread per bucket would bring back
        the contention they save.
        """
        if self._commits is None:
            from gateway.backends.batches import BatchThreads

            self._commits = BatchThreads(self.reactor, "s3gateway-commits")
        return self._commits

    def kernel_syncs(self) -> Any:
        """
        The process's fsyncs run by the kernel (L{gateway.backends.aiosync}), shared by every
        local bucket: one AIO context and its eventfd, made at the first local bucket. C{None}
        where the system has none (commits then run on the commit threads).
        """
        if not self._kernel_syncs_tried:
            from twisted.internet.interfaces import IReactorFDSet

            from gateway.backends.aiosync import KernelSyncs

            self._kernel_syncs_tried = True
            if IReactorFDSet.providedBy(self.reactor):
                self._kernel_syncs = KernelSyncs.start(self.reactor)  # type: ignore[arg-type]
            if self._kernel_syncs is None:
                _log.info(
                    "No native AIO here: small PUTs commit on a thread per filesystem"
                )
        return self._kernel_syncs

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
            backend = self._backends[key] = factory(connection, self)
        return backend

    async def close(self) -> None:
        """
        Close every backend made that has something to close (a local bucket's index, the
        removals it started, its spare files), for a process that stops: call it once no
        request is left. A backend that fails to close is logged, and the others are closed.
        """
        backends, self._backends = list(self._backends.values()), {}
        for backend in backends:
            close = getattr(backend, "close", None)
            if close is None:
                continue
            try:
                await close()
            except Exception:
                _log.failure("Could not close the backend {backend!r}", backend=backend)

    def forget(self, connection: Connection) -> None:
        """
        Drop the backends of a removed connection.
        """
        for key in [k for k in self._backends if k[:2] == (connection.user, connection.bucket)]:
            del self._backends[key]
