"""
Value types shared by the protocol, the backends and the metadata store.

Every type here is frozen: a value that crosses a seam (backend to protocol, store to protocol) is
never mutated afterwards, so nobody has to wonder who else holds it.
"""

from __future__ import annotations

from typing import Iterable, Mapping, Optional, Tuple

from attrs import field, frozen


def _frozen_mapping(value: Optional[Mapping[str, str]]) -> Mapping[str, str]:
    return dict(value or {})


def _int_tuple(values: Iterable[int]) -> Tuple[int, ...]:
    return tuple(values)


@frozen
class ObjectInfo:
    """
    What a backend knows about one stored object.

    :ivar key: the S3 key.
    :ivar size: the body's length in bytes.
    :ivar etag: the entity tag without quotes: a hex MD5 for single-part objects, S3's
        ``md5-of-part-md5s-N`` form for multipart ones.
    :ivar last_modified: POSIX time of the last write, in seconds.
    :ivar content_type: the Content-Type given at upload.
    :ivar metadata: ``x-amz-meta-*`` values, names lower-cased and without the prefix.
    :ivar headers: other stored response headers (Content-Disposition, Content-Encoding,
        Cache-Control, Expires, Content-Language), lower-case names.
    :ivar parts_count: the number of parts of a multipart object, else ``None``.
    :ivar tags: the object's tag set (S3 object tagging).
    :ivar part_sizes: the size of each part of a multipart object, in order, so that GetObject
        with ``partNumber`` can find a part's bytes; empty when unknown or single-part.
    """

    key: str
    size: int
    etag: str
    last_modified: float
    content_type: str = "binary/octet-stream"
    metadata: Mapping[str, str] = field(factory=dict, converter=_frozen_mapping)
    headers: Mapping[str, str] = field(factory=dict, converter=_frozen_mapping)
    parts_count: Optional[int] = None
    tags: Mapping[str, str] = field(factory=dict, converter=_frozen_mapping)
    part_sizes: Tuple[int, ...] = field(default=(), converter=_int_tuple)


@frozen
class WriteMetadata:
    """
    What the protocol hands a backend when it commits a write: the body has been hashed and checked
    by then, so ``etag`` is final.
    """

    etag: str
    content_type: str = "binary/octet-stream"
    metadata: Mapping[str, str] = field(factory=dict, converter=_frozen_mapping)
    headers: Mapping[str, str] = field(factory=dict, converter=_frozen_mapping)
    tags: Mapping[str, str] = field(factory=dict, converter=_frozen_mapping)


@frozen
class WriteCondition:
    """
    A condition under which a write may replace what is stored (S3's conditional writes). The
    backend checks it and commits in one atomic step, against every writer of the same storage
    (other requests, other worker processes).

    :ivar if_none_match: ``If-None-Match: *``: write only if no object has the key.
    :ivar if_match: ``If-Match``: write only if the stored object's ETag (unquoted) is this one.
    """

    if_none_match: bool = False
    if_match: Optional[str] = None


@frozen
class ListingPage:
    """
    One page of a listing, already in S3 order.

    :ivar objects: the keys of the page, in lexicographic (UTF-8 byte) order.
    :ivar common_prefixes: the rolled-up prefixes (each ending with the delimiter), sorted.
    :ivar is_truncated: whether more entries follow.
    :ivar next_marker: the greatest key or common prefix on this page; listing again with it as
        ``start_after`` gives the next page. ``None`` when the page is empty.
    """

    objects: Tuple[ObjectInfo, ...] = ()
    common_prefixes: Tuple[str, ...] = ()
    is_truncated: bool = False
    next_marker: Optional[str] = None


@frozen
class ByteRange:
    """
    A satisfiable byte range of an object, both ends inclusive, as HTTP counts them.
    """

    first: int
    last: int

    @property
    def length(self) -> int:
        return self.last - self.first + 1


@frozen
class User:
    """
    A gateway user: owns access keys and connections.
    """

    name: str
    created: float


@frozen
class AccessKey:
    """
    An access key pair of a user. The secret is kept in clear in the store because SigV4 needs it
    to recompute signatures; the store's file is readable by the gateway's account only.
    """

    access_key_id: str
    secret_access_key: str = field(repr=False)
    user: str
    created: float


@frozen
class Connection:
    """
    A bucket of a user, bound to a backend.

    :ivar backend: the backend's name, e.g. ``"local"``.
    :ivar settings: the backend's settings, e.g. ``{"path": "/srv/data"}``.
    :ivar read_only: whether writes through S3 are refused.
    :ivar created_by_s3: whether CreateBucket made it (only those may be removed by DeleteBucket).
    """

    user: str
    bucket: str
    backend: str
    settings: Mapping[str, str] = field(factory=dict, converter=_frozen_mapping)
    read_only: bool = False
    created: float = 0.0
    created_by_s3: bool = False


@frozen
class MultipartUpload:
    """
    An in-progress multipart upload: a row of the metadata store.
    """

    upload_id: str
    user: str
    bucket: str
    key: str
    initiated: float
    content_type: str = "binary/octet-stream"
    metadata: Mapping[str, str] = field(factory=dict, converter=_frozen_mapping)
    headers: Mapping[str, str] = field(factory=dict, converter=_frozen_mapping)
    tags: Mapping[str, str] = field(factory=dict, converter=_frozen_mapping)


@frozen
class UploadedPart:
    """
    A part of a multipart upload, recorded once its body is safely stored by the backend.
    """

    upload_id: str
    part_number: int
    etag: str
    size: int
    last_modified: float
