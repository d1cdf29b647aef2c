"""
The seams of the gateway: what a storage backend must offer and what the metadata store keeps.

The protocol layer (``gateway.s3``) talks to storage only through L{IBackend}, L{IObjectReader}
and L{IObjectWriter}, and to state only through L{IMetadataStore}. Every method that may touch a
disk, a database or a network returns a L{Deferred}: implementations are free to be slow, remote
and failing, and must never block the reactor for long.

Backends report failures with the exceptions below, never with S3 errors: the protocol maps them
to S3's codes in one place (``gateway.s3.errors``).
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IConsumer
from zope.interface import Attribute, Interface

from gateway.model import (
    AccessKey,
    ByteRange,
    Connection,
    ListingPage,
    MultipartUpload,
    ObjectInfo,
    UploadedPart,
    User,
    WriteCondition,
    WriteMetadata,
)


class BackendError(Exception):
    """
    Base class of the failures a backend reports.
    """


class NoSuchObject(BackendError):
    """
    The key names no object.
    """


class InvalidObjectKey(BackendError):
    """
    The key cannot be stored by this backend: it tries to escape the connection's directory,
    contains a NUL byte, names a reserved location, or clashes with an existing object (a key used
    both as an object and as a folder on a filesystem). The message says which.
    """


class ObjectKeyTooLong(BackendError):
    """
    The key, or one of its path segments, is longer than the backend can store.
    """


class ReadOnlyConnection(BackendError):
    """
    A write was attempted on a connection that is read-only.
    """


class NoSuchUpload(BackendError):
    """
    The multipart upload id is unknown (never created, completed or aborted).
    """


class PreconditionNotMet(BackendError):
    """
    A conditional write's L{WriteCondition} did not hold; nothing was written.
    """


class BackendUnavailable(BackendError):
    """
    The storage behind the connection cannot be reached now (a remote server down, a directory
    gone). The protocol answers 503 so that clients retry.
    """


class IObjectReader(Interface):
    """
    An opened object, ready to stream its body. Obtained from L{IBackend.open}; the caller must
    either call L{deliver} or L{close}.
    """

    info = Attribute("The L{ObjectInfo} of the opened object, as it was when it was opened.")

    def deliver(consumer: IConsumer, byte_range: Optional[ByteRange]) -> "Deferred[None]":
        """
        Write the body (or the given range of it) to C{consumer}, registering a push producer on
        it so that a slow consumer pauses the reads; a body of at most one read block may instead
        be written in one C{write}, with no producer. The object is closed when this ends.

        :param byte_range: a range already checked against C{info.size}, or C{None} for all.
        :return: fires when every byte has been written (the producer is unregistered by then),
            or fails if the body could not be read or the consumer stopped the producer.
        """

    def close() -> None:
        """
        Release the object without reading it.
        """


class IObjectWriter(IConsumer):
    """
    The receiving end of an upload. Data arrives through C{write}; a writer that falls behind
    pauses the producer registered on it. Nothing is visible to readers until L{commit} succeeds,
    and L{abort} leaves the previous object (or none) in place.
    """

    def commit(
        metadata: WriteMetadata, condition: Optional[WriteCondition] = None
    ) -> "Deferred[ObjectInfo]":
        """
        Make the written body visible under the key, atomically, with its metadata. With a
        C{condition}, the check and the replacement are one atomic step; the writer is aborted
        and L{PreconditionNotMet} raised when it fails. (Part writers ignore conditions.)

        :return: the stored object's info.
        """

    def abort() -> "Deferred[None]":
        """
        Throw away what was written. Safe to call more than once, and after a failed commit.
        """


class IBackend(Interface):
    """
    The storage of one connection. Keys are S3 keys (unicode strings, ``/`` as separator by
    convention only); a backend validates them and raises L{InvalidObjectKey} or
    L{ObjectKeyTooLong} for keys it cannot store safely.
    """

    read_only = Attribute("C{True} if every write must fail with L{ReadOnlyConnection}.")

    def stat(key: str) -> "Deferred[ObjectInfo]":
        """
        The info of the object under C{key}; fails with L{NoSuchObject}.
        """

    def open(key: str) -> "Deferred[IObjectReader]":
        """
        Open the object under C{key} for reading; fails with L{NoSuchObject}.
        """

    def list_objects(
        prefix: str, delimiter: Optional[str], start_after: str, max_keys: int
    ) -> "Deferred[ListingPage]":
        """
        One page of keys that start with C{prefix} and sort after C{start_after}, in S3 order
        (UTF-8 byte order). With a C{delimiter}, keys that contain it after the prefix are rolled
        up into common prefixes, each counting as one entry against C{max_keys}.
        """

    def start_write(key: str, size: Optional[int] = None) -> "Deferred[IObjectWriter]":
        """
        Begin writing the object under C{key}. A key ending in ``/`` is a folder marker and
        receives an empty body.

        :param size: the length of the body, when the client declared it. A check that
            only spares a client from sending its body in vain (a key the storage cannot
            hold beside what is there) may be left to the commit for a small body, which
            costs the client little to send in vain.
        """

    def delete(key: str) -> "Deferred[None]":
        """
        Remove the object under C{key}; succeeds also when there is none.
        """

    def start_part_write(upload_id: str, part_number: int) -> "Deferred[IObjectWriter]":
        """
        Begin writing part C{part_number} of a multipart upload; a part written again replaces
        the earlier one when committed. The part is invisible to listings.
        """

    def complete_upload(
        upload_id: str,
        key: str,
        parts: Sequence[Tuple[int, int]],
        metadata: WriteMetadata,
        condition: Optional[WriteCondition] = None,
    ) -> "Deferred[ObjectInfo]":
        """
        Join the listed parts, given as C{(part_number, size)} in order, into the object under
        C{key}, atomically, then remove every part file of the upload (listed or not).
        The protocol has checked the part list against the store by then. The object records
        the parts' sizes (L{ObjectInfo.part_sizes}). With a C{condition}, fails with
        L{PreconditionNotMet} (keeping the parts) when it does not hold at the moment of the
        replacement.
        """

    def update_metadata(
        key: str, metadata: WriteMetadata, condition: Optional[WriteCondition] = None
    ) -> "Deferred[ObjectInfo]":
        """
        Replace the stored metadata (content type, user metadata, stored headers, tags) of an
        existing object without touching its body; C{metadata.etag} is ignored (the body's ETag
        stays). Used by CopyObject onto itself with REPLACE and by object tagging.
        Fails with L{NoSuchObject}.
        """

    def abort_upload(upload_id: str) -> "Deferred[None]":
        """
        Remove every stored part of the upload; succeeds also when there is none.
        """


class IServerSideCopy(Interface):
    """
    Optional: a backend that can copy an object within itself without streaming it through the
    gateway (a reflink or C{copy_file_range} on a local disk, a server-side copy upstream).
    """

    def copy_object(
        source_key: str,
        key: str,
        metadata: WriteMetadata,
        condition: Optional[WriteCondition] = None,
    ) -> "Deferred[ObjectInfo]":
        """
        Copy the body of C{source_key} to C{key} with the given metadata (its C{etag} is the
        source's), atomically as any write. Fails with L{NoSuchObject} for a missing source.
        """

    def copy_part(
        source_key: str, byte_range: Optional[ByteRange], upload_id: str, part_number: int
    ) -> "Deferred[ObjectInfo]":
        """
        Store (a range of) C{source_key} as part C{part_number} of an upload; the returned info's
        C{etag} is the MD5 of the copied bytes.
        """


class IMetadataStore(Interface):
    """
    Users, access keys, connections and multipart rows. Shared by every worker of a gateway (and,
    with a server database, by several gateways), so implementations make each method one
    transaction and cache nothing that another process may change.

    Methods that look one thing up return C{None} when it is absent; methods that change a thing
    that must exist fail with C{KeyError}; adding a thing that exists fails with C{ValueError}.
    """

    def add_user(name: str) -> "Deferred[User]":
        """
        Make a user.
        """

    def get_user(name: str) -> "Deferred[Optional[User]]":
        """
        Look a user up.
        """

    def list_users() -> "Deferred[Sequence[User]]":
        """
        Every user, by name.
        """

    def remove_user(name: str) -> "Deferred[None]":
        """
        Remove a user with its keys, connections and multipart rows.
        """

    def create_key(
        user: str, access_key_id: Optional[str] = None, secret_access_key: Optional[str] = None
    ) -> "Deferred[AccessKey]":
        """
        Make an access key for C{user}: the given pair, or a newly generated one (20 upper-case
        alphanumerics and 40 base64-ish characters, as AWS makes them).
        """

    def get_key(access_key_id: str) -> "Deferred[Optional[AccessKey]]":
        """
        Look an access key up, for authentication.
        """

    def list_keys(user: str) -> "Deferred[Sequence[AccessKey]]":
        """
        The access keys of C{user}.
        """

    def revoke_key(access_key_id: str) -> "Deferred[None]":
        """
        Remove an access key.
        """

    def add_connection(connection: Connection) -> "Deferred[Connection]":
        """
        Store a connection; fails with C{ValueError} when the user has a bucket of that name.
        """

    def get_connection(user: str, bucket: str) -> "Deferred[Optional[Connection]]":
        """
        Look one bucket of a user up.
        """

    def list_connections(user: Optional[str] = None) -> "Deferred[Sequence[Connection]]":
        """
        The connections of C{user} (of everybody when C{None}), by user then bucket.
        """

    def remove_connection(user: str, bucket: str) -> "Deferred[None]":
        """
        Remove a connection and the multipart rows of its bucket.
        """

    def create_upload(upload: MultipartUpload) -> "Deferred[MultipartUpload]":
        """
        Record a new multipart upload.
        """

    def get_upload(upload_id: str) -> "Deferred[Optional[MultipartUpload]]":
        """
        Look a multipart upload up.
        """

    def list_uploads(
        user: str,
        bucket: str,
        prefix: str = "",
        key_marker: str = "",
        upload_id_marker: str = "",
        max_uploads: int = 1000,
    ) -> "Deferred[Tuple[Sequence[MultipartUpload], bool]]":
        """
        The uploads of a bucket ordered by key then initiation time (then id), after the markers
        as S3's ListMultipartUploads defines them, at most C{max_uploads}; and whether more follow.
        """

    def put_part(part: UploadedPart) -> "Deferred[None]":
        """
        Record (or replace) a part; fails with C{KeyError} if the upload is gone.
        """

    def list_parts(
        upload_id: str, part_number_marker: int = 0, max_parts: int = 10000
    ) -> "Deferred[Tuple[Sequence[UploadedPart], bool]]":
        """
        The parts of an upload with numbers above the marker, in order, at most C{max_parts};
        and whether more follow.
        """

    def delete_upload(upload_id: str) -> "Deferred[None]":
        """
        Remove an upload's row and its part rows.
        """

    def close() -> "Deferred[None]":
        """
        Release the database.
        """
