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
  or the new one, never a part, and a crash leaves at most a temporary file that no listing shows;
- multipart parts are ``<root>/.s3gateway/uploads/<upload id>/<part number>``.

Listings show directories as common prefixes with delimiter ``/``, also empty ones and ones made
by other means; only regular files and directories are listed (symbolic links are not, though a
key that leads through a link to a place still inside the root is served).

Every blocking call runs in the thread pool, except the writes of upload bodies, which go to the
page cache as they arrive on the reactor thread (quick on a local disk; never the whole body).
"""

from __future__ import annotations

import io
import os
import secrets
import shutil
import stat
import time
from typing import Callable, List, Optional, Sequence, Tuple, TypeVar

from twisted.internet.defer import Deferred, fail
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool
from zope.interface import implementer

from gateway.backends import localfs
from gateway.backends.localfs import LocalWriter
from gateway.backends.localindex import ObjectIndex, row_for
from gateway.backends.localkeys import (
    RESERVED,
    check_upload_id,
    key_path,
    resolve_inside,
    split_key,
)
from gateway.backends.localwalk import walk
from gateway.backends.producer import FileReader
from gateway.interfaces import (
    BackendError,
    BackendUnavailable,
    IBackend,
    IObjectReader,
    IObjectWriter,
    InvalidObjectKey,
    NoSuchObject,
    NoSuchUpload,
    ReadOnlyConnection,
)
from gateway.listing import paginate
from gateway.model import ListingPage, ObjectInfo, WriteMetadata

T = TypeVar("T")

#: The highest part number S3 allows.
MAX_PART_NUMBER = 10000


@implementer(IBackend)
class LocalBackend:
    """
    The objects of one connection, as files under C{root}.

    :param root: the bucket's directory.
    :param index_path: the SQLite file of the bucket's metadata index (made on first use).
    :param reactor: runs the callbacks; gives the default thread pool.
    :param threadpool: where blocking calls run; the reactor's by default.
    :param read_only: refuse every write with L{ReadOnlyConnection}.
    """

    def __init__(
        self,
        root: str,
        index_path: str,
        reactor,  # type: ignore[no-untyped-def]
        threadpool: Optional[ThreadPool] = None,
        read_only: bool = False,
    ) -> None:
        self.root = os.path.abspath(root)
        self.read_only = read_only
        self.index = ObjectIndex(index_path)
        self._reactor = reactor
        self._threadpool = threadpool

    def close(self) -> "Deferred[None]":
        """
        Close the index (not part of L{IBackend}: call it when the connection goes away).
        """
        return self._run(self.index.close)

    def _run(self, function: Callable[..., T], *args: object) -> "Deferred[T]":
        pool = self._threadpool or self._reactor.getThreadPool()
        return deferToThreadPool(self._reactor, pool, function, *args)

    def _writable(self, function: Callable[..., T], *args: object) -> "Deferred[T]":
        if self.read_only:
            return fail(ReadOnlyConnection("the connection is read-only"))
        return self._run(function, *args)

    def _real_root(self) -> str:
        if not os.path.isdir(self.root):
            raise BackendUnavailable(f"the bucket's directory {self.root} is missing")
        return os.path.realpath(self.root)

    def _locate(self, key: str) -> Tuple[str, str, bool]:
        """
        The resolved root, the path of C{key} and whether it is a folder marker.
        """
        root = self._real_root()
        path, folder = key_path(root, key)
        resolve_inside(root, path)
        return root, path, folder

    # Reading.

    def stat(self, key: str) -> "Deferred[ObjectInfo]":
        return self._run(self._stat, key)

    def _stat(self, key: str) -> ObjectInfo:
        _, path, folder = self._locate(key)
        if folder:
            return self._marker_info(key, path)
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            raise NoSuchObject(key) from None
        if not stat.S_ISREG(st.st_mode):
            raise NoSuchObject(key)
        return self.index.file_info(key, path, st, self.index.get(key))

    def _marker_info(self, key: str, path: str) -> ObjectInfo:
        row = self.index.get(key)
        if row is None or not os.path.isdir(path):
            raise NoSuchObject(key)
        return row.info()

    def open(self, key: str) -> "Deferred[IObjectReader]":
        return self._run(self._open, key)

    def _open(self, key: str) -> IObjectReader:
        _, path, folder = self._locate(key)
        if folder:
            return FileReader(self._marker_info(key, path), io.BytesIO(b""), self._reactor)
        try:
            # O_NONBLOCK: opening a FIFO put there by other means must not hang the thread.
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except (FileNotFoundError, NotADirectoryError):
            raise NoSuchObject(key) from None
        file = os.fdopen(fd, "rb", buffering=0)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise NoSuchObject(key)
            info = self.index.file_info(key, path, st, self.index.get(key))
        except BaseException:
            file.close()
            raise
        return FileReader(info, file, self._reactor)  # type: ignore[arg-type]

    # Listing.

    def list_objects(
        self, prefix: str, delimiter: Optional[str], start_after: str, max_keys: int
    ) -> "Deferred[ListingPage]":
        return self._run(self._list, prefix, delimiter or None, start_after, max_keys)

    def _list(
        self, prefix: str, delimiter: Optional[str], start_after: str, max_keys: int
    ) -> ListingPage:
        root = self._real_root()
        entries = walk(self.index, root, prefix, delimiter == "/", start_after)
        return paginate(entries, prefix, delimiter, start_after, max_keys)

    # Writing.

    def start_write(self, key: str) -> "Deferred[IObjectWriter]":
        return self._writable(self._start_write, key)

    def _start_write(self, key: str) -> IObjectWriter:
        root, path, folder = self._locate(key)
        localfs.check_clash(root, split_key(key)[0], folder, key)
        if folder:
            return LocalWriter(
                self._run, lambda fd, temp, metadata: self._make_marker(key, metadata)
            )
        fd, temp = self._temp_file(root)
        return LocalWriter(
            self._run,
            lambda fd, temp, metadata: self._install(key, fd, temp, metadata, None),
            fd,
            temp,
        )

    def _temp_file(self, root: str) -> Tuple[int, str]:
        folder = os.path.join(root, RESERVED, "tmp")
        os.makedirs(folder, mode=0o700, exist_ok=True)
        temp = os.path.join(folder, secrets.token_hex(16))
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        return os.open(temp, flags, 0o644), temp

    def _install(
        self,
        key: str,
        fd: int,
        temp: str,
        metadata: WriteMetadata,
        parts_count: Optional[int],
    ) -> ObjectInfo:
        """
        Make the temporary file C{temp} (open as C{fd}) the object C{key}: fsync, rename into
        place, fsync the directory, record the metadata. The temporary file is gone afterwards,
        whether this worked or not.
        """
        try:
            os.fsync(fd)
            st = os.fstat(fd)
            os.close(fd)
            fd = -1
            root, path, _ = self._locate(key)
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
            )

            def rename() -> None:
                localfs.check_clash(root, segments, False, key)
                os.replace(temp, path)

            # The index lock makes the rename and the new row one step for the readers that
            # remember MD5s of files changed by other means (ObjectIndex.file_info).
            localfs.check_clash(root, segments, False, key)
            with self.index.lock:
                localfs.place(root, segments[:-1], rename)
                self.index.put(row_for(info, st.st_mtime_ns))
            localfs.fsync_directory(os.path.dirname(path))
            return info
        finally:
            if fd >= 0:
                os.close(fd)
            localfs.remove_file(temp)

    def _make_marker(self, key: str, metadata: WriteMetadata) -> ObjectInfo:
        root, path, _ = self._locate(key)
        segments = split_key(key)[0]
        localfs.check_clash(root, segments, True, key)
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
        )
        self.index.put(row_for(info, now))
        return info

    def delete(self, key: str) -> "Deferred[None]":
        return self._writable(self._delete, key)

    def _delete(self, key: str) -> None:
        root, path, folder = self._locate(key)
        segments = split_key(key)[0]
        if folder:
            self.index.delete(key)
            localfs.remove_empty_directory(path)
        else:
            try:
                if not stat.S_ISDIR(os.lstat(path).st_mode):
                    os.unlink(path)
            except (FileNotFoundError, NotADirectoryError):
                pass
            self.index.delete(key)
        self._prune(root, segments[:-1])

    def _prune(self, root: str, segments: List[str]) -> None:
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

    # Multipart uploads.

    def _upload_directory(self, root: str, upload_id: str) -> str:
        return os.path.join(root, RESERVED, "uploads", check_upload_id(upload_id))

    def start_part_write(self, upload_id: str, part_number: int) -> "Deferred[IObjectWriter]":
        return self._writable(self._start_part_write, upload_id, part_number)

    def _start_part_write(self, upload_id: str, part_number: int) -> IObjectWriter:
        if not 1 <= part_number <= MAX_PART_NUMBER:
            raise BackendError(f"part numbers run from 1 to {MAX_PART_NUMBER}")
        root = self._real_root()
        folder = self._upload_directory(root, upload_id)
        fd, temp = self._temp_file(root)

        def commit(fd: int, temp: str, metadata: WriteMetadata) -> ObjectInfo:
            try:
                os.fsync(fd)
                st = os.fstat(fd)
                os.makedirs(folder, mode=0o700, exist_ok=True)
                os.replace(temp, os.path.join(folder, str(part_number)))
            finally:
                os.close(fd)
                localfs.remove_file(temp)
            localfs.fsync_directory(folder)
            return ObjectInfo(
                f"{upload_id}/{part_number}", st.st_size, metadata.etag, st.st_mtime_ns / 1e9
            )

        return LocalWriter(self._run, commit, fd, temp)

    def complete_upload(
        self, upload_id: str, key: str, parts: Sequence[Tuple[int, int]], metadata: WriteMetadata
    ) -> "Deferred[ObjectInfo]":
        return self._writable(self._complete_upload, upload_id, key, list(parts), metadata)

    def _complete_upload(
        self, upload_id: str, key: str, parts: List[Tuple[int, int]], metadata: WriteMetadata
    ) -> ObjectInfo:
        root, _, folder = self._locate(key)
        if folder:
            raise InvalidObjectKey("a multipart upload cannot make a folder marker")
        localfs.check_clash(root, split_key(key)[0], False, key)
        directory = self._upload_directory(root, upload_id)
        if not os.path.isdir(directory):
            raise NoSuchUpload(upload_id)
        paths = [os.path.join(directory, str(number)) for number, _ in parts]
        for path, (number, size) in zip(paths, parts):
            try:
                actual = os.stat(path).st_size
            except FileNotFoundError:
                raise BackendError(f"part {number} is not stored") from None
            if actual != size:
                raise BackendError(f"part {number} has {actual} bytes stored, not {size}")
        fd, temp = self._temp_file(root)
        try:
            for path, (_, size) in zip(paths, parts):
                localfs.append_file(fd, path, size)
        except BaseException:
            os.close(fd)
            localfs.remove_file(temp)
            raise
        info = self._install(key, fd, temp, metadata, len(parts))
        shutil.rmtree(directory, ignore_errors=True)
        return info

    def abort_upload(self, upload_id: str) -> "Deferred[None]":
        return self._writable(self._abort_upload, upload_id)

    def _abort_upload(self, upload_id: str) -> None:
        try:
            directory = self._upload_directory(self._real_root(), upload_id)
        except NoSuchUpload:
            return
        shutil.rmtree(directory, ignore_errors=True)
