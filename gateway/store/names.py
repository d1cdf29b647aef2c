"""
Which names the gateway accepts for buckets, users and access keys.

The checks live here rather than in the store so that every way in (the admin command, the first
start, CreateBucket) refuses the same names with the same one-line reasons, and a second store
implementation does not have to repeat them.
"""

from __future__ import annotations

import re

_BUCKET_CHARACTERS = re.compile(r"[a-z0-9.-]*\Z")
_IP_ADDRESS = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+\Z")
_USER_NAME = re.compile(r"[A-Za-z0-9_.@-]{1,64}\Z")
# Access key ids end up inside ``Credential=ID/date/region/s3/aws4_request`` of a signature, so
# ``/``, ``,``, ``=`` and white space would make the Authorization header ambiguous.
_ACCESS_KEY_ID = re.compile(r"[A-Za-z0-9._@+-]{1,128}\Z")
_SECRET_KEY = re.compile(r"[\x21-\x7e]{1,256}\Z")

# Amazon reserves these for its own bucket kinds (access point aliases, multi-region access
# points, directory buckets, table buckets, documentation examples): "General purpose bucket
# naming rules" in the S3 User Guide.
_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")


def validate_bucket_name(name: str) -> None:
    """
    Check C{name} against S3's rules for general purpose bucket names.

    :raise ValueError: with a one-line reason when the name breaks a rule.
    """
    if not 3 <= len(name) <= 63:
        raise ValueError(f"bucket name {name!r} must be 3 to 63 characters long")
    if not _BUCKET_CHARACTERS.match(name):
        raise ValueError(
            f"bucket name {name!r} may contain only lower-case letters, digits, dots and hyphens"
        )
    if not (name[0].isalnum() and name[-1].isalnum()):
        raise ValueError(f"bucket name {name!r} must start and end with a letter or a digit")
    if ".." in name:
        raise ValueError(f"bucket name {name!r} must not contain two adjacent dots")
    if _IP_ADDRESS.match(name):
        raise ValueError(f"bucket name {name!r} must not be formatted as an IP address")
    for prefix in _RESERVED_PREFIXES:
        if name.startswith(prefix):
            raise ValueError(f"bucket name {name!r} must not start with {prefix!r}")
    for suffix in _RESERVED_SUFFIXES:
        if name.endswith(suffix):
            raise ValueError(f"bucket name {name!r} must not end with {suffix!r}")


def validate_user_name(name: str) -> None:
    """
    Check a user name: 1 to 64 characters among letters, digits, ``_``, ``.``, ``@`` and ``-``,
    so that it is safe in log lines, file names and XML without escaping.

    :raise ValueError: with a one-line reason.
    """
    if not _USER_NAME.match(name):
        raise ValueError(
            f"user name {name!r} must be 1 to 64 characters among letters, digits, '_', '.', "
            "'@' and '-'"
        )


def validate_access_key_id(access_key_id: str) -> None:
    """
    Check an access key id given by an operator (generated ones always pass). Ids made by other
    S3 services are accepted, as long as a signature's credential scope can carry them.

    :raise ValueError: with a one-line reason.
    """
    if not _ACCESS_KEY_ID.match(access_key_id):
        raise ValueError(
            f"access key id {access_key_id!r} must be 1 to 128 characters among letters, "
            "digits, '.', '_', '@', '+' and '-'"
        )


def validate_secret_key(secret_access_key: str) -> None:
    """
    Check a secret key given by an operator: 1 to 256 printable ASCII characters, no spaces.
    The message never repeats the secret.

    :raise ValueError: with a one-line reason.
    """
    if not _SECRET_KEY.match(secret_access_key):
        raise ValueError(
            "the secret key must be 1 to 256 printable ASCII characters without spaces"
        )
