"""
The XML writer :mod:`gateway.s3.xml` had before it wrote documents directly: an ElementTree per
document. Tests hold the direct writer's output against this one byte for byte, so that clients
see exactly the documents they saw before.
"""

from __future__ import annotations

from typing import Optional, Union
from xml.etree import ElementTree

from gateway.s3.xml import NAMESPACE, Node, _NOT_XML

Scalar = Union[str, int, bool]


def _text(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return _NOT_XML.sub("\ufffd", str(value))


def _build(parent: Optional[ElementTree.Element], node: Node) -> ElementTree.Element:
    tag, content = node
    element = (
        ElementTree.Element(tag) if parent is None else ElementTree.SubElement(parent, tag)
    )
    if isinstance(content, (list, tuple)):
        for child in content:
            if child is not None:
                _build(element, child)  # type: ignore[arg-type]
    elif content is not None:
        element.text = _text(content)
    return element


def render(node: Node, namespace: Optional[str] = NAMESPACE) -> bytes:
    root = _build(None, node)
    if namespace:
        root.set("xmlns", namespace)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(
        root, encoding="utf-8", xml_declaration=False
    ).replace(b"\r", b"&#13;")
