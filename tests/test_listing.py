"""
Tests of L{gateway.listing}: S3's listing rules, and a brute-force comparison with a naive
reference implementation over random key sets.
"""

from __future__ import annotations

import random
from typing import Iterable, Iterator, List, Optional, Sequence, Tuple

import pytest

from gateway.listing import Entry, Subtree, common_prefix, paginate, sorts_before
from gateway.model import ListingPage, ObjectInfo


def info(key: str) -> ObjectInfo:
    return ObjectInfo(key=key, size=len(key), etag="e", last_modified=0.0)


def entries(keys: Iterable[str]) -> List[Entry]:
    return [info(key) for key in sorted(keys)]


def page_names(page: ListingPage) -> Tuple[List[str], List[str]]:
    return [o.key for o in page.objects], list(page.common_prefixes)


KEYS = ["asdf", "boo/bar", "boo/baz/xyzzy", "cquux/bla", "cquux/thud", "photos/2006/jan.jpg"]


def test_common_prefix() -> None:
    assert common_prefix("a/b/c", "", "/") == "a/"
    assert common_prefix("a/b/c", "a/", "/") == "a/b/"
    assert common_prefix("a/b/c", "a/b/", "/") is None
    assert common_prefix("a/b", "a", "/") == "a/"
    assert common_prefix("a--b--c", "a-", "--") == "a--b--"
    assert common_prefix("a/b", "", None) is None
    assert common_prefix("a/b", "", "") is None


def test_sorts_before() -> None:
    assert sorts_before("a/", "b")
    assert not sorts_before("a/", "a/b")
    assert not sorts_before("a/", "a/")
    assert not sorts_before("b/", "a")
    assert sorts_before("a/", "a0")


def test_no_delimiter() -> None:
    page = paginate(entries(KEYS), "", None, "", 1000)
    assert page_names(page) == (sorted(KEYS), [])
    assert not page.is_truncated
    assert page.next_marker == "photos/2006/jan.jpg"


def test_prefix_filters() -> None:
    page = paginate(entries(KEYS), "boo/", None, "", 1000)
    assert page_names(page) == (["boo/bar", "boo/baz/xyzzy"], [])


def test_delimiter_rolls_up() -> None:
    page = paginate(entries(KEYS), "", "/", "", 1000)
    assert page_names(page) == (["asdf"], ["boo/", "cquux/", "photos/"])
    page = paginate(entries(KEYS), "boo/", "/", "", 1000)
    assert page_names(page) == (["boo/bar"], ["boo/baz/"])


def test_prefix_without_delimiter_at_end() -> None:
    """
    The common prefix runs from the start of the key, through the prefix, to the delimiter.
    """
    page = paginate(entries(["photos/2006/a", "photos/2007/b", "photo"]), "photos/20", "/", "", 9)
    assert page_names(page) == ([], ["photos/2006/", "photos/2007/"])


def test_each_common_prefix_counts_once() -> None:
    page = paginate(entries(KEYS), "", "/", "", 2)
    assert page_names(page) == (["asdf"], ["boo/"])
    assert page.is_truncated
    assert page.next_marker == "boo/"


def test_resume_after_common_prefix_skips_its_keys() -> None:
    page = paginate(entries(KEYS), "", "/", "boo/", 1)
    assert page_names(page) == ([], ["cquux/"])
    assert page.is_truncated
    page = paginate(entries(KEYS), "", "/", "cquux/", 1)
    assert page_names(page) == ([], ["photos/"])
    assert not page.is_truncated


def test_start_after_inside_common_prefix() -> None:
    """
    A marker inside a rolled-up prefix means that prefix was returned already: S3 (as RGW
    implements it) skips it and all its keys.
    """
    page = paginate(entries(["a/b/c", "a/b/d", "a/z", "b"]), "", "/", "a/b/c", 10)
    assert page_names(page) == (["b"], [])


