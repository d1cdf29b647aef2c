"""
The metadata index of a local bucket: one SQLite file holding, per key, what a plain file cannot
(ETag, Content-Type, ``x-amz-meta-*``, stored headers, tags, part sizes), so that metadata
survives restarts on any filesystem, without extended attributes. An index file made by an older
version gains the newer columns when it is opened (L{migrate}).

A row describes the file only while the file's size and ``mtime_ns`` are those recorded: a file
changed or put there by other means no longer matches, and its ETag becomes the MD5 of its bytes,
computed once and remembered (as a row) until the size or mtime changes again.

Every method blocks: call them from a thread, never from the reactor. One connection is shared by
the threads behind a lock; SQLite's WAL mode keeps readers in other processes from blocking it.

A row is durable (survives a power loss) once L{ObjectIndex.sync} returns: SQLite runs with
``synchronous=NORMAL``, which writes each commit to the write-ahead log without an fsync, and
C{sync} fsyncs the log, one fsync for every commit made before it began
(L{gateway.backends.localsync.SharedSyncs}). That is what ``synchronous=FULL`` does at every
commit, without making concurrent PUTs queue for one fsync each.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import os
import sqlite3
import threading
from contextlib import contextmanager
from typing import Dict, Iterable, Iterator, NamedTuple, Optional, Sequence, Tuple

from gateway.backends.keptrows import KeptRowsBudget
from gateway.backends.localfolders import FolderCache
from gateway.backends.localnames import NameCache
from gateway.backends.localwatch import FolderWatcher
from gateway.backends.walmark import CommitMark
from gateway.backends.localsync import SharedSyncs, fsync_file, open_to_sync
from gateway.model import ObjectInfo
from gateway.store.sqlite import ending, transaction

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    key TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    etag TEXT NOT NULL,
    content_type TEXT NOT NULL,
    metadata TEXT NOT NULL,
    headers TEXT NOT NULL,
    parts_count INTEGER,
    tags TEXT NOT NULL DEFAULT '{}',
    part_sizes TEXT NOT NULL DEFAULT '[]'
)
"""

#: The change count of each folder (a key's folder is the key up to its last ``/``), kept by
#: triggers in the statement that changes a row, so that every writer, in any process and of any
#: version that knows no better, counts its changes: what L{ObjectIndex.folder_version} reads to
#: tell whether a cached folder (L{gateway.backends.localfolders}) still holds.
_FOLDERS = [
    "CREATE TABLE IF NOT EXISTS folders (prefix TEXT PRIMARY KEY, version INTEGER NOT NULL)",
] + [
    f"""CREATE TRIGGER IF NOT EXISTS folder_{event.lower()} AFTER {event} ON objects BEGIN
    INSERT INTO folders (prefix, version) VALUES (rtrim({row}.key, replace({row}.key, '/', '')), 1)
    ON CONFLICT (prefix) DO UPDATE SET version = version + 1; END"""
    for event, row in (("INSERT", "new"), ("UPDATE", "old"), ("DELETE", "old"))
]

#: Columns added since the first schema, with their definitions, oldest first.
_ADDED_COLUMNS = [
    ("tags", "TEXT NOT NULL DEFAULT '{}'"),
    ("part_sizes", "TEXT NOT NULL DEFAULT '[]'"),
]

_COLUMNS = (
    "key, size, mtime_ns, etag, content_type, metadata, headers, parts_count, tags, part_sizes"
)
_MARKS = ", ".join("?" * len(_COLUMNS.split(",")))
_INSERT = f"INSERT OR REPLACE INTO objects ({_COLUMNS}) VALUES ({_MARKS})"

#: The row of a file read for its MD5 (L{ObjectIndex.remember}), unless the key has a row for a
#: file of that size and mtime by then: a writer's, in another process, committed after it
#: renamed the file into place and before this row, whose reader took the new file for one put
#: there by other means. Its row has the metadata this one lacks.
_REMEMBER = (
    f"INSERT INTO objects ({_COLUMNS}) VALUES ({_MARKS}) ON CONFLICT (key) DO UPDATE SET "
    + ", ".join(f"{name} = excluded.{name}" for name in _COLUMNS.replace(" ", "").split(",")[1:])
    + " WHERE NOT (objects.size = excluded.size AND objects.mtime_ns = excluded.mtime_ns)"
)

