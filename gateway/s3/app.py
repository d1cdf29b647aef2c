"""
The S3 protocol: one function that serves every request.

There are no URL routes: S3 addresses operations by method and query sub-resource, and keys are
arbitrary strings (``//``, ``%2F``, trailing ``/``) that URL routing would normalise, so every
request goes to L{S3Gateway.handle} through L{gateway.http.resource.HandlerResource}. The request is authenticated, its bucket resolved to the caller's connection and
backend, and the operation's handler called; every failure becomes S3's error document in
L{S3Gateway._render_error}, the one place errors are written.
"""

from __future__ import annotations

import time
from typing import Awaitable, Callable, Dict, Optional, Sequence

from twisted.internet.defer import CancelledError
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import IResource
from twisted.web.server import Request

from gateway.accesslog import AccessRecord
from gateway.backends import BackendRegistry
from gateway.http.resource import HandlerResource
from gateway.interfaces import BackendError, IBackend, IMetadataStore
from gateway.model import Connection
from gateway.s3 import batchdelete, buckets, copy, cors, listings, multipart, objects, tagging, xml
from gateway.s3.addressing import locate
from gateway.s3.auth import authenticate, request_facts
from gateway.s3.buckets import BucketPolicy
from gateway.s3.context import OperationContext
from gateway.s3.errors import S3Error, from_backend_error
from gateway.s3.hashing import HashingBudget
from gateway.s3.cors import CorsPolicy
from gateway.s3.requestids import RequestIds
from gateway.s3.routing import operation_name, parse_query

Handler = Callable[[OperationContext], Awaitable[Optional[bytes]]]

#: Operations that may be addressed to a bucket the caller does not have.
WITHOUT_BUCKET = frozenset({"ListBuckets", "CreateBucket"})


