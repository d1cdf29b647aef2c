"""
Tests of :mod:`gateway.s3.listings`: the listing documents, written from templates, are byte for
byte those that one element per value made (L{xmlreference}), for every form of the request
(V1 and V2, url encoding, owners, markers, tokens) and for keys that need escaping.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Union

import pytest
import pytest_twisted
from twisted.internet.defer import Deferred, succeed
from twisted.web.test.requesthelper import DummyRequest

from gateway.model import ListingPage, ObjectInfo
from gateway.s3 import listings, xml
from gateway.s3.auth import Caller
from gateway.s3.context import OperationContext
from gateway.s3.responses import quoted_etag
from tests.s3 import xmlreference

KEYS = [
    "plain/key.txt",
    "a&b<c>d",
    "cr\rlf\ncrlf\r\n",
    "ctl\x01\x1f",
    "sp ace+plus%25",
    "caf\u00e9/\u2603/\U0001f600",
    "quote\"'",
]


def page(truncated: bool = True) -> ListingPage:
    """
    A page of every tricky key: several share a timestamp, some have their own.
    """
    objects = tuple(
        ObjectInfo(
            key=key,
            size=index * 1000,
            etag="%032x" % (index,) if index % 3 else "abc-2",
            last_modified=1139003109.25 if index % 2 else 1700000000.999 + index,
        )
        for index, key in enumerate(sorted(KEYS))
    )
    return ListingPage(
        objects=objects,
        common_prefixes=("dir&/", "cr\r/", "e\u00e9/"),
        is_truncated=truncated,
        next_marker="z\r&<" if truncated else None,
    )


class Storage:
    """
    A backend that answers every listing with one page, and remembers what it was asked.
    """

    def __init__(self, answer: ListingPage) -> None:
        self.answer = answer
        self.asked: List[tuple] = []

    def list_objects(
        self, prefix: str, delimiter: Optional[str], start_after: str, max_keys: int
    ) -> "Deferred[ListingPage]":
        self.asked.append((prefix, delimiter, start_after, max_keys))
        return succeed(self.answer)


def context(query: Dict[str, str], answer: ListingPage) -> OperationContext:
    return OperationContext(
        request=DummyRequest([b""]),
        facts=None,  # type: ignore[arg-type]
        caller=Caller("us&er", "AKID", None, "UNSIGNED-PAYLOAD"),
        bucket="bucket",
        key="",
        query=query,
        backend=Storage(answer),  # type: ignore[arg-type]
    )


# The documents as they were made before templates, one node per value.

Children = List[Union[xml.Node, None]]


def contents_nodes(
    objects: List[ObjectInfo], encode, owner: Optional[str]
) -> Children:
    return [
        (
            "Contents",
            [
                ("Key", encode(info.key)),
                ("LastModified", xml.iso8601(info.last_modified)),
                ("ETag", quoted_etag(info.etag)),
                ("Size", info.size),
                listings.owner_node(owner) if owner is not None else None,
                ("StorageClass", "STANDARD"),
            ],
        )
        for info in objects
    ]


def reference_v2(query: Dict[str, str], answer: ListingPage) -> bytes:
    encode = listings.encoder(context(query, answer))
    delimiter = query.get("delimiter") or None
    token = query.get("continuation-token")
    limit = min(int(query.get("max-keys") or 1000), 1000)
    next_token = (
        listings.encode_token(answer.next_marker)
        if answer.is_truncated and answer.next_marker
        else None
    )
    children: Children = [
        ("Name", "bucket"),
        ("Prefix", encode(query.get("prefix", ""))),
        ("Delimiter", encode(delimiter)) if delimiter else None,
        ("MaxKeys", limit),
        ("KeyCount", len(answer.objects) + len(answer.common_prefixes)),
        ("IsTruncated", answer.is_truncated),
        ("EncodingType", "url") if "encoding-type" in query else None,
        ("ContinuationToken", token) if token is not None else None,
        ("NextContinuationToken", next_token) if next_token else None,
        ("StartAfter", encode(query.get("start-after", ""))) if "start-after" in query else None,
    ]
    owner = "us&er" if query.get("fetch-owner", "false").lower() == "true" else None
    children += contents_nodes(list(answer.objects), encode, owner)
    children += [("CommonPrefixes", [("Prefix", encode(p))]) for p in answer.common_prefixes]
    return xmlreference.render(("ListBucketResult", children))


def reference_v1(query: Dict[str, str], answer: ListingPage) -> bytes:
    encode = listings.encoder(context(query, answer))
    delimiter = query.get("delimiter") or None
    marker = query.get("marker", "")
    children: Children = [
        ("Name", "bucket"),
        ("Prefix", encode(query.get("prefix", ""))),
        ("Marker", encode(marker)),
        ("NextMarker", encode(answer.next_marker))
        if answer.is_truncated and answer.next_marker
        else None,
        ("MaxKeys", min(int(query.get("max-keys") or 1000), 1000)),
        ("Delimiter", encode(delimiter)) if delimiter else None,
        ("IsTruncated", answer.is_truncated),
        ("EncodingType", "url") if "encoding-type" in query else None,
    ]
    children += contents_nodes(list(answer.objects), encode, "us&er")
    children += [("CommonPrefixes", [("Prefix", encode(p))]) for p in answer.common_prefixes]
    return xmlreference.render(("ListBucketResult", children))


QUERIES = [
    {},
    {"prefix": "", "delimiter": "/"},
    {"prefix": "a&b", "delimiter": "&", "max-keys": "3"},
    {"encoding-type": "url", "prefix": "caf\u00e9 x/", "delimiter": "/"},
    {"fetch-owner": "true", "start-after": "cr\r"},
    {"fetch-owner": "TRUE", "encoding-type": "url", "start-after": "a b&"},
    {"continuation-token": listings.encode_token("k\r<")},
]

PAGES = [page(), page(truncated=False), ListingPage()]


@pytest.mark.parametrize("query", QUERIES)
@pytest.mark.parametrize("answer", PAGES)
@pytest_twisted.ensureDeferred
async def test_v2_document(query: Dict[str, str], answer: ListingPage) -> None:
    query = dict(query, **{"list-type": "2"})
    body = await listings.list_objects_v2(context(query, answer))
    assert body == reference_v2(query, answer)


@pytest.mark.parametrize("query", QUERIES)
@pytest.mark.parametrize("answer", PAGES)
@pytest_twisted.ensureDeferred
async def test_v1_document(query: Dict[str, str], answer: ListingPage) -> None:
    query = {k: v for k, v in query.items() if k != "continuation-token"}
    query["marker"] = query.pop("start-after", "")
    body = await listings.list_objects_v1(context(query, answer))
    assert body == reference_v1(query, answer)


@pytest_twisted.ensureDeferred
async def test_many_keys_one_timestamp_cache_per_page() -> None:
    """
    Keys share timestamps through a cache that lives for one page: each key still gets its own.
    """
    objects = tuple(
        ObjectInfo(key="k%04d" % (i,), size=i, etag="e", last_modified=1e9 + (i // 10) + i / 1000)
        for i in range(1000)
    )
    answer = ListingPage(objects=objects)
    query = {"list-type": "2"}
    body = await listings.list_objects_v2(context(query, answer))
    assert body == reference_v2(query, answer)
    assert body.count(b"<LastModified>") == 1000


@pytest.mark.parametrize("count", [0, 1, 1000])
def test_contents_markup(count: int) -> None:
    objects = [ObjectInfo(key="k&%d" % (i,), size=i, etag="e", last_modified=i) for i in range(count)]
    fragment = listings.contents(context({}, ListingPage()), objects, lambda v: v, False)
    assert isinstance(fragment, xml.Markup)
    assert fragment.text.count("<Contents>") == count
    assert fragment.text.count("k&amp;") == count
