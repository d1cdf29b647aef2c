"""
The ``Range`` request header, as S3 and twisted.web.static read it (RFC 9110 section 14).

S3 honours a single range only; a header naming several ranges is answered with the whole object,
which is what S3 does too. Parsing is a pure function so that every case has its own test.
"""

from __future__ import annotations

from typing import Optional

from gateway.model import ByteRange


class UnsatisfiableRange(Exception):
    """
    The range is well-formed but selects no byte of the object (416 InvalidRange).
    """


def parse_range(header: Optional[str], size: int) -> Optional[ByteRange]:
    """
    The byte range that C{header} selects from an object of C{size} bytes.

    :return: C{None} when the whole object is to be sent: no header, a header that is not a
        single well-formed ``bytes=`` range (ignored, as RFC 9110 allows), or several ranges.
    :raise UnsatisfiableRange: when the range starts past the end, or asks a zero-length suffix.
    """
    if not header:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first_text, dash, last_text = spec.strip().partition("-")
    first_text, last_text = first_text.strip(), last_text.strip()
    if not dash or not (_is_number(first_text) or first_text == ""):
        return None
    if last_text and not _is_number(last_text):
        return None
    if first_text == "":
        if not last_text:
            return None
        suffix = int(last_text)
        if suffix == 0 or size == 0:
            raise UnsatisfiableRange()
        return ByteRange(max(0, size - suffix), size - 1)
    first = int(first_text)
    if first >= size:
        raise UnsatisfiableRange()
    last = size - 1 if not last_text else min(int(last_text), size - 1)
    if last < first:
        return None
    return ByteRange(first, last)


def _is_number(text: str) -> bool:
    # str.isdigit also accepts "\u00b2" and other non-ASCII digits, which int() refuses or reads.
    return text.isascii() and text.isdigit()


def content_range(byte_range: ByteRange, size: int) -> str:
    """
    The ``Content-Range`` value of a 206 response.
    """
    return f"bytes {byte_range.first}-{byte_range.last}/{size}"
