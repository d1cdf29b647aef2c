"""
Multipart uploads of the local backend: parts are files in
``<root>/.s3gateway/uploads/<upload id>/<part number>``, joined into a temporary file in the kernel
(``copy_file_range``) when the upload completes, then installed as any upload.

Every function but L{start_part_write} (a few path checks, run on the reactor thread) blocks and
runs in the backend's thread pool; the backend's methods call them.
"""

from __future__ import annotations

import os
import shutil
from typing import TYPE_CHECKING, List, Optional, Tuple

from gateway.backends import localfs, localretire
from gateway.backends.localcommits import settle
from gateway.backends.localfs import LocalWriter
from gateway.backends.localkeys import RESERVED, check_upload_id, split_key
from gateway.interfaces import BackendError, IObjectWriter, InvalidObjectKey, NoSuchUpload
from gateway.model import ObjectInfo, WriteCondition, WriteMetadata

if TYPE_CHECKING:
    from gateway.backends.local import LocalBackend

#: The highest part number S3 allows.
MAX_PART_NUMBER = 10000


def upload_directory(root: str, upload_id: str) -> str:
    """
    Where the parts of C{upload_id} live (an id that is no safe name is no upload at all).
    """
    return os.path.join(root, RESERVED, "uploads", check_upload_id(upload_id))


def check_part_number(part_number: int) -> None:
    if not 1 <= part_number <= MAX_PART_NUMBER:
        raise BackendError(f"part numbers run from 1 to {MAX_PART_NUMBER}")


def store_part(
    backend: "LocalBackend",
    root: str,
    upload_id: str,
    folder: str,
    part_number: int,
    fd: int,
    temp: str,
    etag: str,
) -> ObjectInfo:
    """
    Make the temporary file C{temp} (open as C{fd}) part C{part_number} in C{folder} under the
    resolved C{root}, durably, replacing an earlier one; blocks. A large earlier part (a client
    retrying its upload) is freed after the answer rather than inside the rename
    (L{gateway.backends.localretire}). The temporary file is gone afterwards, whether this worked
    or not.
    """
    retired: Optional[str] = None
    renamed = False
    try:
        st = settle(fd)
        os.makedirs(folder, mode=0o700, exist_ok=True)
        target = os.path.join(folder, str(part_number))
        try:
            retired = localretire.set_aside(root, target, os.stat(target))
        except FileNotFoundError:
            pass
        os.replace(temp, target)
        renamed = True
    finally:
        if not renamed:
            localfs.remove_file(temp)
        if retired is not None:
            backend.retirements.remove_later(retired)
    backend.syncs.sync(folder)
    return ObjectInfo(f"{upload_id}/{part_number}", st.st_size, etag, st.st_mtime_ns / 1e9)


def start_part_write(backend: "LocalBackend", upload_id: str, part_number: int) -> IObjectWriter:
    check_part_number(part_number)
    root = backend.real_root()
    folder = upload_directory(root, upload_id)

    return LocalWriter(
        backend._run,
        lambda fd, temp, metadata, condition: backend._run(
            store_part, backend, root, upload_id, folder, part_number, fd, temp, metadata.etag
        ),
        lambda: backend.upload_file(root),
    )


def complete_upload(
    backend: "LocalBackend",
    upload_id: str,
    key: str,
    parts: List[Tuple[int, int]],
    metadata: WriteMetadata,
    condition: Optional[WriteCondition],
) -> ObjectInfo:
    """
    Join the listed parts into the object C{key}, then remove the upload's folder. A failed
    condition leaves the parts in place, so that the client may complete again.
    """
    root, path, folder = backend.locate(key)
    if folder:
        raise InvalidObjectKey("a multipart upload cannot make a folder marker")
    localfs.check_clash(root, split_key(key)[0], False, key)
    directory = upload_directory(root, upload_id)
    if not os.path.isdir(directory):
        raise NoSuchUpload(upload_id)
    paths = [os.path.join(directory, str(number)) for number, _ in parts]
    for part_path, (number, size) in zip(paths, parts):
        try:
            actual = os.stat(part_path).st_size
        except FileNotFoundError:
            raise BackendError(f"part {number} is not stored") from None
        if actual != size:
            raise BackendError(f"part {number} has {actual} bytes stored, not {size}")
    # Fail early, before the copy; install checks again under the key's lock.
    backend.check(condition, key, path, False)
    fd, temp = backend.temp_file(root)
    try:
        for part_path, (_, size) in zip(paths, parts):
            localfs.append_file(fd, part_path, size)
    except BaseException:
        os.close(fd)
        localfs.remove_file(temp)
        raise
    sizes = [size for _, size in parts]
    info = backend.install(key, fd, temp, metadata, condition, len(parts), sizes)
    _discard_parts(backend, root, directory)
    return info


def abort_upload(backend: "LocalBackend", upload_id: str) -> None:
    try:
        root = backend.real_root()
        directory = upload_directory(root, upload_id)
    except NoSuchUpload:
        return
    if not os.path.isdir(directory):
        # Never started, or aborted already: nothing to take aside (and no retired folder to
        # make for it).
        return
    _discard_parts(backend, root, directory)


def _discard_parts(backend: "LocalBackend", root: str, directory: str) -> None:
    # Gone from the upload's place at once (one rename); the bytes are freed after the answer,
    # which a gigabyte of parts made wait about a quarter of a second (localretire).
    retired = localretire.move_tree_aside(root, directory)
    if retired is None:
        shutil.rmtree(directory, ignore_errors=True)
    else:
        backend.retirements.remove_later(retired)
