"""
Bucket operations. Buckets are connections, made by the operator; CreateBucket and DeleteBucket
are no-ops unless the gateway was given a root for buckets made through S3.
"""

from __future__ import annotations

import os
import shutil
import time
from typing import Optional

from attrs import frozen
from twisted.internet.threads import deferToThread

from gateway.backends import BackendRegistry
from gateway.interfaces import IMetadataStore
from gateway.model import Connection
from gateway.s3 import xml
from gateway.s3.auth import owner_id
from gateway.s3.context import OperationContext
from gateway.s3.errors import S3Error
from gateway.s3.listings import owner_node
from gateway.s3.responses import empty, xml_body
from gateway.store.names import validate_bucket_name


@frozen
class BucketPolicy:
    """
    How the gateway answers bucket operations.

    :ivar region: the region named by GetBucketLocation.
    :ivar create_bucket_root: where CreateBucket makes directories for new ``local`` connections;
        C{None} makes CreateBucket and DeleteBucket the no-ops of the specification.
    """

    region: str = "us-east-1"
    create_bucket_root: Optional[str] = None


async def list_buckets(context: OperationContext, store: IMetadataStore) -> bytes:
    connections = await store.list_connections(context.caller.user)
    buckets = [
        (
            "Bucket",
            [("Name", c.bucket), ("CreationDate", xml.iso8601(c.created or 0.0))],
        )
        for c in sorted(connections, key=lambda c: c.bucket)
    ]
    return xml_body(
        context.request,
        ("ListAllMyBucketsResult", [owner_node(context.caller.user), ("Buckets", buckets)]),
    )


async def head_bucket(context: OperationContext, policy: BucketPolicy) -> bytes:
    context.request.setHeader(b"x-amz-bucket-region", policy.region.encode("ascii"))
    return empty(context.request)


async def get_bucket_location(context: OperationContext, policy: BucketPolicy) -> bytes:
    # us-east-1 is named by an empty constraint (S3 API Reference, GetBucketLocation).
    region = "" if policy.region == "us-east-1" else policy.region
    return xml_body(context.request, ("LocationConstraint", region or None))


async def get_bucket_acl(context: OperationContext) -> bytes:
    user = context.caller.user
    grantee: xml.Node = ("Grantee", [("ID", owner_id(user)), ("DisplayName", user)])
    body = xml.render(
        (
            "AccessControlPolicy",
            [
                owner_node(user),
                ("AccessControlList", [("Grant", [grantee, ("Permission", "FULL_CONTROL")])]),
            ],
        )
    )
    # The Grantee element needs its xsi:type attribute, which the tuple form cannot carry.
    body = body.replace(
        b"<Grantee>",
        b'<Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        b'xsi:type="CanonicalUser">',
    )
    request = context.request
    request.setHeader(b"content-type", b"application/xml")
    request.setHeader(b"content-length", b"%d" % (len(body),))
    return body


async def get_bucket_versioning(context: OperationContext) -> bytes:
    return xml_body(context.request, ("VersioningConfiguration", [("Status", "Suspended")]))


async def create_bucket(
    context: OperationContext,
    store: IMetadataStore,
    policy: BucketPolicy,
) -> bytes:
    request = context.request
    if context.connection is not None:
        if policy.create_bucket_root is None or policy.region == "us-east-1":
            # us-east-1 answers a repeated CreateBucket by the owner with 200.
            request.setHeader(b"location", b"/" + context.bucket.encode("utf-8"))
            return empty(request)
        raise S3Error(
            "BucketAlreadyOwnedByYou",
            "Your previous request to create the named bucket succeeded and you already own it.",
            BucketName=context.bucket,
        )
    if policy.create_bucket_root is None:
        # The specification's no-op: buckets are connections made by the operator.
        request.setHeader(b"location", b"/" + context.bucket.encode("utf-8"))
        return empty(request)
    try:
        validate_bucket_name(context.bucket)
    except ValueError as error:
        raise S3Error("InvalidBucketName", str(error), BucketName=context.bucket)
    path = os.path.join(policy.create_bucket_root, context.caller.user, context.bucket)
    await deferToThread(os.makedirs, path, 0o755, True)
    await store.add_connection(
        Connection(
            user=context.caller.user,
            bucket=context.bucket,
            backend="local",
            settings={"path": path},
            created=time.time(),
            created_by_s3=True,
        )
    )
    request.setHeader(b"location", b"/" + context.bucket.encode("utf-8"))
    return empty(request)


async def delete_bucket(
    context: OperationContext,
    store: IMetadataStore,
    registry: BackendRegistry,
) -> bytes:
    connection = context.connection
    assert connection is not None
    if not connection.created_by_s3:
        # Connections made by the operator are never removed through S3.
        return empty(context.request, 204)
    page = await context.storage.list_objects("", None, "", 1)
    uploads, _ = await store.list_uploads(connection.user, connection.bucket, max_uploads=1)
    if page.objects or page.common_prefixes or uploads:
        raise S3Error(
            "BucketNotEmpty",
            "The bucket you tried to delete is not empty",
            BucketName=context.bucket,
        )
    await store.remove_connection(connection.user, connection.bucket)
    registry.forget(connection)
    await deferToThread(shutil.rmtree, connection.settings["path"], True)
    return empty(context.request, 204)
