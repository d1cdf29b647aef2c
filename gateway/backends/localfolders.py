"""
The listings of small folders of a local bucket, kept compact and reused while nothing changed.

A file browser lists folder after folder; reading a folder of a hundred keys again (the names,
one C{stat} and one index row per file, one L{ObjectInfo} per key) was most of the time of such a
request. A L{Folder} keeps what its listing needs in a few flat strings and arrays (some forty
bytes a key), and is used again only while all of these hold, checked at every use:

- the directory is the same one, unchanged: its device, inode, size, mtime and ctime (any file
  created, removed or renamed in it, by any program, changes its mtime and ctime);
- the index rows of the folder's keys are unchanged: the folder's change count in the index
  (L{ObjectIndex.folder_version}), which every write of a row bumps in the same statement, in
  whatever gateway process made it;
- the directory's last change was at least L{SETTLED} before the folder was read: a filesystem
  stamps times from a coarse clock (a few milliseconds; a second or two on some), so a change in
  the same tick as an earlier one would leave the times as they were;
- the files' sizes and mtimes, checked (one C{stat} each) when the folder was last checked more
  than L{RECHECK} seconds ago: a file rewritten in place by another program (not replaced)
  changes neither the directory nor the index. Such a change shows within L{RECHECK} seconds,
  where it showed at the next listing before; every other change shows at once.

The cache (L{FolderCache}) holds at most L{MAX_BYTES} of folders, least recently used first out,
and only folders of at most L{MAX_ENTRIES} entries.
"""

from __future__ import annotations

import os
import re
import threading
import time
from array import array
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

from gateway.backends.localwatch import FolderWatcher
from gateway.model import ObjectInfo

#: The largest folder kept, in entries (files and subdirectories).
MAX_ENTRIES = 1000

#: The most the cache holds, in bytes (as counted by L{Folder.weight}).
MAX_BYTES = 6 << 20

#: How long after its last change a directory must be before its listing is kept, in seconds.
SETTLED = 2.0

#: How often a kept folder's files are checked again for changes in place, in seconds.
RECHECK = 2.0

_MD5 = re.compile(r"[0-9a-f]{32}")

#: The directory's identity and times: (device, inode, size, mtime, ctime).
Identity = Tuple[int, int, int, int, int]


class Folder:
    """
    The listable entries of one directory, in S3 order, as of one reading.

    :ivar names: the entries' names, a subdirectory's with a ``/`` after it, joined by NULs
        (which no name has).
    :ivar marker: the folder's own marker key's info, if it has one.
    :ivar rich: the info of the files whose rows hold more than the common columns, by place
        among the files (metadata, headers, tags, parts).
    """

    __slots__ = (
        "identity", "version", "checked", "names", "etags", "types", "sizes", "mtimes",
        "marker", "rich", "weight", "watched",
    )

    def __init__(
        self,
        identity: Identity,
        version: int,
        names: List[str],
        files: Sequence[Tuple[ObjectInfo, int]],
        marker: Optional[ObjectInfo],
    ) -> None:
        self.identity = identity
        self.version = version
        self.checked = time.monotonic()
        self.names = "\0".join(names)
        etags = [info.etag for info, _ in files]
        if all(_MD5.fullmatch(etag) for etag in etags):
            self.etags: "bytes | str" = bytes.fromhex("".join(etags))
        else:
            self.etags = "\0".join(etags)
        types = {info.content_type for info, _ in files}
        self.types: "str | Tuple[str, ...]" = (
            types.pop() if len(types) == 1 else tuple(info.content_type for info, _ in files)
        )
        self.sizes = array("q", [info.size for info, _ in files])
        self.mtimes = array("q", [mtime for _, mtime in files])
        self.marker = marker
        #: Whether a watch on the directory was armed before it was read: any change since
        #: drops the folder (L{gateway.backends.localwatch}), so its files need no C{stat}.
        self.watched = False
        self.rich: Dict[int, ObjectInfo] = {
            place: info for place, (info, _) in enumerate(files) if _is_rich(info)
        }
        self.weight = (
            400 + len(self.names) + len(self.etags) + 24 * len(files) + 1000 * len(self.rich)
        )

    @classmethod
    def usable(cls, files: Sequence[Tuple[ObjectInfo, int]]) -> bool:
        """
        Whether a folder of these files can be kept (an ETag with a NUL could not).
        """
        return all("\0" not in info.etag for info, _ in files)

    def entries(self, key_prefix: str) -> List[Tuple[str, bool, Optional[ObjectInfo]]]:
        """
        The entries as (sort key, is directory, info), in order; a subdirectory has no info.
        """
        names = self.names.split("\0") if self.names else []
        etags = self.etags
        if isinstance(etags, bytes):
            etag_list = [etags[i : i + 16].hex() for i in range(0, len(etags), 16)]
        else:
            etag_list = etags.split("\0")
        types = self.types
        sizes, mtimes, rich = self.sizes, self.mtimes, self.rich
        out: List[Tuple[str, bool, Optional[ObjectInfo]]] = []
        place = 0
        for name in names:
            key = key_prefix + name
            if name[-1] == "/":
                out.append((key, True, None))
                continue
            info = rich.get(place)
            if info is None:
                info = ObjectInfo(
                    key,
                    sizes[place],
                    etag_list[place],
                    mtimes[place] / 1e9,
                    types if isinstance(types, str) else types[place],
                )
            out.append((key, False, info))
            place += 1
        return out

    def fresh(self, fd: int) -> bool:
        """
        Whether the files still have their sizes and mtimes, checked by C{stat} (relative to
        the directory open as C{fd}) only if last checked more than L{RECHECK} seconds ago.
        """
        if self.watched or time.monotonic() - self.checked <= RECHECK:
            return True
        names = [n for n in (self.names.split("\0") if self.names else []) if n[-1] != "/"]
        for name, size, mtime_ns in zip(names, self.sizes, self.mtimes):
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except OSError:
                return False
            if st.st_size != size or st.st_mtime_ns != mtime_ns:
                return False
        self.checked = time.monotonic()
        return True


