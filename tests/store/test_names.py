"""
Bucket, user and access key names: S3's rules, each broken rule with its reason.
"""

from __future__ import annotations

import pytest

from gateway.store.names import (
    validate_access_key_id,
    validate_bucket_name,
    validate_secret_key,
    validate_user_name,
)


@pytest.mark.parametrize(
    "name",
    [
        "abc",
        "a" * 63,
        "my-bucket.2024",
        "0123",
        "1.2.3",
        "a-b.c-d",
        "xn-a",
        "s3alias-x",
        "a.b.c.d5",
    ],
)
def test_valid_bucket_names(name):
    validate_bucket_name(name)


@pytest.mark.parametrize(
    "name, reason",
    [
        ("ab", "3 to 63"),
        ("a" * 64, "3 to 63"),
        ("", "3 to 63"),
        ("My-Bucket", "lower-case"),
        ("under_score", "lower-case"),
        ("with space", "lower-case"),
        ("ünï", "lower-case"),
        ("-abc", "start and end"),
        ("abc-", "start and end"),
        (".abc", "start and end"),
        ("abc.", "start and end"),
        ("a..b", "adjacent dots"),
        ("192.168.5.4", "IP address"),
        ("xn--bucket", "'xn--'"),
        ("sthree-bucket", "'sthree-'"),
        ("amzn-s3-demo-bucket", "'amzn-s3-demo-'"),
        ("bucket-s3alias", "'-s3alias'"),
        ("bucket--ol-s3", "'--ol-s3'"),
        ("bucket.mrap", "'.mrap'"),
        ("bucket--x-s3", "'--x-s3'"),
        ("bucket--table-s3", "'--table-s3'"),
    ],
)
def test_invalid_bucket_names(name, reason):
    with pytest.raises(ValueError) as raised:
        validate_bucket_name(name)
    message = str(raised.value)
    assert reason in message
    assert "\n" not in message


@pytest.mark.parametrize("name", ["a", "admin", "Alice_B.c@example-1", "x" * 64])
def test_valid_user_names(name):
    validate_user_name(name)


@pytest.mark.parametrize("name", ["", "x" * 65, "a b", "a/b", "é", "a:b", "a\nb"])
def test_invalid_user_names(name):
    with pytest.raises(ValueError, match="user name"):
        validate_user_name(name)


def test_access_key_ids():
    for good in ("AKIAIOSFODNN7EXAMPLE", "minioadmin", "a.b_c@d+e-f", "X" * 128):
        validate_access_key_id(good)
    for bad in ("", "X" * 129, "a/b", "a,b", "a=b", "a b", "ключ"):
        with pytest.raises(ValueError, match="access key id"):
            validate_access_key_id(bad)


def test_secret_keys_are_never_repeated_in_the_message():
    for good in ("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "~!@#$%^&*()=", "s"):
        validate_secret_key(good)
    for bad in ("", "has space", "tab\there", "é-secret", "x" * 257):
        with pytest.raises(ValueError) as raised:
            validate_secret_key(bad)
        assert bad not in str(raised.value) or bad == ""
