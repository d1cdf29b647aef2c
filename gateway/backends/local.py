"""
The local-directory backend: a bucket is a directory, its objects are the files under it.

Files put there by other means are listed and served; objects put through S3 are plain files
(mode 0644, folders 0755, less the daemon's umask) that other programs can read. Metadata that a
file cannot carry lives in the bucket's L{ObjectIndex}.

Where things land on disk:

- an object ``a/b/c`` is the file ``<root>/a/b/c``; a folder marker ``a/b/`` is the directory
  ``<root>/a/b`` plus an index row;
- uploads are written to a temporary file in ``<root>/.s3gateway/tmp`` (same filesystem, so the
  final rename is atomic), fsynced and renamed into place on commit: readers see the old object
  or the new one, never a part, and a crash leaves at most a temporary file that no listing shows
  (removed by the first write of a later process once a day old);
  a large object replaced so, or deleted, is removed after the answer, from
  ``<root>/.s3gateway/retired`` (L{gateway.backends.localretire});
- a small object replaced so is kept in the process's folder under ``<root>/.s3gateway/spare``
  for a later upload to write into; that upload is then exchanged with the object it replaces
  rather than renamed over it (L{gateway.backends.localspare});
- multipart parts are ``<root>/.s3gateway/uploads/<upload id>/<part number>``
  (L{gateway.backends.localparts});
- every replacement of a key (commit, complete, metadata update, copy, delete) holds the key's
  lock file in ``<root>/.s3gateway/locks`` (L{gateway.backends.locallock}), which other worker
  processes respect too: that is what makes a conditional write's check and rename one step.

Listings show directories as common prefixes with delimiter ``/``, also empty ones and ones made
by other means; only regular files and directories are listed (symbolic links are not, though a
key that leads through a link to a place still inside the root is served).

Every blocking call runs in the thread pool, except quick ones, which would cost less than the
hand-over to a thread and back: reading one object's metadata and opening it, the writes of upload
bodies, which go to the page cache as they arrive on the reactor thread (never the whole body), the
creation of their temporary file, the checks of a key before its body is read (a few C{stat}s),
and a listing that reads one small directory (L{gateway.backends.localwalk.reads_little}). Each
goes to a thread after all when it turns out to need a whole file read (an ETag not yet known). A
small PUT's commit (fsync, rename, index row, directory and index-log fsyncs) runs on the reactor
where the kernel can run its fsyncs (L{gateway.backends.reactorcommits}), with the other PUTs of
the same turn; a step that would wait (a lock another writer holds, a folder to make) sends it,
as where the kernel cannot, to the commit thread of the root's filesystem, which commits every
PUT waiting there at once (L{install_many}, L{gateway.backends.batches}). Other commits share
their fsyncs (L{gateway.backends.localsync}).
"""

from __future__ import annotations

import io
import os
import stat
import time
from typing import BinaryIO, Callable, List, Optional, Sequence, Tuple, TypeVar

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool
from zope.interface import implementer

from gateway.backends import (
    localcommits,
    localcopy,
    localfs,
    localparts,
    localretire,
    localwalk,
)
from gateway.backends.aiosync import KernelSyncs
from gateway.backends.batches import BatchThreads, Outcome
from gateway.backends.conditions import check_condition
from gateway.backends.linkfree import LinkFreeOpener
from gateway.backends.localcommits import FoldersToMake, PendingInstall
from gateway.backends.localfs import LocalWriter
from gateway.backends.localindex import HashingNeeded, ObjectIndex, row_for
from gateway.backends.keptrows import KeptRowsBudget
from gateway.backends.localnames import NameCache
from gateway.backends.locallock import KeyBusy, locked
from gateway.backends.localkeys import RESERVED, key_path, resolve_inside, split_key
from gateway.backends.localretire import Retirements
from gateway.backends.localsync import SharedSyncs
from gateway.backends.localspare import SpareFiles
from gateway.backends.localtemp import TemporaryFiles
from gateway.backends.localwatch import FolderWatcher
from gateway.backends.pagecache import PageCacheProbe
from gateway.backends.producer import ColdReads, DescriptorFile, FileReader
from gateway.backends.reactorcommits import ReactorCommits
from gateway.interfaces import (
    BackendUnavailable,
    IBackend,
    IObjectReader,
    IObjectWriter,
    IServerSideCopy,
    NoSuchObject,
    ReadOnlyConnection,
)
from gateway.listing import paginate
from gateway.model import ByteRange, ListingPage, ObjectInfo, WriteCondition, WriteMetadata

