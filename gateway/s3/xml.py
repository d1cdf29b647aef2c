"""
S3's XML: building response documents and reading request documents.

Responses are built from nested tuples, so each operation's document reads like the S3 API
Reference's response syntax. Request documents are parsed with the standard library's expat
(which neither fetches external entities nor expands nested entity bombs past its limits) and
any malformed document is S3's MalformedXML.
"""

from __future__ import annotations

import re
import time
from typing import Iterable, List, Optional, Sequence, Tuple, Union
from xml.etree import ElementTree

from attrs import frozen

from gateway.s3.errors import S3Error

NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"


@frozen
class Markup:
    """
    A stretch of document already written as XML text, put into a document as it is.

    Long, regular documents (a listing page of a thousand ``Contents``) are much cheaper to
    write from a template than node by node; their writer escapes every value with L{escape}.
    """

    text: str


#: A document node: ``(tag, text-or-children)``; ``None`` children are skipped.
Node = Tuple[str, Union[str, int, bool, None, Sequence[Union[Optional["Node"], Markup]]]]


def iso8601(timestamp: float) -> str:
    """
    S3's timestamp form in XML bodies: ``2006-02-03T16:45:09.000Z``.
    """
    seconds = int(timestamp)
    millis = int((timestamp - seconds) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + ".%03dZ" % (millis,)


#: Characters XML 1.0 cannot carry (section 2.2), even as references.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")

#: Characters that text cannot carry as they are: markup, a carriage return (which parsers read
#: back as a line feed, so it travels as a reference), and those XML cannot carry at all.
_SPECIAL = re.compile("[&<>\r\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def escape(text: str) -> str:
    """
    C{text} as the content of an element.

    A key may hold control characters XML cannot carry; they become U+FFFD, and clients that
    need them exactly list with encoding-type=url, as the S3 API Reference advises.
    """
    if _SPECIAL.search(text) is None:
        return text
    return (
        _NOT_XML.sub("\ufffd", text)
        .replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace("\r", "&#13;")
    )


def _escape_attribute(value: str) -> str:
    return (
        escape(value)
        .replace('"', "&quot;")
        .replace("\n", "&#10;")
        .replace("\t", "&#09;")
    )


def _text(value: Union[str, int, bool]) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return escape(str(value))


def _write(node: Node, out: List[str], attributes: str = "") -> None:
    """
    Append the text of C{node} to C{out}: an element without content is written ``<Tag />``.
    """
    tag, content = node
    if isinstance(content, (list, tuple)):
        children = [child for child in content if child is not None]
        if not children:
            out.append(f"<{tag}{attributes} />")
            return
        out.append(f"<{tag}{attributes}>")
        for child in children:
            if isinstance(child, Markup):
                out.append(child.text)
            else:
                _write(child, out)
        out.append(f"</{tag}>")
        return
    # Children always come as a list or a tuple, handled above: what is left is a scalar.
    text = "" if content is None else _text(content)  # type: ignore[arg-type]
    if text:
        out.append(f"<{tag}{attributes}>{text}</{tag}>")
    else:
        out.append(f"<{tag}{attributes} />")


def markup(node: Node) -> Markup:
    """
    The text of C{node} as an element inside a document, to repeat in a template.
    """
    out: List[str] = []
    _write(node, out)
    return Markup("".join(out))


def render(node: Node, namespace: Optional[str] = NAMESPACE) -> bytes:
    """
    Serialise a document with the XML declaration, in the S3 namespace unless told otherwise.

    The text is what ElementTree would write for the same tree (tests hold the two side by
    side), written directly: building and serialising an element tree cost a listing page of
    a thousand keys several milliseconds.
    """
    out = ['<?xml version="1.0" encoding="UTF-8"?>\n']
    _write(node, out, f' xmlns="{_escape_attribute(namespace)}"' if namespace else "")
    return "".join(out).encode("utf-8", "xmlcharrefreplace")


def error_document(
    code: str, message: str, resource: str, request_id: str, extra: Iterable[Tuple[str, str]]
) -> bytes:
    """
    The body of an error response, as in the S3 API Reference's "Error responses".
    """
    children: List[Optional[Node]] = [("Code", code), ("Message", message)]
    children.extend((name, value) for name, value in extra)
    children.append(("Resource", resource))
    children.append(("RequestId", request_id))
    return render(("Error", children), namespace=None)


class _DoctypeRefused(Exception):
    pass


class _TreeWithoutDoctype(ElementTree.TreeBuilder):
    """
    A tree builder that refuses any document type declaration, wherever expat meets it (a
    UTF-16 document hides the bytes ``<!DOCTYPE`` from a plain search).
    """

    def doctype(self, name: str, pubid: Optional[str], system: Optional[str]) -> None:
        raise _DoctypeRefused()


def parse(body: bytes, root_tag: str) -> ElementTree.Element:
    """
    Parse a request document whose root must be C{root_tag} (namespace optional).

    :raise S3Error: MalformedXML for anything that is not such a document.
    """
    parser = ElementTree.XMLParser(target=_TreeWithoutDoctype())
    try:
        parser.feed(body)
        root = parser.close()
    except _DoctypeRefused:
        raise S3Error("MalformedXML", "Document type declarations are not accepted.")
    except ElementTree.ParseError:
        raise S3Error(
            "MalformedXML",
            "The XML you provided was not well-formed or did not validate against our "
            "published schema.",
        )
    if local_name(root.tag) != root_tag:
        raise S3Error("MalformedXML", f"Expected a {root_tag} document.")
    return root


def local_name(tag: str) -> str:
    """
    A tag without its ``{namespace}``.
    """
    return tag.rsplit("}", 1)[-1]


def children(element: ElementTree.Element, name: str) -> List[ElementTree.Element]:
    """
    The direct children named C{name}, whatever their namespace.
    """
    return [child for child in element if local_name(child.tag) == name]


def child_text(element: ElementTree.Element, name: str) -> Optional[str]:
    """
    The text of the first direct child named C{name}, or C{None}.
    """
    for child in children(element, name):
        return child.text or ""
    return None