#: How many keys one ``IN (...)`` query looks up (well under SQLite's variable limit).
_BATCH = 500


def _select(count: int) -> str:
    """
    The query for the rows of C{count} keys.
    """
    return f"SELECT {_COLUMNS} FROM objects WHERE key IN ({','.join('?' * count)})"


_SELECT_ONE = _select(1)

#: Not in the kept rows (where C{None} means the key has no row).
_NOT_KEPT = object()

_KeptRows = Tuple[
    bytes, Dict[str, Optional["IndexRow"]], Dict[str, Tuple["IndexRow", ObjectInfo]]
]

#: S3's Content-Type for bodies of unknown type.
DEFAULT_CONTENT_TYPE = "binary/octet-stream"


class IndexRow(NamedTuple):
    """
    What the index knows of one key, valid while the file has this size and mtime.

    A named tuple rather than an attrs class, though as frozen: a listing page makes a thousand
    of them, straight from SQLite's row tuples, and an attrs instance cost three times as much.
    """

    key: str
    size: int
    mtime_ns: int
    etag: str
    content_type: str = DEFAULT_CONTENT_TYPE
    metadata: str = "{}"
    headers: str = "{}"
    parts_count: Optional[int] = None
    tags: str = "{}"
    part_sizes: str = "[]"

    def matches(self, size: int, mtime_ns: int) -> bool:
        return self.size == size and self.mtime_ns == mtime_ns

    def info(self) -> ObjectInfo:
        """
        The object's info; the JSON columns are parsed only when filled in, as most are not
        (four C{json.loads} per key were a third of a listing's time).
        """
        metadata, headers, tags, part_sizes = (
            self.metadata,
            self.headers,
            self.tags,
            self.part_sizes,
        )
        return ObjectInfo(
            key=self.key,
            size=self.size,
            etag=self.etag,
            last_modified=self.mtime_ns / 1e9,
            content_type=self.content_type,
            metadata=None if metadata == "{}" else json.loads(metadata),
            headers=None if headers == "{}" else json.loads(headers),
            parts_count=self.parts_count,
            tags=None if tags == "{}" else json.loads(tags),
            part_sizes=() if part_sizes == "[]" else json.loads(part_sizes),
        )


def row_for(info: ObjectInfo, mtime_ns: int) -> IndexRow:
    """
    The row recording C{info} for a file whose mtime is C{mtime_ns}; empty columns are written
    without C{json.dumps}, a tenth of the first listing of files put there by other means.
    """
    metadata, headers, tags, part_sizes = info.metadata, info.headers, info.tags, info.part_sizes
    return IndexRow(
        info.key,
        info.size,
        mtime_ns,
        info.etag,
        info.content_type,
        json.dumps(dict(metadata), sort_keys=True) if metadata else "{}",
        json.dumps(dict(headers), sort_keys=True) if headers else "{}",
        info.parts_count,
        json.dumps(dict(tags), sort_keys=True) if tags else "{}",
        json.dumps(list(part_sizes)) if part_sizes else "[]",
    )


def migrate(db: sqlite3.Connection) -> None:
    """
    Make the table, or add the columns an older version's table lacks. One immediate
    transaction, so that processes opening the same old file at once add each column once.
    """
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute(_SCHEMA)
        present = {row[1] for row in db.execute("PRAGMA table_info(objects)")}
        for name, definition in _ADDED_COLUMNS:
            if name not in present:
                db.execute(f"ALTER TABLE objects ADD COLUMN {name} {definition}")
        for statement in _FOLDERS:
            db.execute(statement)
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


#: How long, in milliseconds, a write waits for another writer of the index (another process).
BUSY_TIMEOUT_MS = 10000


class IndexBusy(Exception):
    """
    Another writer holds the index, and the caller would not wait for it.
    """


