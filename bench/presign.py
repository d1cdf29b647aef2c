"""
Presigned URLs, made ahead of the timed loops so that no load generator signs while it measures.

botocore's own ``S3SigV4QueryAuth`` does the signing (about 70 microseconds a URL, several times
faster than ``generate_presigned_url``, which goes through the whole client event machinery).
"""

from __future__ import annotations

from typing import Mapping, Optional
from urllib.parse import quote, urlencode, urlsplit

import attr
from botocore.auth import S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

#: The bucket every server in the benchmark serves.
BUCKET = "bench"

#: The access key pair every server in the benchmark accepts.
ACCESS_KEY = "benchaccesskey0001"
SECRET_KEY = "benchsecretkey0001benchsecretkey0001abcd"
REGION = "us-east-1"


@attr.s(frozen=True, auto_attribs=True)
class Endpoint:
    """
    Where one server listens: always loopback, plain HTTP.
    """

    host: str
    port: int

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"


@attr.s(frozen=True, auto_attribs=True)
class Signer:
    """
    Makes SigV4 query-signed (presigned) request targets for one endpoint's bucket.

    :ivar expires: seconds a URL stays valid; long enough for the whole run.
    """

    endpoint: Endpoint
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY
    bucket: str = BUCKET
    expires: int = 4 * 3600

    def _auth(self) -> S3SigV4QueryAuth:
        return S3SigV4QueryAuth(
            Credentials(self.access_key, self.secret_key), "s3", REGION, expires=self.expires
        )

    def target(
        self, method: str, key: str = "", query: Optional[Mapping[str, str]] = None
    ) -> str:
        """
        The request target (path and query) of a presigned request on C{key} of the bucket, or
        on the bucket itself when C{key} is empty.
        """
        return self.targets(method, [key], query)[0]

    def targets(
        self, method: str, keys: "list[str]", query: Optional[Mapping[str, str]] = None
    ) -> "list[str]":
        """
        Presigned targets for many keys at once (one signer, one timestamp).
        """
        auth = self._auth()
        base = self.endpoint.base_url
        suffix = ("?" + urlencode(sorted(query.items()), quote_via=quote)) if query else ""
        out = []
        for key in keys:
            path = "/" + self.bucket + ("/" + quote(key, safe="/~") if key else "")
            request = AWSRequest(method=method, url=base + path + suffix)
            auth.add_auth(request)
            parts = urlsplit(request.url)
            out.append(parts.path + "?" + parts.query)
        return out
