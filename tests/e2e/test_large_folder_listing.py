"""
A folder of some thousands of files, put there by other means, walked page by page with boto3:
the pages after the first come from the folder's names kept in order
(L{gateway.backends.localnames}), and must still be S3's pages, and follow changes made
mid-walk.
"""

from __future__ import annotations

import os
import time
from typing import List, Tuple

from gateway.backends.localfolders import SETTLED
from tests.e2e.conftest import Bucket

#: Names that sort differently as a folder (``a/``) and as a file: ``a-b`` and ``a.b`` sort
#: before ``a/``, ``a0`` after it.
TRICKY = ["a-b", "a.b", "a0", "a\u00e9"]


def s3_order(keys: List[str]) -> List[str]:
    return sorted(keys, key=lambda key: key.encode("utf-8"))


def walk(s3, bucket: Bucket, page_size: int, **kwargs: str) -> Tuple[List[str], List[str]]:
    """
    The keys and the common prefixes of every page of a listing of ``big/``, in order.
    """
    keys: List[str] = []
    prefixes: List[str] = []
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket.name, Prefix="big/", PaginationConfig={"PageSize": page_size}, **kwargs
    )
    for page in pages:
        keys += [entry["Key"] for entry in page.get("Contents", [])]
        prefixes += [entry["Prefix"] for entry in page.get("CommonPrefixes", [])]
    return keys, prefixes


def test_walk_of_a_large_folder(s3, bucket: Bucket) -> None:
    folder = bucket.path / "big"
    (folder / "a").mkdir(parents=True)
    names = [f"{number:05d}" for number in range(1500)] + TRICKY
    for name in names:
        (folder / name).write_bytes(name.encode("utf-8"))
    (folder / "a" / "x").write_bytes(b"x")
    # The folder's names are kept only once it has not changed for SETTLED seconds.
    time.sleep(SETTLED + 0.5)
    files = [f"big/{name}" for name in names] + ["big/a/x"]

    assert walk(s3, bucket, 400) == (s3_order(files), [])
    assert walk(s3, bucket, 333, Delimiter="/") == (
        s3_order([f"big/{name}" for name in names]), ["big/a/"]
    )

    # Mid-walk: a key after the marker is listed by a later page, one before it is not.
    first = s3.list_objects_v2(Bucket=bucket.name, Prefix="big/", MaxKeys=500)
    marker = first["Contents"][-1]["Key"]
    assert marker == "big/00499"
    s3.put_object(Bucket=bucket.name, Key="big/01200x", Body=b"late")
    s3.put_object(Bucket=bucket.name, Key="big/00100x", Body=b"early")
    os.remove(folder / "01300")
    rest: List[str] = []
    token = first["NextContinuationToken"]
    while token:
        page = s3.list_objects_v2(
            Bucket=bucket.name, Prefix="big/", MaxKeys=500, ContinuationToken=token
        )
        rest += [entry["Key"] for entry in page.get("Contents", [])]
        token = page.get("NextContinuationToken")
    expected = [key for key in s3_order(files + ["big/01200x"]) if key > marker]
    expected.remove("big/01300")
    assert rest == expected
