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

from gateway.s3.errors import S3Error

NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"

#: A document node: ``(tag, text-or-children)``; ``None`` children are skipped.
Node = Tuple[str, Union[str, int, bool, None, Sequence[Optional["Node"]]]]


def iso8601(timestamp: float) -> str:
    """
    S3's timestamp form in XML bodies: ``2006-02-03T16:45:09.000Z``.
    """
    seconds = int(timestamp)
    millis = int((timestamp - seconds) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + ".%03dZ" % (millis,)


#: Characters XML 1.0 cannot carry (section 2.2), even as references.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _text(value: Union[str, int, bool]) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    # A key may hold control characters; clients that need them exactly list with
    # encoding-type=url, as the S3 API Reference advises.
    return _NOT_XML.sub("\ufffd", str(value))


def _build(parent: Optional[ElementTree.Element], node: Node) -> ElementTree.Element:
    tag, content = node
    element = (
        ElementTree.Element(tag) if parent is None else ElementTree.SubElement(parent, tag)
    )
    if isinstance(content, (list, tuple)):
        for child in content:
            if child is not None:
                _build(element, child)
    elif content is not None:
        element.text = _text(content)
    return element


def render(node: Node, namespace: Optional[str] = NAMESPACE) -> bytes:
    """
    Serialise a document with the XML declaration, in the S3 namespace unless told otherwise.
    """
    root = _build(None, node)
    if namespace:
        root.set("xmlns", namespace)
    # A carriage return must travel as a reference, or parsers read it back as a line feed.
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(
        root, encoding="utf-8", xml_declaration=False
    ).replace(b"\r", b"&#13;")


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
