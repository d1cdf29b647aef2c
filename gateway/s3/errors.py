"""
S3's errors: one exception type carrying the code, the HTTP status and the message, rendered to
S3's XML error body in one place (L{gateway.s3.app}).

The codes and statuses are those of the S3 API Reference, "Error responses".
"""

from __future__ import annotations

from typing import Dict, Optional

from gateway import interfaces

#: HTTP status of each S3 error code the gateway answers.
STATUS: Dict[str, int] = {
    "AccessDenied": 403,
    "AuthorizationHeaderMalformed": 400,
    "AuthorizationQueryParametersError": 400,
    "BadDigest": 400,
    "BucketAlreadyExists": 409,
    "BucketAlreadyOwnedByYou": 409,
    "BucketNotEmpty": 409,
    "EntityTooLarge": 400,
    "EntityTooSmall": 400,
    "ExpiredToken": 400,
    "IncompleteBody": 400,
    "InternalError": 500,
    "InvalidAccessKeyId": 403,
    "InvalidArgument": 400,
    "InvalidBucketName": 400,
    "InvalidDigest": 400,
    "InvalidPart": 400,
    "InvalidPartOrder": 400,
    "InvalidPartNumber": 416,
    "InvalidTag": 400,
    "InvalidURI": 400,
    "AccessForbidden": 403,
    "InvalidRange": 416,
    "InvalidRequest": 400,
    "KeyTooLongError": 400,
    "MalformedXML": 400,
    "MethodNotAllowed": 405,
    "MissingContentLength": 411,
    "MissingSecurityHeader": 400,
    "NoSuchBucket": 404,
    "NoSuchKey": 404,
    "NoSuchUpload": 404,
    "NotImplemented": 501,
    "PreconditionFailed": 412,
    "RequestTimeTooSkewed": 403,
    "ServiceUnavailable": 503,
    "SignatureDoesNotMatch": 403,
    "XAmzContentSHA256Mismatch": 400,
}


class S3Error(Exception):
    """
    An S3 error response.

    :ivar code: S3's error code, e.g. ``"NoSuchKey"``.
    :ivar message: the human-readable message.
    :ivar status: the HTTP status; taken from L{STATUS} unless given.
    :ivar extra: further elements of the ``<Error>`` body (``Key``, ``BucketName``, ...).
    """

    def __init__(
        self,
        code: str,
        message: str = "",
        status: Optional[int] = None,
        **extra: str,
    ) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message or code
        self.status = status if status is not None else STATUS.get(code, 400)
        self.extra = extra

    def __repr__(self) -> str:
        return f"S3Error({self.code!r}, {self.message!r}, status={self.status})"


def from_backend_error(error: interfaces.BackendError, key: str = "") -> S3Error:
    """
    The S3 error that answers a backend's failure.
    """
    message = str(error)
    if isinstance(error, interfaces.NoSuchObject):
        return S3Error("NoSuchKey", "The specified key does not exist.", Key=key)
    if isinstance(error, interfaces.ObjectKeyTooLong):
        return S3Error("KeyTooLongError", message or "Your key is too long.")
    if isinstance(error, interfaces.InvalidObjectKey):
        return S3Error("InvalidArgument", message or "Invalid object key.")
    if isinstance(error, interfaces.ReadOnlyConnection):
        return S3Error("AccessDenied", message or "The bucket is read-only.")
    if isinstance(error, interfaces.NoSuchUpload):
        return S3Error(
            "NoSuchUpload",
            "The specified upload does not exist. The upload ID may be invalid, or the upload "
            "may have been aborted or completed.",
        )
    if isinstance(error, interfaces.PreconditionNotMet):
        return S3Error(
            "PreconditionFailed",
            "At least one of the pre-conditions you specified did not hold",
            Condition=message or "If-None-Match",
        )
    if isinstance(error, interfaces.BackendUnavailable):
        return S3Error("ServiceUnavailable", message or "The storage is unavailable.")
    return S3Error("InternalError", "We encountered an internal error. Please try again.")