class HashingNeeded(Exception):
    """
    The file's ETag is not known yet: finding it means reading the whole file.
    """


def md5_of_file(path: str, dir_fd: Optional[int] = None) -> str:
    """
    The hex MD5 of a file's bytes, read in large blocks; C{path} is relative to the directory
    open as C{dir_fd} if given.

    Read with C{os.read} on a bare descriptor, the first block small: most files put there by
    other means are small, and a buffered file object asked for a megabyte took three times as
    long as the three system calls that read a small file.
    """
    digest = hashlib.md5(usedforsecurity=False)
    flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK
    if dir_fd is not None:
        # A listing saw a regular file by that name (it lists no links): a link there now was
        # put in its place since, and may point outside the bucket.
        flags |= os.O_NOFOLLOW
    fd = os.open(path, flags, dir_fd=dir_fd)
    try:
        block = os.read(fd, 64 * 1024)
        while block:
            digest.update(block)
            block = os.read(fd, 1024 * 1024)
    finally:
        os.close(fd)
    return digest.hexdigest()


def guess_content_type(key: str) -> str:
    """
    The Content-Type of a file that came without one, from its name.
    """
    guessed, _ = mimetypes.guess_type(key, strict=False)
    return guessed or DEFAULT_CONTENT_TYPE