def test_start_after_before_common_prefix() -> None:
    """
    A marker that sorts before a common prefix without being inside it leaves it listed.
    """
    keys = ["prefix1/object", "prefix2/object"]
    page = paginate(entries(keys), "prefix", "/", "prefix1", 10)
    assert page_names(page) == ([], ["prefix1/", "prefix2/"])


def test_start_after_is_exclusive() -> None:
    page = paginate(entries(KEYS), "", None, "boo/bar", 2)
    assert page_names(page) == (["boo/baz/xyzzy", "cquux/bla"], [])
    assert page.is_truncated


def test_start_after_needs_not_exist() -> None:
    page = paginate(entries(KEYS), "", None, "c", 1)
    assert page_names(page) == (["cquux/bla"], [])


def test_max_keys_zero() -> None:
    consumed = Counting(entries(KEYS))
    page = paginate(consumed, "", None, "", 0)
    assert page == ListingPage(is_truncated=False)
    assert consumed.count == 0


def test_exact_fit_is_not_truncated() -> None:
    page = paginate(entries(["a", "b"]), "", None, "", 2)
    assert not page.is_truncated
    assert page.next_marker == "b"


def test_empty() -> None:
    page = paginate([], "", "/", "", 10)
    assert page == ListingPage(objects=(), common_prefixes=(), is_truncated=False, next_marker=None)


def test_key_equal_to_prefix_is_listed() -> None:
    page = paginate(entries(["a/", "a/b", "a/c/d"]), "a/", "/", "", 10)
    assert page_names(page) == (["a/", "a/b"], ["a/c/"])


def test_folder_marker_rolls_up() -> None:
    page = paginate(entries(["a/", "a/b"]), "", "/", "", 10)
    assert page_names(page) == ([], ["a/"])


def test_multi_character_delimiter() -> None:
    keys = ["x--y--z", "x--w", "x-y"]
    page = paginate(entries(keys), "x", "--", "", 10)
    assert page_names(page) == (["x-y"], ["x--"])


def test_utf8_order() -> None:
    """
    Python's ``str`` order agrees with UTF-8 byte order, which is S3's.
    """
    keys = ["\U0001f600", "\uffff", "\u00e9", "z", "Z"]
    page = paginate(entries(keys), "", None, "", 10)
    names = [o.key for o in page.objects]
    assert names == sorted(keys, key=lambda k: k.encode("utf-8"))


def test_subtree() -> None:
    stream: List[Entry] = [info("a"), Subtree("b/"), info("c/d"), Subtree("e/")]
    page = paginate(stream, "", "/", "", 10)
    assert page_names(page) == (["a"], ["b/", "c/", "e/"])


def test_subtree_deeper_than_rollup() -> None:
    stream: List[Entry] = [info("a/b"), Subtree("a/c/"), Subtree("a/d/")]
    page = paginate(stream, "", "/", "", 10)
    assert page_names(page) == ([], ["a/"])


def test_subtree_after_marker_inside() -> None:
    page = paginate([Subtree("a/"), Subtree("b/")], "", "/", "a/x", 10)
    assert page_names(page) == ([], ["b/"])


def test_subtree_outside_prefix_skipped() -> None:
    page = paginate([Subtree("a/"), Subtree("b/c/")], "b/", "/", "", 10)
    assert page_names(page) == ([], ["b/c/"])


def test_subtree_needs_delimiter() -> None:
    with pytest.raises(ValueError):
        paginate([Subtree("a/")], "", None, "", 10)
    with pytest.raises(ValueError):
        paginate([Subtree("a/")], "a/b", "/", "", 10)
    with pytest.raises(ValueError):
        paginate([Subtree("a")], "", "/", "", 10)


class Counting:
    """
    An iterator that counts what was taken from it.
    """

    def __init__(self, items: Iterable[Entry]) -> None:
        self._items = iter(items)
        self.count = 0

    def __iter__(self) -> Iterator[Entry]:
        return self

    def __next__(self) -> Entry:
        item = next(self._items)
        self.count += 1
        return item


