"""
The objects every server is measured on, made once: as files straight on disk in the shared tree
(which the gateway, rclone and nginx serve), and uploaded to the servers that keep their own
storage (SeaweedFS, moto), with fewer listing keys there when uploading all would take too long.
"""

from __future__ import annotations

import os
import time
from typing import List, Optional, Tuple

import attr

from bench.load import big_put, bulk_put
from bench.presign import BUCKET, Signer
from bench.servers import Server

SMALL_SIZE = 4096
LISTED_BODY = b"listed\n"
KEYS_PER_FOLDER = 100


@attr.s(frozen=True, auto_attribs=True)
class Sizes:
    """
    How big the run is.

    :ivar big: bytes of the large object (1 GiB by default).
    :ivar small_count: distinct 4 KiB objects the GET loops cycle through.
    :ivar list_keys: keys of each listing layout on the shared tree.
    :ivar peer_list_keys: keys of each listing layout uploaded to servers with their own storage.
    :ivar part_size: multipart part size.
    """

    big: int = 1 << 30
    small_count: int = 1000
    list_keys: int = 100_000
    peer_list_keys: int = 20_000
    part_size: int = 16 << 20


def big_key() -> str:
    return "big/object"


def small_keys(sizes: Sizes) -> List[str]:
    return ["small/%05d" % index for index in range(sizes.small_count)]


def flat_keys(count: int) -> List[str]:
    """
    C{count} keys in one folder, ``flat/``.
    """
    return ["flat/k%06d" % index for index in range(count)]


def tree_keys(count: int) -> List[str]:
    """
    C{count} keys in folders of L{KEYS_PER_FOLDER} under ``tree/`` (1,000 folders for 100,000).
    """
    return [
        "tree/d%04d/k%04d" % divmod(index, KEYS_PER_FOLDER) for index in range(count)
    ]


def fill_file(path: str, size: int) -> None:
    """
    A file of C{size} bytes of random data (a 16 MiB random block repeated).
    """
    block = os.urandom(min(size, 16 << 20)) if size else b""
    with open(path, "wb") as out:
        written = 0
        while written < size:
            step = min(len(block), size - written)
            out.write(block[:step])
            written += step


def _write_small_files(root: str, keys: List[str], body: bytes) -> None:
    made = set()
    for key in keys:
        path = os.path.join(root, key)
        folder = os.path.dirname(path)
        if folder not in made:
            os.makedirs(folder, exist_ok=True)
            made.add(folder)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(descriptor, body)
        finally:
            os.close(descriptor)


def make_shared_tree(root: str, source: str, sizes: Sizes) -> float:
    """
    Write the data set as files under C{root}/bench, and the upload source file C{source} (the
    same bytes as the large object). Files already there with the right size are kept.

    :return: seconds spent.
    """
    started = time.monotonic()
    bucket = os.path.join(root, BUCKET)
    os.makedirs(bucket, exist_ok=True)
    big = os.path.join(bucket, big_key())
    os.makedirs(os.path.dirname(big), exist_ok=True)
    if not (os.path.exists(source) and os.path.getsize(source) == sizes.big):
        fill_file(source, sizes.big)
    if not (os.path.exists(big) and os.path.getsize(big) == sizes.big):
        _copy(source, big)
    _write_small_files(bucket, small_keys(sizes), os.urandom(SMALL_SIZE))
    for keys in (flat_keys(sizes.list_keys), tree_keys(sizes.list_keys)):
        if not os.path.exists(os.path.join(bucket, keys[-1])):
            _write_small_files(bucket, keys, LISTED_BODY)
    return time.monotonic() - started


def _copy(source: str, target: str) -> None:
    with open(source, "rb") as origin, open(target + ".tmp", "wb") as out:
        while True:
            chunk = origin.read(16 << 20)
            if not chunk:
                break
            out.write(chunk)
    os.replace(target + ".tmp", target)


def upload(server: Server, source: str, sizes: Sizes, deadline: Optional[float] = None) -> Tuple[int, float]:
    """
    Upload the data set to a server with its own storage: the large object, the 4 KiB objects
    and C{sizes.peer_list_keys} keys of each listing layout.

    :return: the listing keys per layout actually stored (fewer if C{deadline} came first; the
        flat and tree layouts are uploaded in turn, half the time each) and the seconds spent.
    """
    assert server.endpoint is not None
    started = time.monotonic()
    signer = Signer(server.endpoint)
    big_put(server.endpoint, signer.targets("PUT", [big_key()]), source, sizes.big)
    bulk_put(server.endpoint, signer.targets("PUT", small_keys(sizes)), os.urandom(SMALL_SIZE))
    stored = []
    for index, keys in enumerate((flat_keys(sizes.peer_list_keys), tree_keys(sizes.peer_list_keys))):
        stop = None
        if deadline is not None:
            remaining = deadline - time.monotonic()
            stop = time.monotonic() + remaining / (2 - index)
        stored.append(bulk_put(server.endpoint, signer.targets("PUT", keys), LISTED_BODY, deadline=stop))
    return min(stored), time.monotonic() - started
