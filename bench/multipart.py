"""
A multipart upload driven by presigned requests: create, the parts through ``sendfile`` over a
few keep-alive connections, complete. Timed from the create to the answer of the complete.
"""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from queue import Empty, SimpleQueue
from typing import Dict, List, Tuple

from bench.load import LoadError, connect, send_bytes, send_file
from bench.presign import Endpoint, Signer

_UPLOAD_ID = re.compile(rb"<UploadId>([^<]+)</UploadId>")


def multipart_put(
    endpoint: Endpoint, signer: Signer, key: str, source: str, size: int,
    part_size: int, streams: int,
) -> float:
    """
    Upload C{size} bytes of C{source} to C{key} in parts of C{part_size}, C{streams} parts at
    a time.

    :return: the seconds from the create to the completed object.
    """
    started = time.perf_counter()
    control = connect(endpoint)
    try:
        status, body = send_bytes(control, "POST", signer.target("POST", key, {"uploads": ""}), b"")
        found = _UPLOAD_ID.search(body)
        if status != 200 or not found:
            raise LoadError(f"CreateMultipartUpload answered {status}: {body[:300]!r}")
        upload_id = found.group(1).decode()
        pieces = list(enumerate(parts(size, part_size), start=1))
        work: "SimpleQueue[Tuple[int, Tuple[int, int]]]" = SimpleQueue()
        for item in pieces:
            work.put(item)
        etags: Dict[int, str] = {}

        def uploader() -> None:
            # A new connection for each part: one part is 16 MiB, so the handshake costs
            # nothing measurable, and a server that mishandles keep-alive after a large body
            # (the gateway did, at one point) still gets a fair figure.
            while True:
                try:
                    number, (offset, length) = work.get_nowait()
                except Empty:
                    return
                target = signer.target(
                    "PUT", key, {"partNumber": str(number), "uploadId": upload_id}
                )
                connection = connect(endpoint)
                try:
                    status, etag, data = send_file(
                        connection, "PUT", target, source, offset, length
                    )
                finally:
                    connection.close()
                if status != 200 or not etag:
                    raise LoadError(f"UploadPart answered {status}: {data[:300]!r}")
                etags[number] = etag

        with ThreadPoolExecutor(max_workers=streams) as pool:
            for future in [pool.submit(uploader) for _ in range(streams)]:
                future.result()
        status, body = send_bytes(
            control, "POST", signer.target("POST", key, {"uploadId": upload_id}),
            complete_body([(number, etags[number]) for number, _ in pieces]),
        )
        if status != 200 or b"<Error>" in body:
            raise LoadError(f"CompleteMultipartUpload answered {status}: {body[:300]!r}")
    finally:
        control.close()
    return time.perf_counter() - started


def complete_body(parts: List[Tuple[int, str]]) -> bytes:
    """
    The XML body of CompleteMultipartUpload for (part number, ETag) pairs.
    """
    items = "".join(
        f"<Part><PartNumber>{number}</PartNumber><ETag>{etag}</ETag></Part>"
        for number, etag in parts
    )
    return f"<CompleteMultipartUpload>{items}</CompleteMultipartUpload>".encode()


def parts(size: int, part_size: int) -> List[Tuple[int, int]]:
    """
    (offset, length) of each part: all of C{part_size} but the last, as S3 clients cut them.
    """
    return [(offset, min(part_size, size - offset)) for offset in range(0, size, part_size)]
