"""
What every S3 operation handler receives: the request, its caller and its target, resolved once.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from attrs import define
from twisted.web.server import Request

from gateway.interfaces import IBackend
from gateway.model import Connection
from gateway.s3.auth import Caller
from gateway.s3.hashing import HashingBudget
from gateway.s3.sigv4 import RequestFacts


@define
class OperationContext:
    """
    One S3 request, authenticated and addressed.

    :ivar bucket: the bucket named by the request, or C{""} for the service (ListBuckets).
    :ivar key: the object key, or C{""} for a bucket operation.
    :ivar query: the query parameters, decoded (first value of each).
    :ivar connection: the caller's connection for C{bucket}, when it exists.
    :ivar backend: that connection's backend.
    :ivar reactor: the reactor, for work handed to threads (large uploads' hashing).
    :ivar hashing_budget: the backlog those hashing threads share in this process.
    """

    request: Request
    facts: RequestFacts
    caller: Caller
    bucket: str
    key: str
    query: Dict[str, str]
    connection: Optional[Connection] = None
    backend: Optional[IBackend] = None
    reactor: Optional[Any] = None
    hashing_budget: Optional[HashingBudget] = None

    def header(self, name: str) -> Optional[str]:
        """
        The first value of a request header, by lower-case name.
        """
        values = self.facts.headers.get(name)
        return values[0] if values else None

    @property
    def storage(self) -> IBackend:
        """
        The backend of the addressed bucket; only for operations on an existing bucket.
        """
        assert self.backend is not None
        return self.backend

    @property
    def resource(self) -> str:
        """
        The resource named in error documents: ``/bucket/key``.
        """
        if not self.bucket:
            return "/"
        return "/" + self.bucket + ("/" + self.key if self.key else "")
