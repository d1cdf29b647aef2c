"""
The ``aws-chunked`` request body: a push parser that turns it back into the object's bytes.

Clients that sign each chunk (``STREAMING-AWS4-HMAC-SHA256-PAYLOAD``, "Signature Calculations
for the Authorization Header: Transferring Payload in Multiple Chunks (Chunked Upload)"), that add
a signed trailer (``STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER``, "Signature calculations for
trailing headers (chunked uploads)"), or that send unsigned chunks with a trailing checksum
(``STREAMING-UNSIGNED-PAYLOAD-TRAILER``, what boto3 >= 1.36 and the aws cli send over TLS) all
frame the body as ``hex-size[;chunk-signature=SIG]\\r\\n data \\r\\n`` ending in a zero-size chunk
and, for the trailer forms, ``name:value`` lines and a blank line.

The decoder is fed the HTTP body as it arrives and hands back payload pieces at once, slicing
them out of what it was fed: a large chunk is neither buffered nor copied more than once. A
chunk's signature can only be checked once the whole chunk has passed, so the caller must not
commit what it stored until :meth:`AwsChunkedDecoder.finish` has returned.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Dict, List, Mapping, Optional

from gateway.s3.errors import S3Error
from gateway.s3.sigv4 import (
    EMPTY_SHA256,
    SIGNATURE_MISMATCH,
    STREAMING_PAYLOAD,
    STREAMING_PAYLOAD_TRAILER,
    STREAMING_UNSIGNED_TRAILER,
    VerifiedSignature,
)

#: The longest chunk-size or trailer line accepted.
MAX_LINE = 4096
#: The largest chunk accepted; clients send 64 KiB to 8 MiB.
MAX_CHUNK = 64 * 1024 * 1024
#: The most trailer lines accepted.
MAX_TRAILERS = 16

_SIZE = re.compile(rb"\A[0-9a-fA-F]{1,16}\Z")
_SIGNATURE = re.compile(rb"\A[0-9a-f]{64}\Z")
_TRAILER_SIGNATURE = "x-amz-trailer-signature"

_SIZE_LINE, _DATA, _DATA_END, _TRAILERS, _LAST_LINE, _DONE = range(6)


def _incomplete() -> S3Error:
    return S3Error(
        "IncompleteBody",
        "You did not provide the number of bytes specified by the Content-Length HTTP header.",
    )


def _malformed(detail: str) -> S3Error:
    return S3Error("InvalidRequest", f"The aws-chunked request body is malformed: {detail}.")


class AwsChunkedDecoder:
    """
    Decodes one aws-chunked body, checking each chunk's signature in turn.

    :param mode: the request's x-amz-content-sha256 value, one of the three streaming forms.
    :param decoded_length: x-amz-decoded-content-length, when the client gave it.
    :param verified: the checked seed signature; required for the signed forms.
    """

    def __init__(
        self,
        mode: str,
        decoded_length: Optional[int],
        verified: Optional[VerifiedSignature],
    ) -> None:
        if mode not in (STREAMING_PAYLOAD, STREAMING_PAYLOAD_TRAILER, STREAMING_UNSIGNED_TRAILER):
            raise ValueError(f"not an aws-chunked mode: {mode!r}")
        self._signed = mode != STREAMING_UNSIGNED_TRAILER
        if self._signed and verified is None:
            raise ValueError("signed aws-chunked bodies need the verified seed signature")
        self._verified = verified
        self._previous = verified.seed_signature if verified is not None else ""
        self._trailer_expected = mode != STREAMING_PAYLOAD
        self._decoded_length = decoded_length
        self._state = _SIZE_LINE
        self._line = bytearray()
        self._remaining = 0
        self._chunk_signature = ""
        self._chunk_hash = hashlib.sha256()
        self._total = 0
        self._trailers: Dict[str, str] = {}
        self._trailer_text = bytearray()
        self._trailer_signed = False

    @property
    def decoded_bytes(self) -> int:
        """
        How many payload bytes have been handed back so far.
        """
        return self._total

    def feed(self, data: bytes) -> List[bytes]:
        """
        Take the next bytes of the HTTP body.

        :return: the payload pieces they complete, in order (possibly none).
        :raise S3Error: on a bad signature, bad framing or too much payload; the decoder is
            unusable afterwards.
        """
        pieces: List[bytes] = []
        view = memoryview(data)
        position, end = 0, len(data)
        while position < end:
            if self._state == _DATA:
                take = min(self._remaining, end - position)
                part = view[position : position + take]
                if self._signed:
                    self._chunk_hash.update(part)
                pieces.append(data if take == end else bytes(part))
                position += take
                self._remaining -= take
                self._count(take)
                if not self._remaining:
                    if self._signed:
                        self._check_chunk()
                    self._state = _DATA_END
            elif self._state == _DONE:
                if data[position:].strip(b"\r\n"):
                    raise _malformed("data after the final chunk")
                position = end
            else:
                newline = data.find(b"\n", position)
                stop = end if newline < 0 else newline + 1
                if len(self._line) + stop - position > MAX_LINE:
                    raise _malformed("line too long")
                self._line += view[position:stop]
                position = stop
                if newline >= 0:
                    line = bytes(self._line)
                    del self._line[:]
                    if not line.endswith(b"\r\n"):
                        raise _malformed("line not ended by CRLF")
                    self._line_complete(line[:-2])
        return pieces

    def finish(self) -> Mapping[str, str]:
        """
        Note the end of the HTTP body.

        :return: the trailer headers, lower-case names (without the trailer signature).
        :raise S3Error: ``IncompleteBody`` if the final chunk or an expected trailer is missing
            or the payload's length is not x-amz-decoded-content-length.
        """
        # The blank line that ends the trailers may be missing: they are complete without it.
        if self._state == _TRAILERS and not self._line and self._trailers_complete():
            self._state = _DONE
        if self._state != _DONE:
            raise _incomplete()
        if self._decoded_length is not None and self._total != self._decoded_length:
            raise _incomplete()
        return dict(self._trailers)

    def _count(self, size: int) -> None:
        self._total += size
        if self._decoded_length is not None and self._total > self._decoded_length:
            raise _incomplete()

    def _line_complete(self, line: bytes) -> None:
        if self._state == _SIZE_LINE:
            self._size_line(line)
        elif self._state == _DATA_END:
            if line:
                raise _malformed("chunk longer than its size")
            self._state = _SIZE_LINE
        elif self._state == _LAST_LINE:
            if line:
                raise _malformed("data in the final chunk")
            self._state = _DONE
        else:
            self._trailer_line(line)

    def _size_line(self, line: bytes) -> None:
        size_text, _, extensions = line.partition(b";")
        if not _SIZE.match(size_text):
            raise _malformed("bad chunk size")
        size = int(size_text, 16)
        if size > MAX_CHUNK:
            raise _malformed("chunk too large")
        if self._signed:
            name, _, signature = extensions.partition(b"=")
            if name.strip() != b"chunk-signature" or not _SIGNATURE.match(signature.strip()):
                raise _malformed("chunk signature missing")
            self._chunk_signature = signature.strip().decode("ascii")
            self._chunk_hash = hashlib.sha256()
        if size:
            self._remaining = size
            self._state = _DATA
            return
        if self._signed:
            self._check_chunk()
        self._state = _TRAILERS if self._trailer_expected else _LAST_LINE

    def _check_chunk(self) -> None:
        """
        Check the chunk just read against the signature chain ("Transferring Payload in Multiple
        Chunks", "Defining the Chunk Body").
        """
        string_to_sign = "\n".join(
            [
                "AWS4-HMAC-SHA256-PAYLOAD",
                self._seed.timestamp,
                self._seed.scope,
                self._previous,
                EMPTY_SHA256,
                self._chunk_hash.hexdigest(),
            ]
        )
        self._previous = self._expect(string_to_sign, self._chunk_signature)

    @property
    def _seed(self) -> VerifiedSignature:
        assert self._verified is not None
        return self._verified

    def _expect(self, string_to_sign: str, provided: str) -> str:
        expected = hmac.new(
            self._seed.signing_key, string_to_sign.encode("ascii"), hashlib.sha256
        ).hexdigest()
        if not hmac.compare_digest(expected, provided):
            raise S3Error("SignatureDoesNotMatch", SIGNATURE_MISMATCH)
        return expected

    def _trailer_line(self, line: bytes) -> None:
        if not line:
            # A blank line ends the trailers; one right after the last chunk (the empty chunk's
            # own CRLF, as some encoders write it) does not when trailers are still to come.
            if self._trailers_complete():
                self._state = _DONE
            elif self._trailers or self._trailer_signed:
                raise _incomplete()
            return
        if self._trailer_signed:
            raise _malformed("trailer after the trailer signature")
        name, colon, value = line.decode("latin-1").partition(":")
        name, value = name.strip().lower(), value.strip()
        if not colon or not name:
            raise _malformed("bad trailer line")
        if name == _TRAILER_SIGNATURE and self._signed:
            self._check_trailer(value)
            return
        if len(self._trailers) >= MAX_TRAILERS:
            raise _malformed("too many trailers")
        self._trailers[name] = value
        # The trailer signature covers each trailer as "name:value\n" (the AWS example's
        # d81f82fc... signature is over exactly that).
        self._trailer_text += f"{name}:{value}\n".encode("latin-1")

    def _check_trailer(self, provided: str) -> None:
        if not _SIGNATURE.match(provided.encode("latin-1")):
            raise _malformed("bad trailer signature")
        string_to_sign = "\n".join(
            [
                "AWS4-HMAC-SHA256-TRAILER",
                self._seed.timestamp,
                self._seed.scope,
                self._previous,
                hashlib.sha256(self._trailer_text).hexdigest(),
            ]
        )
        self._previous = self._expect(string_to_sign, provided)
        self._trailer_signed = True

    def _trailers_complete(self) -> bool:
        return self._trailer_signed if self._signed else bool(self._trailers)