class S3Gateway:
    """
    The S3 endpoint of the gateway.

    :param store: users, keys, connections and multipart rows.
    :param backends: the backend of each connection.
    :param policy: region and bucket-creation settings.
    :param clock: the time source for signature expiry and skew.
    :param base_domains: the domains under which ``<bucket>.<domain>`` hosts name buckets
        (virtual-host-style addressing); path-style works on any host.
    :param cors: the origins allowed per bucket.
    :param allow_signature_v2: whether AWS Signature Version 2 is accepted.
    """

    log = Logger()

    def __init__(
        self,
        store: IMetadataStore,
        backends: BackendRegistry,
        policy: BucketPolicy,
        clock: IReactorTime,
        access_log: Optional[Callable[[AccessRecord], None]] = None,
        base_domains: Sequence[str] = (),
        cors: CorsPolicy = CorsPolicy(),
        allow_signature_v2: bool = True,
    ) -> None:
        self._store = store
        self._backends = backends
        self._policy = policy
        self._clock = clock
        self._access_log = access_log
        self._base_domains = tuple(base_domains)
        self._cors = cors
        self._allow_signature_v2 = allow_signature_v2
        self._request_ids = RequestIds()
        self._hashing_budget = HashingBudget()
        self._handlers: Dict[str, Handler] = self._make_handlers()

    def resource(self) -> IResource:
        return HandlerResource(self.handle)

    def _make_handlers(self) -> Dict[str, Handler]:
        store, policy = self._store, self._policy
        return {
            "ListBuckets": lambda c: buckets.list_buckets(c, store),
            "HeadBucket": lambda c: buckets.head_bucket(c, policy),
            "CreateBucket": lambda c: buckets.create_bucket(c, store, policy),
            "DeleteBucket": lambda c: buckets.delete_bucket(c, store, self._backends),
            "GetBucketLocation": lambda c: buckets.get_bucket_location(c, policy),
            "GetBucketAcl": buckets.get_bucket_acl,
            "GetBucketVersioning": buckets.get_bucket_versioning,
            "ListObjectVersions": listings.list_object_versions,
            "ListObjectsV2": listings.list_objects_v2,
            "ListObjects": listings.list_objects_v1,
            "GetObject": objects.get_object,
            "HeadObject": objects.get_object,
            "PutObject": objects.put_object,
            "DeleteObject": objects.delete_object,
            "DeleteObjects": batchdelete.delete_objects,
            "GetObjectTagging": tagging.get_object_tagging,
            "PutObjectTagging": tagging.put_object_tagging,
            "DeleteObjectTagging": tagging.delete_object_tagging,
            "CopyObject": lambda c: copy.copy_object(c, self._find_source),
            "UploadPartCopy": lambda c: copy.upload_part_copy(c, store, self._find_source),
            "CreateMultipartUpload": lambda c: multipart.create_upload(c, store),
            "UploadPart": lambda c: multipart.upload_part(c, store),
            "CompleteMultipartUpload": lambda c: multipart.complete_upload(c, store),
            "AbortMultipartUpload": lambda c: multipart.abort_upload(c, store),
            "ListMultipartUploads": lambda c: multipart.list_uploads(c, store),
            "ListParts": lambda c: multipart.list_parts(c, store),
        }

    async def handle(self, request: Request) -> Optional[bytes]:
        """
        Serve one request: the response body to write, or C{None} when the response has been
        written already (a streamed object) or the request was cancelled.
        """
        request_id = self._request_ids.next()
        started = time.monotonic()
        request.setHeader(b"x-amz-request-id", request_id.encode("ascii"))
        request.setHeader(b"x-amz-id-2", request_id.encode("ascii"))
        entry = {"bucket": "", "key": "", "access_key_id": "-", "operation": "-"}
        request.notifyFinish().addBoth(
            lambda result: self._log_access(request, entry, started, result)
        )
        resource = "/"
        try:
            facts = request_facts(request)
            address = locate(facts.header("host"), facts.raw_path, self._base_domains)
            bucket, key = address.bucket, address.key
            entry["bucket"], entry["key"] = bucket, key
            resource = "/" + bucket + ("/" + key if key else "") if bucket else "/"
            origin = facts.header("origin")
            if facts.method == "OPTIONS":
                entry["operation"] = "PreflightCORS"
                return cors.preflight(
                    request,
                    self._cors,
                    bucket,
                    origin,
                    facts.header("access-control-request-method"),
                    facts.header("access-control-request-headers"),
                )
            cors.decorate(request, self._cors, bucket, origin)
            query = parse_query(facts.raw_query, facts.raw_pairs, facts.query_pairs)
            operation = operation_name(
                facts.method, bucket, key, query, "x-amz-copy-source" in facts.headers
            )
            entry["operation"] = operation
            caller = await authenticate(
                facts,
                self._store,
                self._clock.seconds(),
                bucket,
                address.virtual_host,
                self._allow_signature_v2,
            )
            entry["access_key_id"] = caller.access_key_id
            context = OperationContext(
                request, facts, caller, bucket, key, query, reactor=self._clock,
                hashing_budget=self._hashing_budget,
            )
            if bucket:
                await self._resolve_bucket(context, operation)
            return await self._handlers[operation](context)
        except S3Error as error:
            return self._render_error(request, error, resource, request_id)
        except BackendError as error:
            return self._render_error(
                request, from_backend_error(error, entry["key"]), resource, request_id
            )
        except CancelledError:
            return None
        except Exception:
            self.log.failure("Unexpected failure in {method} {resource}",
                             method=request.method, resource=resource)
            return self._render_error(
                request,
                S3Error("InternalError", "We encountered an internal error. Please try again."),
                resource,
                request_id,
            )

    async def _resolve_bucket(self, context: OperationContext, operation: str) -> None:
        connection = await self._store.get_connection(context.caller.user, context.bucket)
        if connection is None and operation in WITHOUT_BUCKET:
            return
        context.connection = self._existing(connection, context.bucket)
        context.backend = self._backends.backend_for(context.connection)

    async def _find_source(self, user: str, bucket: str) -> IBackend:
        """
        The backend of a copy source's bucket, which must be one of the caller's.
        """
        connection = await self._store.get_connection(user, bucket)
        return self._backends.backend_for(self._existing(connection, bucket))

    @staticmethod
    def _existing(connection: Optional[Connection], bucket: str) -> Connection:
        if connection is None:
            raise S3Error("NoSuchBucket", "The specified bucket does not exist", BucketName=bucket)
        return connection

    def _render_error(
        self, request: Request, error: S3Error, resource: str, request_id: str
    ) -> Optional[bytes]:
        if request.startedWriting:
            # Too late for an error document: cut the response short so the client notices.
            self.log.warn("Failed after the response began: {error!r}", error=error)
            request.loseConnection()
            return None
        body = xml.error_document(
            error.code, error.message, resource, request_id, error.extra.items()
        )
        request.setResponseCode(error.status)
        for name in (b"etag", b"last-modified", b"content-range", b"accept-ranges"):
            request.responseHeaders.removeHeader(name)
        request.setHeader(b"content-type", b"application/xml")
        request.setHeader(b"content-length", b"%d" % (len(body),))
        return body

    def _log_access(
        self, request: Request, entry: Dict[str, str], started: float, result: object
    ) -> None:
        if self._access_log is None:
            return None
        self._access_log(AccessRecord(
            method=request.method.decode("ascii", "replace"),
            operation=entry["operation"],
            bucket=entry["bucket"],
            key=entry["key"],
            status=request.code,
            bytes_sent=request.sentLength,
            bytes_received=getattr(getattr(request, "body", None), "received", 0),
            duration=time.monotonic() - started,
            access_key_id=entry["access_key_id"],
            disconnected=isinstance(result, Failure),
        ))
        return None
