"""
S3's listing semantics, written once for every backend.

A backend produces its entries in S3 order (UTF-8 byte order of the key, which for valid strings is
Python's ``str`` order) and L{paginate} turns them into one L{ListingPage}: it filters by prefix and
marker, rolls keys up into common prefixes and stops reading as soon as the page is known to be
full, so that a backend that walks lazily never walks more than one page and one entry.

The marker (``start-after``, V1's ``marker`` and our continuation token, which is the previous
page's ``next_marker``) follows S3 (API Reference, ListObjectsV2 and ListObjects) as Ceph's RGW
implements it: keys and common prefixes sort strictly after the marker. A common prefix that is
less than or equal to the marker is not returned, which also covers a marker that falls *inside* a
rolled-up prefix: with delimiter ``/`` and marker ``a/b/c``, ``a/`` sorts before the marker and so
counts as already returned, and every key under it is skipped. Resuming after a page that ended on
the common prefix ``P`` therefore skips every key starting with ``P``, which is what makes
``next_marker`` a correct continuation token.
"""

from __future__ import annotations

from typing import Iterable, List, Optional, Union

from attrs import frozen

from gateway.model import ListingPage, ObjectInfo


@frozen
class Subtree:
    """
    A folder of keys that a backend did not walk: every key starting with C{prefix} rolls up into
    one common prefix, so a delimiter listing needs only this marker. A backend yields it in the
    place its prefix sorts, and only when the listing has a delimiter. An empty folder yields one
    too, and so shows as a common prefix.

    :ivar prefix: the folder's key prefix, e.g. ``"photos/2006/"``.
    """

    prefix: str


#: What a backend yields to L{paginate}.
Entry = Union[ObjectInfo, Subtree]


def common_prefix(key: str, prefix: str, delimiter: Optional[str]) -> Optional[str]:
    """
    The common prefix C{key} rolls up into, or C{None} if it is listed as itself: the key up to
    and including the first C{delimiter} found after C{prefix}.
    """
    if not delimiter:
        return None
    position = key.find(delimiter, len(prefix))
    if position < 0:
        return None
    return key[: position + len(delimiter)]


def sorts_before(subtree_prefix: str, start_after: str) -> bool:
    """
    Whether every key starting with C{subtree_prefix} sorts at or before C{start_after}, so that a
    walk may skip the whole folder without reading it.
    """
    return subtree_prefix <= start_after and not start_after.startswith(subtree_prefix)


def after_marker(sort_key: str, is_folder: bool, rollup: bool, start_after: str) -> bool:
    """
    Whether a walk's entry may show on the page after C{start_after}: a file, or a folder rolled
    up into a common prefix, if it sorts after the marker (a folder at or before it was listed
    already); a folder walked into unless all of it sorts before the marker.

    :param sort_key: the entry's key, with a ``/`` after a folder's.
    """
    if is_folder and not rollup:
        return not sorts_before(sort_key, start_after)
    return sort_key > start_after


def paginate(
    entries: Iterable[Entry],
    prefix: str,
    delimiter: Optional[str],
    start_after: str,
    max_keys: int,
) -> ListingPage:
    """
    One page of a listing.

    :param entries: the backend's entries in S3 order; entries that do not start with C{prefix}
        or sort at or before C{start_after} may be included and are skipped.
    :param delimiter: the delimiter, or C{None} (an empty string counts as none, as in S3).
    :param max_keys: the page size; keys and common prefixes each count as one. At most zero
        gives an empty page that is not truncated, as S3 answers ``max-keys=0``.
    :raise ValueError: if a L{Subtree} comes without a delimiter or cannot be rolled up.
    """
    delimiter = delimiter or None
    objects: List[ObjectInfo] = []
    prefixes: List[str] = []
    marker: Optional[str] = None
    truncated = False
    if max_keys <= 0:
        return ListingPage()
    # The loop runs once per key of a page of up to a thousand: common_prefix is written out.
    start = len(prefix)
    taken = 0
    for entry in entries:
        if isinstance(entry, Subtree):
            rolled = _subtree_prefix(entry, prefix, delimiter)
            if rolled is None:
                continue
        else:
            key = entry.key
            if key <= start_after or not key.startswith(prefix):
                continue
            rolled = None
            if delimiter:
                position = key.find(delimiter, start)
                if position >= 0:
                    rolled = key[: position + len(delimiter)]
        if rolled is not None and (rolled == marker or rolled <= start_after):
            continue
        if taken >= max_keys:
            # One more entry proves that the page is truncated; read no further.
            truncated = True
            break
        taken += 1
        if rolled is None:
            assert isinstance(entry, ObjectInfo)
            objects.append(entry)
            marker = key
        else:
            prefixes.append(rolled)
            marker = rolled
    return ListingPage(
        objects=tuple(objects),
        common_prefixes=tuple(prefixes),
        is_truncated=truncated,
        next_marker=marker,
    )


def _subtree_prefix(entry: Subtree, prefix: str, delimiter: Optional[str]) -> Optional[str]:
    """
    The common prefix a L{Subtree} stands for, or C{None} when it lies outside C{prefix}.
    """
    if delimiter is None:
        raise ValueError(f"subtree {entry.prefix!r} yielded to a listing without delimiter")
    if not entry.prefix.startswith(prefix):
        if prefix.startswith(entry.prefix):
            raise ValueError(f"subtree {entry.prefix!r} is wider than the prefix {prefix!r}")
        return None
    rolled = common_prefix(entry.prefix, prefix, delimiter)
    if rolled is None:
        raise ValueError(f"subtree {entry.prefix!r} does not roll up under {prefix!r}")
    return rolled
