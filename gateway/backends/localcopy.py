"""
Changes of the local backend that start from a stored object: server-side copies (CopyObject,
UploadPartCopy) and metadata-only updates (CopyObject onto itself, object tagging).

A copy reads the source through one open descriptor, so a concurrent replacement of the source
(a rename) cannot mix two versions; it goes to a temporary file, in the kernel where it can
(``copy_file_range`` shares blocks on filesystems that can), and is installed as any upload, under
the key's lock. A source that is the key itself is therefore safe: its old bytes are copied aside
before they are replaced by themselves.

Every function blocks and runs in the backend's thread pool; the backend's methods call them.
"""

from __future__ import annotations

import hashlib
import os
import time
from typing import TYPE_CHECKING, Optional

from attrs import evolve

from gateway.backends import localfs
from gateway.backends.localindex import row_for
from gateway.backends.locallock import locked
from gateway.backends.localkeys import split_key
from gateway.backends.localparts import check_part_number, store_part, upload_directory
from gateway.interfaces import BackendError, InvalidObjectKey
from gateway.model import ByteRange, ObjectInfo, WriteCondition, WriteMetadata

if TYPE_CHECKING:
    from gateway.backends.local import LocalBackend


def copy_object(
    backend: "LocalBackend",
    source_key: str,
    key: str,
    metadata: WriteMetadata,
    condition: Optional[WriteCondition],
) -> ObjectInfo:
    """
    Copy C{source_key}'s body to C{key} with C{metadata}. The copy keeps the source's ETag and
    part sizes: C{metadata.etag} is normally that ETag, and if the source was replaced since the
    caller looked, the ETag recorded is the one of the bytes actually copied.
    """
    root, path, folder = backend.locate(key)
    localfs.check_clash(root, split_key(key)[0], folder, key)
    file, source = backend.open_file(source_key)
    metadata = evolve(metadata, etag=source.etag)
    try:
        backend.check(condition, key, path, folder)  # fail early; checked again under the lock
        if folder:
            if source.size:
                raise InvalidObjectKey(f"folder marker {key!r} cannot have a body")
            return backend.make_marker(key, metadata, condition)
        fd, temp = backend.temp_file(root)
        try:
            if file is not None:
                before = os.fstat(file.fileno())
                localfs.copy_bytes(file.fileno(), fd, source.size, source_key)
                _check_unchanged(before, os.fstat(file.fileno()), source_key)
        except BaseException:
            os.close(fd)
            localfs.remove_file(temp)
            raise
    finally:
        if file is not None:
            file.close()
    return backend.install(
        key, fd, temp, metadata, condition, source.parts_count, source.part_sizes
    )


def copy_part(
    backend: "LocalBackend",
    source_key: str,
    byte_range: Optional[ByteRange],
    upload_id: str,
    part_number: int,
) -> ObjectInfo:
    """
    Store C{byte_range} of C{source_key} (all of it with C{None}) as a part; the part's ETag is
    the MD5 of the bytes, computed as they are copied (the source is read once).
    """
    check_part_number(part_number)
    root = backend.real_root()
    folder = upload_directory(root, upload_id)
    file, source = backend.open_file(source_key)
    try:
        if byte_range is None:
            first, length = 0, source.size
        else:
            first, length = byte_range.first, byte_range.length
        if first < 0 or length < 0 or first + length > source.size:
            raise BackendError(f"the range is outside the {source.size} bytes of {source_key!r}")
        fd, temp = backend.temp_file(root)
        try:
            if file is None:
                etag = hashlib.md5(b"", usedforsecurity=False).hexdigest()
            else:
                os.lseek(file.fileno(), first, os.SEEK_SET)
                etag = localfs.copy_hashing(file.fileno(), fd, length, source_key)
        except BaseException:
            os.close(fd)
            localfs.remove_file(temp)
            raise
    finally:
        if file is not None:
            file.close()
    return store_part(backend, root, upload_id, folder, part_number, fd, temp, etag)


def update_metadata(
    backend: "LocalBackend",
    key: str,
    metadata: WriteMetadata,
    condition: Optional[WriteCondition],
) -> ObjectInfo:
    """
    Replace the stored metadata of C{key}, keep its body, ETag and part sizes, and make its
    last-modified time now, as S3 does. A file put there by other means gains a row.
    """
    root, path, folder = backend.locate(key)
    with locked(root, key):
        current = backend.stat_now(key)
        backend.check(condition, key, path, folder)
        with backend.index.lock:
            # A row holds while the file keeps its mtime, so the new time goes on the file.
            now = time.time_ns() if folder else _touch(path)
            info = evolve(
                current,
                last_modified=now / 1e9,
                content_type=metadata.content_type,
                metadata=metadata.metadata,
                headers=metadata.headers,
                tags=metadata.tags,
            )
            backend.index.put(row_for(info, now))
    backend.index.sync()
    return info


def _touch(path: str) -> int:
    """
    Set the file's mtime to now and return it as the filesystem stored it; the old one if the
    file is not ours to change (owned by another account).
    """
    try:
        os.utime(path, ns=(os.stat(path).st_atime_ns, time.time_ns()))
    except PermissionError:
        pass
    return os.stat(path).st_mtime_ns


def _check_unchanged(before: os.stat_result, after: os.stat_result, key: str) -> None:
    """
    Refuse a copy whose source was rewritten in place (by other means) while it was read.
    """
    if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns):
        raise BackendError(f"{key!r} changed while it was copied; try again")