def _is_rich(info: ObjectInfo) -> bool:
    return bool(info.metadata or info.headers or info.tags or info.part_sizes) or (
        info.parts_count is not None
    )


class FolderCache:
    """
    Kept L{Folder}s by directory path, least recently used dropped first past L{MAX_BYTES}.
    Used from the reactor thread and pool threads alike.

    :param watcher: the process's L{FolderWatcher}, if folders may be watched for changes.
    """

    def __init__(
        self, max_bytes: int = MAX_BYTES, watcher: Optional[FolderWatcher] = None
    ) -> None:
        self._folders: "OrderedDict[str, Folder]" = OrderedDict()
        self._lock = threading.Lock()
        self._max_bytes = max_bytes
        self._watcher = watcher
        self.weight = 0

    def watch(self, path: str) -> Optional[int]:
        """
        Arm a watch on the directory C{path} before it is read (see L{Folder.watched}), for
        L{put}: C{None} if it cannot be watched.
        """
        return None if self._watcher is None else self._watcher.watch(path, self._changed)

    def get(self, path: str, identity: Identity, version: int) -> Optional[Folder]:
        """
        The folder kept for C{path}, if it is still the listing of the directory as it is.
        """
        if self._watcher is not None:
            self._watcher.drain()
        with self._lock:
            folder = self._folders.get(path)
            if folder is None:
                return None
            if folder.identity == identity and folder.version == version:
                self._folders.move_to_end(path)
                return folder
            self._remove(path)
        self._unwatch([path])
        return None

    def put(self, path: str, folder: Folder, watch: Optional[int] = None) -> None:
        """
        Keep C{folder}; if it was read under the watch C{watch} (L{watch}), only if the watch
        has seen no change since, and then as a folder that needs no C{stat} of its files.
        """
        if watch is None:
            self._insert(path, folder)
        elif self._watcher is not None:
            folder.watched = True
            self._watcher.while_armed(path, watch, lambda: self._insert(path, folder))

    def _insert(self, path: str, folder: Folder) -> None:
        dropped = []
        with self._lock:
            self._remove(path)
            self._folders[path] = folder
            self.weight += folder.weight
            while self.weight > self._max_bytes:
                old_path, old = self._folders.popitem(last=False)
                self.weight -= old.weight
                dropped.append(old_path)
        self._unwatch(dropped)

    def drop(self, path: str) -> None:
        """
        Forget C{path}'s folder, and its watch.
        """
        with self._lock:
            self._remove(path)
        self._unwatch([path])

    def _changed(self, path: str) -> None:
        # Called by the watcher's drain: the (one-shot) watch is gone already.
        with self._lock:
            self._remove(path)

    def _remove(self, path: str) -> None:
        old = self._folders.pop(path, None)
        if old is not None:
            self.weight -= old.weight

    def _unwatch(self, paths: List[str]) -> None:
        if self._watcher is not None:
            for path in paths:
                self._watcher.unwatch(path)

    def __len__(self) -> int:
        return len(self._folders)


def settled(identity: Identity, now_ns: int) -> bool:
    """
    Whether a directory with this identity last changed long enough ago (L{SETTLED}) for a later
    change to be sure to change its times.
    """
    return now_ns - max(identity[3], identity[4]) > SETTLED * 1e9