def test_lazy_stops_after_one_more() -> None:
    stream = Counting(entries(f"k{i:04}" for i in range(1000)))
    page = paginate(stream, "", None, "", 10)
    assert len(page.objects) == 10 and page.is_truncated
    assert stream.count == 11


def test_lazy_reads_through_last_prefix() -> None:
    """
    Keys that roll into the last common prefix of a full page must be read to know if another
    entry follows, but nothing after that entry.
    """
    keys = ["a/1", "a/2", "a/3", "b", "c", "d"]
    stream = Counting(entries(keys))
    page = paginate(stream, "", "/", "", 1)
    assert page_names(page) == ([], ["a/"]) and page.is_truncated
    assert stream.count == 4


# The brute-force comparison.


def naive(keys: Sequence[str], prefix: str, delimiter: Optional[str], start_after: str) -> List:
    """
    Every entry of the whole listing, the obvious way.
    """
    result = set()
    for key in keys:
        if not key.startswith(prefix) or key <= start_after:
            continue
        rolled = common_prefix(key, prefix, delimiter)
        if rolled is None:
            result.add(("key", key))
        elif rolled > start_after:
            result.add(("prefix", rolled))
    return sorted(result, key=lambda item: item[1])


def flatten(page: ListingPage) -> List[Tuple[str, str]]:
    items = [("key", o.key) for o in page.objects]
    items += [("prefix", p) for p in page.common_prefixes]
    return sorted(items, key=lambda item: item[1])


def random_key(rng: random.Random) -> str:
    alphabet = ["a", "b", "/", "-", "\u00e9", "/"]
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 6)))


def with_subtrees(
    rng: random.Random, keys: Sequence[str], prefix: str, delimiter: Optional[str]
) -> List[Entry]:
    """
    The entries of C{keys} in order, with some folders (for the ``/`` delimiter) replaced by one
    L{Subtree}, as a directory-walking backend yields them.
    """
    stream: List[Entry] = []
    skipping: Optional[str] = None
    for key in sorted(keys):
        if skipping is not None and key.startswith(skipping):
            continue
        skipping = None
        rolled = common_prefix(key, prefix, delimiter) if key.startswith(prefix) else None
        if delimiter == "/" and rolled is not None and rng.random() < 0.5:
            # Any folder of the key at least as deep as its common prefix.
            ends = [i + 1 for i, c in enumerate(key) if c == "/" and i + 1 >= len(rolled)]
            skipping = key[: rng.choice(ends)]
            stream.append(Subtree(skipping))
            continue
        stream.append(info(key))
    return stream


@pytest.mark.parametrize("seed", range(300))
def test_against_naive(seed: int) -> None:
    rng = random.Random(seed)
    keys = sorted({random_key(rng) for _ in range(rng.randint(0, 40))})
    prefix = rng.choice(["", "", "a", "a/", "b/a", "/", "\u00e9"])
    delimiter = rng.choice([None, "/", "/", "-", "a/", ""])
    start_after = rng.choice(["", "", random_key(rng), *(keys[:3])])
    max_keys = rng.randint(1, 7)
    expected = naive(keys, prefix, delimiter, start_after)

    # One page is a prefix of the whole listing.
    page = paginate(entries(keys), prefix, delimiter, start_after, max_keys)
    assert flatten(page) == expected[:max_keys]
    assert page.is_truncated == (len(expected) > max_keys)

    # Paging through with next_marker gives the whole listing, with or without subtrees.
    for subtrees in (False, True):
        collected: List[Tuple[str, str]] = []
        marker = start_after
        for _ in range(len(expected) + 2):
            stream = with_subtrees(rng, keys, prefix, delimiter) if subtrees else entries(keys)
            page = paginate(stream, prefix, delimiter, marker, max_keys)
            collected += flatten(page)
            assert page.next_marker == (collected[-1][1] if flatten(page) else None)
            if not page.is_truncated:
                break
            marker = page.next_marker
        assert collected == expected