class ObjectIndex:
    """
    The index of one bucket, at C{path} (created, with its folder, on first use).
    """

    def __init__(
        self,
        path: str,
        watcher: Optional[FolderWatcher] = None,
        large_folders: Optional[NameCache] = None,
        kept_rows: Optional[KeptRowsBudget] = None,
    ) -> None:
        self._path = path
        #: The process's budget of kept rows (L{get}), shared by its buckets, when given.
        self._budget = KeptRowsBudget() if kept_rows is None else kept_rows
        #: Held across a rename and its new row, and across a file's check and its MD5 row, so
        #: that a row remembered for an old file never replaces the row of a new one.
        self.lock = threading.RLock()
        self._db: Optional[sqlite3.Connection] = None
        #: The database's commit mark while the connection is open, if it can be read.
        self._mark: Optional[CommitMark] = None
        #: The mark as of which the kept rows were read, the rows (or C{None}) by key, and the
        #: infos made of kept rows (L{row_info}), with the row each was made of.
        self._kept: _KeptRows = (b"", {}, {})
        self._syncs = SharedSyncs(self._fsync_log)
        #: The listings of small folders, checked against L{folder_version} at each use.
        self.folders = FolderCache(watcher=watcher)
        #: The names of large folders in order, checked against the directory at each use;
        #: the process's, shared by its buckets, when given.
        self.large_folders = NameCache() if large_folders is None else large_folders

    def sync(self) -> None:
        """
        Make every row written before this call durable; blocks.
        """
        self._syncs.sync(self._path + "-wal")

    def open_log(self) -> int:
        """
        A descriptor (read-only) to fsync to make the rows written so far durable, as L{sync}
        does: the write-ahead log's, or the database's when there is no log.
        """
        try:
            return open_to_sync(self._path + "-wal")
        except FileNotFoundError:
            return open_to_sync(self._path)

    @contextmanager
    def writing_now(self) -> Iterator[None]:
        """
        Make the rows written in the block (from this thread) one transaction, without waiting
        for other writers: raises L{IndexBusy} at once if a thread of this process or another
        process is writing. Durable once L{sync} returns, as any row.
        """
        if not self.lock.acquire(blocking=False):
            raise IndexBusy("a thread is using the index")
        try:
            db = self._connect()
            db.execute("PRAGMA busy_timeout=0")
            try:
                db.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as e:
                raise IndexBusy(str(e)) from None
            finally:
                db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            with ending(db):
                yield
        finally:
            self.lock.release()

    def _fsync_log(self, log_path: str) -> None:
        try:
            fsync_file(log_path)
        except FileNotFoundError:
            # No log (a checkpoint folded it into the database, which it then synced).
            fsync_file(self._path)

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            folder = os.path.dirname(self._path)
            if folder:
                os.makedirs(folder, mode=0o700, exist_ok=True)
            db = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
            (mode,) = db.execute("PRAGMA journal_mode=WAL").fetchone()
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            migrate(db)
            self._db = db
            # After the connection has read the database, so that the -shm file is its own.
            self._mark = CommitMark.open_for(self._path) if mode == "wal" else None
        return self._db

    def get(self, key: str) -> Optional[IndexRow]:
        """
        The row of C{key}, or C{None}: every GET and HEAD asks.

        Rows read are kept (while the process's L{KeptRowsBudget} lasts) until the next commit
        to the database, by any process: a kept row is the one a query would return, and costs
        no query (4.8 us of a small GET's 112; its check, L{CommitMark.current}, takes 0.04).
        Rows are neither kept nor taken from the kept ones while this process has a
        transaction open, whose own writes a query sees before they are committed.
        """
        mark = self._mark
        if mark is not None:
            kept = self._kept
            if kept[0] == mark.current() and (db := self._db) is not None and (
                not db.in_transaction
            ):
                row = kept[1].get(key, _NOT_KEPT)
                if row is not _NOT_KEPT:
                    return row  # type: ignore[return-value]
        with self.lock:
            db = self._connect()
            mark = self._mark
            # Read before the row: a commit between the two changes the mark, and with it,
            # drops the row.
            now = mark.current() if mark is not None else None
            found = None
            for values in db.execute(_SELECT_ONE, (key,)):
                found = IndexRow._make(values)
            if now is not None and not db.in_transaction:
                self._keep(now, key, found)
        return found

    def _keep(self, now: bytes, key: str, row: Optional[IndexRow]) -> None:
        """
        Keep C{row} as of mark C{now}, dropping the rows kept as of another; under L{lock},
        so that what the budget lent matches what is kept.
        """
        kept = self._kept
        if kept[0] != now:
            self._budget.give_back(len(kept[1]))
            kept = self._kept = (now, {}, {})
        if key not in kept[1] and self._budget.take():
            kept[1][key] = row

    def row_info(self, row: IndexRow) -> ObjectInfo:
        """
        C{row.info()}, made once per row that L{get} keeps (1.5 us of JSON checks and an attrs
        instance, a GET's largest step after the query).
        """
        rows, infos = self._kept[1:]
        made = infos.get(row.key)
        if made is not None and made[0] is row:
            return made[1]
        info = row.info()
        if rows.get(row.key) is row:
            infos[row.key] = (row, info)
        return info

    def get_many(self, keys: Iterable[str]) -> Dict[str, IndexRow]:
        """
        The rows of those of C{keys} that have one, in one query per few hundred keys.
        """
        wanted = list(keys)
        make = IndexRow._make
        with self.lock:
            db = self._connect()
            if len(wanted) <= _BATCH:
                query = _select(len(wanted))
                return {row[0]: make(row) for row in db.execute(query, wanted)}
            found: Dict[str, IndexRow] = {}
            for start in range(0, len(wanted), _BATCH):
                batch = wanted[start : start + _BATCH]
                found.update((row[0], make(row)) for row in db.execute(_select(len(batch)), batch))
        return found

    def folder_version(self, prefix: str) -> int:
        """
        How many times rows of keys in the folder C{prefix} (``a/b/``; ``""`` for the top) have
        been written or removed, by any process: 0 if never.
        """
        with self.lock:
            for (version,) in self._connect().execute(
                "SELECT version FROM folders WHERE prefix = ?", (prefix,)
            ):
                return version
        return 0

    def put(self, row: IndexRow) -> None:
        with self.lock:
            self._connect().execute(_INSERT, row)

    def remember_many(self, rows: Sequence[IndexRow]) -> None:
        """
        Write the C{rows} of files read for their MD5 (L{_REMEMBER}) in one transaction: a
        commit per row was a third of the first listing of files put there by other means.
        Durable only once L{sync} returns, as any row.
        """
        with self.lock:
            db = self._connect()
            if len(rows) == 1:
                db.execute(_REMEMBER, rows[0])
                return
            with transaction(db):
                db.executemany(_REMEMBER, rows)

    def delete(self, key: str) -> None:
        with self.lock:
            self._connect().execute("DELETE FROM objects WHERE key = ?", (key,))

    def close(self) -> None:
        with self.lock:
            # Unmapped when the last reader lets go of it: a GET may be reading it now.
            self._mark = None
            self._budget.give_back(len(self._kept[1]))
            self._kept = (b"", {}, {})
            if self._db is not None:
                self._db.close()
                self._db = None

    def file_info(
        self,
        key: str,
        path: str,
        st: os.stat_result,
        row: Optional[IndexRow],
        may_hash: bool = True,
    ) -> ObjectInfo:
        """
        The info of the regular file at C{path} whose stat is C{st}: from C{row} if it still
        matches the file, else with the MD5 of the file as ETag, remembered for next time.

        :param may_hash: when false, raise L{HashingNeeded} instead of reading the file.
        """
        if row is not None and row.matches(st.st_size, st.st_mtime_ns):
            return self.row_info(row)
        if not may_hash:
            raise HashingNeeded(key)
        # Looked up through the module so that tests can count the hashing.
        info = ObjectInfo(
            key=key,
            size=st.st_size,
            etag=md5_of_file(path),
            last_modified=st.st_mtime_ns / 1e9,
            content_type=guess_content_type(key),
        )
        self.remember([(info, path, st)])
        return info

    def remember(
        self,
        hashed: Sequence[Tuple[ObjectInfo, str, os.stat_result]],
        directory: Optional[Tuple[str, int]] = None,
        folder: Optional[Tuple[str, int]] = None,
    ) -> Optional[int]:
        """
        Write the rows of files read for their MD5, (info, path, stat before the reading) each,
        in one transaction: those of the files that still have the size and mtime they had
        before they were read, checked under L{lock}, so that a row remembered for an old file
        never replaces the row of a new one.

        Like any row, they are durable only once L{sync} returns, and a listing does not call
        it: such a row is a cache of facts of the file, computed again if lost to a power cut.

        :param directory: the path of the directory the paths are relative to, and a descriptor
            open on it; if the directory at that path is another one by now (renamed away and
            replaced), no row is written.
        :param folder: the key prefix of the folder that holds every file, and its change count
            (L{folder_version}) as the caller read it before it read the directory, when the
            caller means to keep the folder's listing.
        :return: with C{folder}, the folder's change count once the rows are written, if every
            file's row was written and no other row of the folder was written or removed since
            the count given was read (the listing just made is then the folder as of that
            count); else C{None}.
        """
        rows = []
        dir_fd = None
        with self.lock:
            if directory is not None:
                path, dir_fd = directory
                try:
                    now, then = os.stat(path), os.fstat(dir_fd)
                except OSError:
                    return None
                if (now.st_dev, now.st_ino) != (then.st_dev, then.st_ino):
                    return None
            for info, path, st in hashed:
                try:
                    # Relative to a directory, a listing's file: a link there is another file.
                    after = os.stat(path, dir_fd=dir_fd, follow_symlinks=dir_fd is None)
                except OSError:
                    continue
                if after.st_size == st.st_size and after.st_mtime_ns == st.st_mtime_ns:
                    rows.append(row_for(info, st.st_mtime_ns))
            if folder is not None and len(rows) == len(hashed):
                return self._put_in_folder(rows, *folder)
            if rows:
                self.remember_many(rows)
        return None

    def _put_in_folder(self, rows: Sequence[IndexRow], prefix: str, read: int) -> Optional[int]:
        """
        Write C{rows}, all of keys in the folder C{prefix}, in one transaction, and the
        folder's change count after them if it was C{read} before them, else C{None}.

        The count is read in the same transaction as the rows are written, which holds the
        database's write lock: no other writer comes between the check and the writes.
        """
        with self.lock:
            db = self._connect()
            with transaction(db):
                before = self.folder_version(prefix)
                db.executemany(_REMEMBER, rows)
                after = self.folder_version(prefix)
        return after if before == read else None