T = TypeVar("T")

#: How an object's file is opened for reading. O_NONBLOCK: opening a FIFO put there by other means
#: must not hang the thread.
READ_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK

#: PUTs of bodies smaller than this are committed in batches (L{LocalBackend.install_many}).
BATCHED_PUT_SIZE = 1024 * 1024


@implementer(IBackend, IServerSideCopy)
class LocalBackend:
    """
    The objects of one connection, as files under C{root}.

    The methods named without an underscore and not in the interfaces (L{locate}, L{install},
    ...) are the blocking steps that L{gateway.backends.localparts} and
    L{gateway.backends.localcopy} build on; they run in a worker thread.

    :param root: the bucket's directory.
    :param index_path: the SQLite file of the bucket's metadata index (made on first use).
    :param reactor: runs the callbacks; gives the default thread pool.
    :param threadpool: where blocking calls run; the reactor's by default.
    :param read_only: refuse every write with L{ReadOnlyConnection}.
    :param watcher: the process's watcher of kept folders (L{gateway.backends.localwatch}).
    :param large_folders: the process's kept names of large folders
        (L{gateway.backends.localnames}).
    :param kept_rows: the process's budget of index rows kept in memory
        (L{gateway.backends.keptrows}).
    :param commits: the process's threads for commits of PUTs (L{install_many}), one per
        filesystem; its own by default.
    :param kernel_syncs: the process's fsyncs run by the kernel (L{gateway.backends.aiosync}):
        given, small PUTs commit on the reactor (L{gateway.backends.reactorcommits}); without,
        on the commit thread.
    """

    def __init__(
        self,
        root: str,
        index_path: str,
        reactor,  # type: ignore[no-untyped-def]
        threadpool: Optional[ThreadPool] = None,
        read_only: bool = False,
        watcher: Optional[FolderWatcher] = None,
        large_folders: Optional[NameCache] = None,
        kept_rows: Optional[KeptRowsBudget] = None,
        commits: Optional[BatchThreads[PendingInstall, ObjectInfo]] = None,
        kernel_syncs: Optional[KernelSyncs] = None,
    ) -> None:
        self.root = os.path.abspath(root)
        self.read_only = read_only
        self.index = ObjectIndex(index_path, watcher, large_folders, kept_rows)
        self._reactor = reactor
        self._threadpool = threadpool
        self.syncs = SharedSyncs()
        self._commits = commits or BatchThreads(reactor, "s3gateway-commits")
        self._reactor_commits = (
            ReactorCommits(reactor, kernel_syncs, self, self.commit_in_thread)
            if kernel_syncs is not None else None
        )
        #: Replaced large objects being removed after their write was answered.
        self.retirements = Retirements(
            self._run,
            lambda *call: self._reactor.callFromThread(*call),
            lambda *call: self._reactor.callLater(*call),
        )
        #: The root's device and inode, and its resolved path (see L{real_root}).
        self._resolved: Optional[Tuple[Tuple[int, int], str]] = None
        self._temporary_files = TemporaryFiles()
        #: Replaced small objects kept for later uploads to write into.
        self.spares = SpareFiles()
        self._link_free = LinkFreeOpener.here(READ_FLAGS)
        #: Opens a key's folder to check it (L{localfs.check_key}).
        self._folders = LinkFreeOpener.here(os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        probe = PageCacheProbe()
        #: Bodies not in the page cache are read in a thread (where the kernel can tell).
        self._cold_reads = (
            ColdReads(probe.resident, probe.read_cached, self._run) if probe.available else None
        )

    def close(self) -> "Deferred[None]":
        """
        Close the index once the removals of replaced objects have ended (not part of
        L{IBackend}: call it when the connection goes away).
        """
        waiting = self.retirements.wait()
        waiting.addCallback(lambda _: self._run(self.spares.close))
        waiting.addCallback(lambda _: self._run(self.index.close))
        return waiting  # type: ignore[return-value]

    def _run(self, function: Callable[..., T], *args: object) -> "Deferred[T]":
        pool = self._threadpool or self._reactor.getThreadPool()
        return deferToThreadPool(self._reactor, pool, function, *args)

    #: Run a blocking call in the thread pool (for L{gateway.backends.reactorcommits}).
    run_blocking = _run

    def _writable(self, function: Callable[..., T], *args: object) -> "Deferred[T]":
        if self.read_only:
            return fail(ReadOnlyConnection("the connection is read-only"))
        return self._run(function, *args)

    def _writable_now(self, function: Callable[..., T], *args: object) -> "Deferred[T]":
        """
        Run a quick write step on the reactor thread (see the module's docstring).
        """
        if self.read_only:
            return fail(ReadOnlyConnection("the connection is read-only"))
        try:
            return succeed(function(*args))
        except BaseException:
            return fail()

    def real_root(self) -> str:
        """
        The root with symbolic links resolved, re-resolved only when the root's path leads to
        another directory than last time (one C{stat}, where C{realpath} takes one per level).
        """
        try:
            st = os.stat(self.root)
        except OSError:
            st = None
        if st is None or not stat.S_ISDIR(st.st_mode):
            raise BackendUnavailable(f"the bucket's directory {self.root} is missing")
        identity = (st.st_dev, st.st_ino)
        resolved = self._resolved
        if resolved is None or resolved[0] != identity:
            resolved = (identity, os.path.realpath(self.root))
            self._resolved = resolved
        return resolved[1]

    def _root_without_links(self) -> str:
        """
        The root for a read by C{openat2} that refuses any link on the way: without a C{stat}
        when the root's path was last found to have no link, since that path then leads
        wherever it is now, which the opening itself checks (a link put there since makes
        it fail, and the caller take L{real_root}); else L{real_root}.

        The C{stat} was 1.7 us of a small GET's 100.
        """
        resolved = self._resolved
        if resolved is not None and resolved[1] == self.root and self._link_free.available:
            return self.root
        return self.real_root()

    def locate(self, key: str) -> Tuple[str, str, bool]:
        """
        The resolved root, the path of C{key} and whether it is a folder marker.
        """
        root = self.real_root()
        path, folder = key_path(root, key)
        resolve_inside(root, path)
        return root, path, folder

    # Reading.

    def _quick(self, function: Callable[..., T], *args: object) -> "Deferred[T]":
        """
        Run a one-object metadata read on the reactor thread, or in a thread when it turns out
        to need a whole file read.

        Opening or stat-ing one object is a few system calls and one indexed SQLite lookup on
        a local disk, cheaper than the hand-over to a thread and back, which dominated small
        GETs and HEADs (bench/RESULTS.md). Only a file put there by other means whose ETag is
        not yet known needs reading, and that goes to a thread.
        """
        try:
            return succeed(function(*args, may_hash=False))
        except HashingNeeded:
            return self._run(function, *args)
        except BaseException:
            return fail()

    def stat(self, key: str) -> "Deferred[ObjectInfo]":
        return self._quick(self.stat_now, key)

    def stat_now(self, key: str, may_hash: bool = True) -> ObjectInfo:
        """
        L{stat}, blocking.
        """
        _, path, folder = self.locate(key)
        if folder:
            return self._marker_info(key, path)
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            raise NoSuchObject(key) from None
        if not stat.S_ISREG(st.st_mode):
            raise NoSuchObject(key)
        return self.index.file_info(key, path, st, self.index.get(key), may_hash)

    def _marker_info(self, key: str, path: str) -> ObjectInfo:
        row = self.index.get(key)
        if row is None or not os.path.isdir(path):
            raise NoSuchObject(key)
        return row.info()

    def open(self, key: str) -> "Deferred[IObjectReader]":
        return self._quick(self._open, key)

    def _open(self, key: str, may_hash: bool = True) -> IObjectReader:
        file, info = self.open_file(key, may_hash)
        return FileReader(
            info, file or io.BytesIO(b""), self._reactor, cold_reads=self._cold_reads
        )

    def open_file(
        self, key: str, may_hash: bool = True
    ) -> Tuple[Optional[BinaryIO], ObjectInfo]:
        """
        The opened file of C{key} (C{None} for a folder marker) and its info, as of the opening.
        """
        if split_key(key)[1]:
            _, path, _ = self.locate(key)
            return None, self._marker_info(key, path)
        root = self._root_without_links()
        path = key_path(root, key)[0]
        try:
            fd = self._link_free.open(path)
            if fd is None:
                # A symbolic link on the way (or no openat2): check where the path leads.
                root = self.real_root()
                path = key_path(root, key)[0]
                resolve_inside(root, path)
                fd = os.open(path, READ_FLAGS)
        except (FileNotFoundError, NotADirectoryError):
            self.real_root()  # BackendUnavailable if the root itself is gone
            raise NoSuchObject(key) from None
        file = DescriptorFile(fd)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise NoSuchObject(key)
            info = self.index.file_info(key, path, st, self.index.get(key), may_hash)
        except BaseException:
            file.close()
            raise
        return file, info  # type: ignore[return-value]

    # Listing.

    def list_objects(
        self, prefix: str, delimiter: Optional[str], start_after: str, max_keys: int
    ) -> "Deferred[ListingPage]":
        """
        One page, walked on the reactor thread when the walk reads one small directory (the
        usual request of a file browser, a folder of a few hundred keys), where the hand-over
        to a thread and back cost as much as the walk; in a thread otherwise, and when a file's
        ETag turns out to need reading it whole (L{localwalk.reads_little}).
        """
        delimiter = delimiter or None
        args = (prefix, delimiter, start_after, max_keys)
        try:
            if localwalk.reads_little(self.real_root(), prefix, delimiter == "/"):
                return succeed(self._list(*args, may_hash=False))
        except HashingNeeded:
            pass
        except BaseException:
            return fail()
        return self._run(self._list, *args)

    def _list(
        self,
        prefix: str,
        delimiter: Optional[str],
        start_after: str,
        max_keys: int,
        may_hash: bool = True,
    ) -> ListingPage:
        root = self.real_root()
        # One entry more than the page shows tells whether it is truncated.
        entries = localwalk.walk(
            self.index, root, prefix, delimiter == "/", start_after, max_keys + 1, may_hash
        )
        return paginate(entries, prefix, delimiter, start_after, max_keys)

    # Writing.

    def start_write(self, key: str, size: Optional[int] = None) -> "Deferred[IObjectWriter]":
        return self._writable_now(self._start_write, key, size)

    def _start_write(self, key: str, size: Optional[int] = None) -> IObjectWriter:
        """
        A writer for C{key}, whose folders are checked now (L{localfs.check_key}) unless the
        body is declared smaller than L{BATCHED_PUT_SIZE}: such a body is on its way or here
        already (unless the client waits for ``100 Continue``: it then sends a small body in
        vain before the refusal), and its commit checks the key anyway, under the key's lock,
        so a check now would mostly repeat it (three system calls: 6,108 4 KiB PUTs a second
        with them, 6,343 without, two workers at c=64). The key's syntax is checked now
        whatever the size.
        """
        root = self.real_root()
        segments, folder = split_key(key)
        if folder or size is None or size >= BATCHED_PUT_SIZE:
            localfs.check_key(root, segments, folder, key, self._folders)
        if folder:
            return LocalWriter(
                self._run,
                lambda fd, temp, metadata, condition: self._run(
                    self.make_marker, key, metadata, condition
                ),
            )
        return LocalWriter(
            self._run,
            lambda fd, temp, metadata, condition: self._commit_put(
                PendingInstall(key, fd, temp, metadata, condition)
            ),
            lambda: self.upload_file(root),
        )

    def _commit_put(self, job: PendingInstall) -> "Deferred[ObjectInfo]":
        """
        Commit a PUT whose body has arrived: a small one with the other small ones, on the
        reactor where the kernel can run their fsyncs (L{gateway.backends.reactorcommits}),
        else on the commit thread of the root's filesystem (L{commit_in_thread}); a large one in
        the thread pool, so that its long fsync does not hold up the small ones (batching saves
        it nothing).
        """
        if os.fstat(job.fd).st_size >= BATCHED_PUT_SIZE:
            return self._run(
                self.install, job.key, job.fd, job.temp, job.metadata, job.condition
            )
        if self._reactor_commits is not None:
            return self._reactor_commits.submit(job)
        return self.commit_in_thread(job)

    def commit_in_thread(self, job: PendingInstall) -> "Deferred[ObjectInfo]":
        """
        Commit a small PUT on the commit thread of the root's filesystem, with every other
        waiting there.
        """
        resolved = self._resolved
        device = resolved[0][0] if resolved is not None else None
        return self._commits.thread(device).submit(self.install_many, job)

    def temp_file(self, root: str) -> Tuple[int, str]:
        """
        A new temporary file on the root's filesystem: its descriptor (for writing) and path.
        """
        return self._temporary_files.new(self._temporary_folder(root))

    def upload_file(self, root: str) -> Tuple[int, str, int]:
        """
        L{temp_file} for an upload's body, which may be a spare file
        (L{gateway.backends.localspare}): also the bytes of old content the writer must cut off.
        """
        return self._temporary_files.new_or_spare(self._temporary_folder(root), self.spares)

    def _temporary_folder(self, root: str) -> str:
        """
        The root's temporary folder, once what crashes left under the root is being swept.
        """
        folder = os.path.join(root, RESERVED, "tmp")
        self.retirements.sweep(root, folder)
        return folder

    def check(
        self, condition: Optional[WriteCondition], key: str, path: str, folder: bool
    ) -> None:
        """
        Refuse a write whose condition does not hold now (hold the key's lock to rely on it).
        The stored ETag is what L{stat} reports: the row's, or a foreign file's MD5.
        """
        if condition is None:
            return
        if folder:
            row = self.index.get(key)
            exists = row is not None and os.path.isdir(path)
            check_condition(condition, key, exists, lambda: row.etag)  # type: ignore[union-attr]
            return
        try:
            st: Optional[os.stat_result] = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            st = None
        exists = st is not None and stat.S_ISREG(st.st_mode)

        def etag() -> str:
            assert st is not None
            return self.index.file_info(key, path, st, self.index.get(key)).etag

        check_condition(condition, key, exists, etag)

    def install(
        self,
        key: str,
        fd: int,
        temp: str,
        metadata: WriteMetadata,
        condition: Optional[WriteCondition] = None,
        parts_count: Optional[int] = None,
        part_sizes: Sequence[int] = (),
    ) -> ObjectInfo:
        """
        Make the temporary file C{temp} (open as C{fd}) the object C{key}: fsync, check the
        condition and rename into place under the key's lock, fsync the directory, record the
        metadata. The temporary file is gone afterwards, whether this worked or not.
        """
        job = PendingInstall(key, fd, temp, metadata, condition, parts_count, part_sizes)
        (outcome,) = self.install_many([job])
        if isinstance(outcome, Failure):
            outcome.raiseException()
        return outcome

    def install_many(self, pending: Sequence[PendingInstall]) -> List[Outcome[ObjectInfo]]:
        """
        L{install} for a batch: L{gateway.backends.localcommits.install_many}.
        """
        return localcommits.install_many(self, pending)

    def put_in_place(
        self,
        key: str,
        temp: str,
        st: os.stat_result,
        metadata: WriteMetadata,
        condition: Optional[WriteCondition],
        parts_count: Optional[int] = None,
        part_sizes: Sequence[int] = (),
        wait: bool = True,
        make_folders: bool = True,
    ) -> Tuple[ObjectInfo, str]:
        """
        The part of L{install} after the fsync of the file (whose C{fstat} is C{st}): check the
        condition and rename into place under the key's lock, record the metadata. The
        directory renamed into still has to be fsynced, and the index log: returns the new
        object's info and that directory.

        :param wait: wait for the key's lock; if false, raise L{KeyBusy} at once when another
            writer holds it, with the temporary file left as it was.
        :param make_folders: if false, raise L{FoldersToMake}, with the temporary file left as
            it was, rather than make a missing folder of the key (whose parent must then be
            fsynced too: that waits for the disk).
        """
        renamed = False
        busy = False
        retired: Optional[str] = None
        try:
            root = self.real_root()
            path = key_path(root, key)[0]
            segments = split_key(key)[0]
            info = ObjectInfo(
                key=key,
                size=st.st_size,
                etag=metadata.etag,
                last_modified=st.st_mtime_ns / 1e9,
                content_type=metadata.content_type,
                metadata=metadata.metadata,
                headers=metadata.headers,
                parts_count=parts_count,
                tags=metadata.tags,
                part_sizes=part_sizes,
            )
            row = row_for(info, st.st_mtime_ns)

            replaced: Optional[os.stat_result] = None
            tries = 0

            def rename() -> None:
                nonlocal renamed, retired, replaced, tries
                tries += 1
                if tries > 1:
                    # The folder went away since the check (place makes it again): whatever
                    # the key named then went with it.
                    replaced = localfs.check_clash(root, segments, False, key)
                if self.spares.swaps(root, temp, replaced):
                    with self.index.lock:
                        renamed = self.spares.swap(temp, path)
                        if renamed:
                            self.index.put(row)
                    if renamed:
                        # The old object now has the temporary file's name.
                        self.spares.add(temp)
                        return
                retired = localretire.set_aside(root, path, replaced)
                spare = self.spares.keep(root, path, replaced) if retired is None else None
                held = (
                    localretire.hold(path, replaced) if retired is None and spare is None
                    else None
                )
                try:
                    # The index lock makes the rename and the new row one step for the readers
                    # that remember MD5s of files changed by other means (ObjectIndex.file_info);
                    # nothing else is done under it, since every commit of the bucket needs it.
                    with self.index.lock:
                        os.replace(temp, path)
                        renamed = True
                        self.index.put(row)
                finally:
                    if retired is not None and not renamed:
                        # The old object is still in place: drop its second name at once.
                        localfs.remove_file(retired)
                        retired = None
                    if held is not None and renamed:
                        # The old file is freed by this close, in a thread.
                        self.retirements.close_later(held)
                    elif held is not None:
                        os.close(held)
                    if spare is not None and renamed:
                        self.spares.add(spare)
                    elif spare is not None:
                        localfs.remove_file(spare)

            try:
                with locked(root, key, wait):
                    # Where the key leads and what the upload replaces, checked once under
                    # the lock: only a writer of this key (which takes the lock) changes it.
                    replaced, folders_checked = localfs.check_key(
                        root, segments, False, key, self._folders
                    )
                    if not (folders_checked or make_folders):
                        raise FoldersToMake(key)
                    self.check(condition, key, path, False)
                    localfs.place(root, segments[:-1], rename, folders_checked)
            except (KeyBusy, FoldersToMake):
                # Raised before anything was done.
                busy = True
                raise
            return info, os.path.dirname(path)
        finally:
            if not renamed and not busy:
                localfs.remove_file(temp)
            if retired is not None:
                self.retirements.remove_later(retired)

    def make_marker(
        self, key: str, metadata: WriteMetadata, condition: Optional[WriteCondition] = None
    ) -> ObjectInfo:
        """
        Make the folder marker C{key}: its directory and its row.
        """
        root, path, _ = self.locate(key)
        segments = split_key(key)[0]
        localfs.check_clash(root, segments, True, key)
        with locked(root, key):
            self.check(condition, key, path, True)
            localfs.place(root, segments, lambda: None)
            now = time.time_ns()
            info = ObjectInfo(
                key=key,
                size=0,
                etag=metadata.etag,
                last_modified=now / 1e9,
                content_type=metadata.content_type,
                metadata=metadata.metadata,
                headers=metadata.headers,
                tags=metadata.tags,
            )
            self.index.put(row_for(info, now))
        self.index.sync()
        return info

    def update_metadata(
        self, key: str, metadata: WriteMetadata, condition: Optional[WriteCondition] = None
    ) -> "Deferred[ObjectInfo]":
        return self._writable(localcopy.update_metadata, self, key, metadata, condition)

    def delete(self, key: str) -> "Deferred[None]":
        return self._writable(self._delete, key)

    def _delete(self, key: str) -> None:
        root, path, folder = self.locate(key)
        segments = split_key(key)[0]
        retired: Optional[str] = None
        with locked(root, key):
            if folder:
                self.index.delete(key)
                localfs.remove_empty_directory(path)
            else:
                try:
                    found = os.lstat(path)
                    if not stat.S_ISDIR(found.st_mode):
                        retired = localretire.move_aside(root, path, found)
                        if retired is None:
                            os.unlink(path)
                except (FileNotFoundError, NotADirectoryError):
                    pass
                self.index.delete(key)
        if retired is not None:
            self.retirements.remove_later(retired)
        self._prune(root, segments[:-1])

    def _prune(self, root: str, segments: Sequence[str]) -> None:
        """
        Remove the now empty folders of C{segments}, deepest first, up to the root or a folder
        marker.
        """
        while segments:
            if self.index.get("/".join(segments) + "/") is not None:
                return
            if not localfs.remove_empty_directory(os.path.join(root, *segments)):
                return
            segments = segments[:-1]

    # Multipart uploads (gateway.backends.localparts).

    def start_part_write(self, upload_id: str, part_number: int) -> "Deferred[IObjectWriter]":
        return self._writable_now(localparts.start_part_write, self, upload_id, part_number)

    def complete_upload(
        self,
        upload_id: str,
        key: str,
        parts: Sequence[Tuple[int, int]],
        metadata: WriteMetadata,
        condition: Optional[WriteCondition] = None,
    ) -> "Deferred[ObjectInfo]":
        return self._writable(
            localparts.complete_upload, self, upload_id, key, list(parts), metadata, condition
        )

    def abort_upload(self, upload_id: str) -> "Deferred[None]":
        return self._writable(localparts.abort_upload, self, upload_id)

    # Server-side copies (gateway.backends.localcopy, as are metadata updates).

    def copy_object(
        self,
        source_key: str,
        key: str,
        metadata: WriteMetadata,
        condition: Optional[WriteCondition] = None,
    ) -> "Deferred[ObjectInfo]":
        return self._writable(localcopy.copy_object, self, source_key, key, metadata, condition)

    def copy_part(
        self, source_key: str, byte_range: Optional[ByteRange], upload_id: str, part_number: int
    ) -> "Deferred[ObjectInfo]":
        return self._writable(
            localcopy.copy_part, self, source_key, byte_range, upload_id, part_number
        )
