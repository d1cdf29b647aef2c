"""
The metadata store in one SQLite file, shared by the gateway's workers and the admin command.

The SQL lives in plain functions (L{gateway.store.sqlite_queries}) that take a
C{sqlite3.Connection} and run inside a transaction opened by their caller (L{transaction}).
L{SQLiteStore} runs each of them, in its own transaction, on a thread of its own so that the
reactor never waits on the disk; the admin command calls the same functions directly, and may
group several in one transaction.

Several processes use the file at once: WAL journaling lets readers go on while one writer
writes, and a busy timeout makes a writer wait for another's commit instead of failing. Writes
open their transactions with ``BEGIN IMMEDIATE``: in WAL mode a read transaction that later tries
to write gets ``SQLITE_BUSY`` at once, without the busy timeout, whenever another connection
wrote in between.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional, Sequence, Tuple, TypeVar

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool
from zope.interface import implementer

from gateway.interfaces import IMetadataStore
from gateway.model import AccessKey, Connection, MultipartUpload, UploadedPart, User
from gateway.store import sqlite_queries as queries
from gateway.store.schema import migrate

#: The name of the database file inside the gateway's data directory.
DATABASE_FILENAME = "gateway.sqlite3"

#: How long a connection waits for another process's write lock before failing, in seconds.
BUSY_TIMEOUT = 5.0

_T = TypeVar("_T")


def connect(path: str) -> sqlite3.Connection:
    """
    Open (creating it if needed) the database at C{path}, ready for use, and migrate it to the
    latest schema.

    A new file is made with mode 0600, and a missing parent directory with mode 0700: the file
    holds secret keys in clear. SQLite gives the ``-wal`` and ``-shm`` files it makes beside it
    the same mode as the database file.
    """
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        os.makedirs(parent, mode=0o700)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    connection = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
    )
    try:
        connection.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT * 1000)}")
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA foreign_keys = ON")
        migrate(connection)
    except BaseException:
        connection.close()
        raise
    return connection


@contextmanager
def transaction(connection: sqlite3.Connection, write: bool = True) -> Iterator[None]:
    """
    Run the block in one transaction: committed when it ends, rolled back when it raises.

    :param write: take the write lock at the start (``BEGIN IMMEDIATE``); a read-only block may
        pass C{False} and then never waits for writers.
    """
    connection.execute("BEGIN IMMEDIATE" if write else "BEGIN")
    with ending(connection):
        yield


@contextmanager
def ending(connection: sqlite3.Connection) -> Iterator[None]:
    """
    End the transaction C{connection} has begun when the block ends: commit it, or roll it back
    when the block raises, or when the commit fails and leaves it open (SQLite keeps it for a
    retry, which would then refuse the connection's next C{BEGIN}).
    """
    try:
        yield
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    try:
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise


@implementer(IMetadataStore)
class SQLiteStore:
    """
    L{IMetadataStore} on one SQLite connection, used from one thread of a private thread pool.

    Why one thread and not C{adbapi.ConnectionPool} or the reactor's pool: SQLite lets one writer
    in at a time anyway, so more threads would only wait on each other's locks; one connection
    driven by one thread needs no locking of ours, keeps the reactor's shared pool free for name
    resolution and the like, and lets this class run the very functions that the admin command
    calls. Calls are served in the order they are made.

    Make it with L{open_sqlite_store}; the pool is stopped by L{close} or, failing that, when the
    reactor shuts down.
    """

    def __init__(self, connection: sqlite3.Connection, pool: ThreadPool, reactor: Any) -> None:
        self._connection = connection
        self._pool = pool
        self._reactor = reactor
        self._closed = False
        self._shutdown_trigger = reactor.addSystemEventTrigger("during", "shutdown", pool.stop)

    def _run(self, write: bool, function: Callable[..., _T], *args: Any) -> "Deferred[_T]":
        if self._closed:
            return fail(RuntimeError("the store is closed"))

        def in_transaction() -> _T:
            with transaction(self._connection, write):
                return function(self._connection, *args)

        return deferToThreadPool(self._reactor, self._pool, in_transaction)

    def _now(self) -> float:
        return float(self._reactor.seconds())

    def add_user(self, name: str) -> "Deferred[User]":
        return self._run(True, queries.add_user, name, self._now())

    def get_user(self, name: str) -> "Deferred[Optional[User]]":
        return self._run(False, queries.get_user, name)

    def list_users(self) -> "Deferred[Sequence[User]]":
        return self._run(False, queries.list_users)

    def remove_user(self, name: str) -> "Deferred[None]":
        return self._run(True, queries.remove_user, name)

    def create_key(
        self,
        user: str,
        access_key_id: Optional[str] = None,
        secret_access_key: Optional[str] = None,
    ) -> "Deferred[AccessKey]":
        return self._run(
            True, queries.create_key, user, self._now(), access_key_id, secret_access_key
        )

    def get_key(self, access_key_id: str) -> "Deferred[Optional[AccessKey]]":
        return self._run(False, queries.get_key, access_key_id)

    def list_keys(self, user: str) -> "Deferred[Sequence[AccessKey]]":
        return self._run(False, queries.list_keys, user)

    def revoke_key(self, access_key_id: str) -> "Deferred[None]":
        return self._run(True, queries.revoke_key, access_key_id)

    def add_connection(self, connection: Connection) -> "Deferred[Connection]":
        return self._run(True, queries.add_connection, connection, self._now())

    def get_connection(self, user: str, bucket: str) -> "Deferred[Optional[Connection]]":
        return self._run(False, queries.get_connection, user, bucket)

    def list_connections(self, user: Optional[str] = None) -> "Deferred[Sequence[Connection]]":
        return self._run(False, queries.list_connections, user)

    def remove_connection(self, user: str, bucket: str) -> "Deferred[None]":
        return self._run(True, queries.remove_connection, user, bucket)

    def create_upload(self, upload: MultipartUpload) -> "Deferred[MultipartUpload]":
        return self._run(True, queries.create_upload, upload)

    def get_upload(self, upload_id: str) -> "Deferred[Optional[MultipartUpload]]":
        return self._run(False, queries.get_upload, upload_id)

    def list_uploads(
        self,
        user: str,
        bucket: str,
        prefix: str = "",
        key_marker: str = "",
        upload_id_marker: str = "",
        max_uploads: int = 1000,
    ) -> "Deferred[Tuple[Sequence[MultipartUpload], bool]]":
        return self._run(
            False,
            queries.list_uploads,
            user,
            bucket,
            prefix,
            key_marker,
            upload_id_marker,
            max_uploads,
        )

    def put_part(self, part: UploadedPart) -> "Deferred[None]":
        return self._run(True, queries.put_part, part)

    def list_parts(
        self, upload_id: str, part_number_marker: int = 0, max_parts: int = 10000
    ) -> "Deferred[Tuple[Sequence[UploadedPart], bool]]":
        return self._run(False, queries.list_parts, upload_id, part_number_marker, max_parts)

    def delete_upload(self, upload_id: str) -> "Deferred[None]":
        return self._run(True, queries.delete_upload, upload_id)

    def close(self) -> "Deferred[None]":
        """
        Close the connection on its thread, then stop the thread. Closing twice is harmless.
        """
        if self._closed:
            return succeed(None)
        self._closed = True
        closing = deferToThreadPool(self._reactor, self._pool, self._connection.close)

        def stop_pool(result: object) -> object:
            self._reactor.removeSystemEventTrigger(self._shutdown_trigger)
            self._pool.stop()
            return result

        return closing.addBoth(stop_pool).addCallback(lambda _: None)


def open_sqlite_store(path: str, reactor: Any) -> "Deferred[SQLiteStore]":
    """
    Open the store in the SQLite file at C{path}, creating and migrating it on the store's own
    thread (see L{connect}).
    """
    pool = ThreadPool(minthreads=1, maxthreads=1, name=f"sqlite:{os.path.basename(path)}")
    pool.start()
    opening = deferToThreadPool(reactor, pool, connect, path)

    def opened(connection: sqlite3.Connection) -> SQLiteStore:
        return SQLiteStore(connection, pool, reactor)

    def failed(failure: Any) -> Any:
        pool.stop()
        return failure

    return opening.addCallbacks(opened, failed)
