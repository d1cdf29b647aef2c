"""
Tests for L{gateway.s3.requestids}.
"""

import re

from gateway.s3.requestids import RequestIds


def test_ids_look_like_s3s() -> None:
    """
    An id is sixteen upper-case hex digits.
    """
    assert re.fullmatch(r"[0-9A-F]{16}", RequestIds().next())


def test_ids_of_one_maker_differ() -> None:
    """
    One maker never repeats an id within its count.
    """
    ids = RequestIds()
    made = [ids.next() for _ in range(10_000)]
    assert len(set(made)) == len(made)


def test_makers_draw_their_own_prefix() -> None:
    """
    Two makers (two processes) start from different random prefixes, so their ids differ.
    """
    first, second = RequestIds(), RequestIds()
    assert first.next()[:8] != second.next()[:8]
