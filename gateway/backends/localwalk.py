"""
The local backend's listing walk: a directory tree read lazily, in S3 order.

Each directory is read once, its entries sorted as S3 sorts keys (UTF-8 byte order, a directory
sorting as its name and ``/``), and its index rows fetched in one query per few hundred entries.
With the ``/`` delimiter a subdirectory is yielded as a L{Subtree} instead of being read, so a
delimiter listing reads only the directory it lists. The walk starts at the deepest directory the
prefix names, and never reads a subtree that sorts entirely before the marker.
"""

from __future__ import annotations

import os
from typing import Iterator, List, Tuple

from gateway.backends.localindex import ObjectIndex
from gateway.backends.localkeys import MAX_KEY_BYTES, RESERVED, is_listable_name, resolve_inside
from gateway.interfaces import InvalidObjectKey
from gateway.listing import Entry, Subtree, sorts_before

#: Entries of one directory whose index rows are fetched in one query.
BATCH = 500


def walk(
    index: ObjectIndex, root: str, prefix: str, rollup: bool, start_after: str
) -> Iterator[Entry]:
    """
    The entries under C{root} that may match C{prefix}, in S3 order. Blocks: run it in a thread.

    :param root: the bucket's resolved directory.
    :param rollup: whether the listing's delimiter is ``/``.
    """
    head, slash, name_filter = prefix.rpartition("/")
    segments = head.split("/") if slash else []
    if any(not is_listable_name(s) for s in segments) or segments[:1] == [RESERVED]:
        return
    directory = os.path.join(root, *segments)
    try:
        resolve_inside(root, directory)
    except InvalidObjectKey:
        return
    yield from _walk_directory(index, directory, head + slash, name_filter, rollup, start_after)


def _walk_directory(
    index: ObjectIndex,
    directory: str,
    key_prefix: str,
    name_filter: str,
    rollup: bool,
    start_after: str,
) -> Iterator[Entry]:
    """
    The directory's own folder marker, then its entries whose names start with C{name_filter};
    subdirectories as L{Subtree}s when C{rollup}, else walked.
    """
    marker = key_prefix if key_prefix and not name_filter and key_prefix > start_after else None
    items = _sorted_entries(directory, key_prefix, name_filter, rollup, start_after)
    if items is None:
        return
    for start in range(0, max(len(items), 1), BATCH):
        batch = items[start : start + BATCH]
        wanted = [key for key, _, is_dir in batch if not is_dir]
        if marker is not None and start == 0:
            wanted.append(marker)
        rows = index.get_many(wanted)
        if marker is not None and start == 0 and marker in rows:
            yield rows[marker].info()
        for key, entry, is_dir in batch:
            if is_dir and rollup:
                yield Subtree(key)
            elif is_dir:
                yield from _walk_directory(index, entry.path, key, "", False, start_after)
            else:
                try:
                    st = entry.stat(follow_symlinks=False)
                    yield index.file_info(key, entry.path, st, rows.get(key))
                except FileNotFoundError:
                    continue  # removed since the directory was read


def _sorted_entries(
    directory: str, key_prefix: str, name_filter: str, rollup: bool, start_after: str
) -> "List[Tuple[str, os.DirEntry[str], bool]] | None":
    """
    The listable entries of a directory after the marker, as (sort key, entry, is directory),
    sorted; C{None} if the directory cannot be read.
    """
    try:
        with os.scandir(directory) as scan:
            found = list(scan)
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return None
    items = []
    for entry in found:
        name = entry.name
        if not name.startswith(name_filter) or not is_listable_name(name):
            continue
        if not key_prefix and name == RESERVED:
            continue
        if entry.is_dir(follow_symlinks=False):
            sort_key = f"{key_prefix}{name}/"
            # A rolled-up folder at or before the marker was listed already; a walked one is
            # skipped only if all of it sorts before the marker.
            skip = sort_key <= start_after if rollup else sorts_before(sort_key, start_after)
            if not skip and len(sort_key.encode("utf-8")) <= MAX_KEY_BYTES:
                items.append((sort_key, entry, True))
        elif entry.is_file(follow_symlinks=False):
            key = key_prefix + name
            if key > start_after and len(key.encode("utf-8")) <= MAX_KEY_BYTES:
                items.append((key, entry, False))
    items.sort(key=lambda item: item[0])
    return items
