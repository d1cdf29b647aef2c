"""
Tests of :mod:`gateway.s3.xml`: response documents come out as S3 writes them (namespace,
escaping, booleans, timestamps), and request documents are parsed strictly, with document type
declarations (and so entity bombs) refused.
"""

from __future__ import annotations

import calendar
import random
import re
import time
from typing import List, Optional
from xml.etree import ElementTree

import pytest

from gateway.s3 import xml
from gateway.s3.errors import S3Error
from tests.s3 import xmlreference

DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


def reparse(document: bytes) -> ElementTree.Element:
    """
    Parse a rendered document with a plain parser, as a client would.
    """
    assert document.startswith(DECLARATION)
    return ElementTree.fromstring(document)


# render


def test_render_declaration_and_namespace() -> None:
    document = xml.render(("ListAllMyBucketsResult", [("Owner", [("ID", "u")])]))
    assert document.startswith(DECLARATION)
    root = reparse(document)
    assert root.tag == NS + "ListAllMyBucketsResult"
    owner = root.find(NS + "Owner")
    assert owner is not None
    assert owner.findtext(NS + "ID") == "u"
    # the namespace is declared once, on the root, as a default namespace
    assert document.count(b"xmlns=") == 1
    assert b'<ListAllMyBucketsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">' in document


def test_render_without_namespace() -> None:
    document = xml.render(("Error", [("Code", "x")]), namespace=None)
    assert b"xmlns" not in document
    assert reparse(document).tag == "Error"


def test_render_other_namespace() -> None:
    root = reparse(xml.render(("Tagging", []), namespace="urn:example"))
    assert root.tag == "{urn:example}Tagging"


def test_render_keeps_order_and_repeats() -> None:
    document = xml.render(
        ("R", [("Contents", [("Key", "b")]), ("Contents", [("Key", "a")]), ("Name", "n")])
    )
    root = reparse(document)
    assert [child.tag for child in root] == [NS + "Contents", NS + "Contents", NS + "Name"]
    assert [c.findtext(NS + "Key") for c in root.findall(NS + "Contents")] == ["b", "a"]


@pytest.mark.parametrize(
    "text",
    [
        "a<b",
        "a&b",
        "a>b",
        "<&>",
        "&amp;",
        "]]>",
        "\"quoted\" and 'single'",
        "caf\u00e9",
        "\u2603 snow/\u96ea/\U0001f600",
        "spaces  and\ttabs\nand newlines",
        "  leading and trailing  ",
        "a%2Fb+c",
    ],
)
def test_render_text_round_trips(text: str) -> None:
    document = xml.render(("Key", text))
    assert reparse(document).text == text


def test_render_escapes_markup() -> None:
    document = xml.render(("Key", "<b>&</b>"), namespace=None)
    assert document == DECLARATION + b"<Key>&lt;b&gt;&amp;&lt;/b&gt;</Key>"


def test_render_is_utf8() -> None:
    document = xml.render(("Key", "\u00e9\u2603"), namespace=None)
    assert document == DECLARATION + "<Key>\u00e9\u2603</Key>".encode("utf-8")


@pytest.mark.parametrize(
    "char", ["\x00", "\x01", "\x08", "\x0b", "\x0c", "\x1f", "\ud800", "\uffff"]
)
def test_render_replaces_characters_xml_cannot_carry(char: str) -> None:
    """
    XML 1.0 cannot carry these at all: they become U+FFFD, and the document stays well-formed.
    """
    document = xml.render(("Key", "a" + char + "b"))
    assert reparse(document).text == "a\ufffdb"


def test_render_carriage_return_round_trips() -> None:
    document = xml.render(("Key", "line\r\nnext\rend"))
    assert reparse(document).text == "line\r\nnext\rend"


def test_render_skips_none_children() -> None:
    document = xml.render(("R", [None, ("A", "1"), None, ("B", "2"), None]), namespace=None)
    assert document == DECLARATION + b"<R><A>1</A><B>2</B></R>"


def test_render_none_text_is_empty_element() -> None:
    document = xml.render(("R", [("Prefix", None), ("Marker", "")]), namespace=None)
    root = reparse(document)
    assert [child.tag for child in root] == ["Prefix", "Marker"]
    assert all(not child.text for child in root)


def test_render_empty_children() -> None:
    document = xml.render(("R", [("CommonPrefixes", [])]), namespace=None)
    root = reparse(document)
    assert [child.tag for child in root] == ["CommonPrefixes"]
    assert len(root[0]) == 0


def test_render_tuple_children() -> None:
    document = xml.render(("R", (("A", "1"), ("B", "2"))), namespace=None)
    assert document == DECLARATION + b"<R><A>1</A><B>2</B></R>"


@pytest.mark.parametrize(
    "value, text",
    [(True, "true"), (False, "false"), (0, "0"), (1000, "1000"), (5368709120, "5368709120")],
)
def test_render_scalars(value: object, text: str) -> None:
    """
    Booleans as S3's ``true``/``false`` (not Python's ``True``), integers in decimal.
    """
    document = xml.render(("R", [("V", value)]), namespace=None)  # type: ignore[list-item]
    assert reparse(document).findtext("V") == text


def test_render_deep_nesting() -> None:
    node = ("Leaf", "x")
    for depth in range(50):
        node = ("N%d" % (depth,), [node])  # type: ignore[assignment]
    root = reparse(xml.render(node, namespace=None))
    assert root.findtext("/".join("N%d" % (d,) for d in range(48, -1, -1)) + "/Leaf") == "x"


# iso8601


@pytest.mark.parametrize(
    "timestamp, text",
    [
        (0, "1970-01-01T00:00:00.000Z"),
        (0.5, "1970-01-01T00:00:00.500Z"),
        (1139003109, "2006-02-03T21:45:09.000Z"),
        (1139003109.25, "2006-02-03T21:45:09.250Z"),
        (1700000000.999999, "2023-11-14T22:13:20.999Z"),
        (951782400, "2000-02-29T00:00:00.000Z"),
        (4102444799.125, "2099-12-31T23:59:59.125Z"),
    ],
)
def test_iso8601(timestamp: float, text: str) -> None:
    assert xml.iso8601(timestamp) == text


def test_iso8601_never_rounds_into_next_second() -> None:
    """
    Milliseconds are cut, not rounded: the second stays the one that HTTP's Last-Modified names.
    """
    assert xml.iso8601(1139003109.9999) == "2006-02-03T21:45:09.999Z"


def test_iso8601_shape_and_round_trip() -> None:
    now = time.time()
    text = xml.iso8601(now)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", text)
    parsed = calendar.timegm(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S"))
    assert parsed == int(now)
    assert int(text[20:23]) == int((now - int(now)) * 1000)


# error_document


def test_error_document_shape() -> None:
    document = xml.error_document(
        "NoSuchKey",
        "The specified key does not exist.",
        "/bucket/a<b&c",
        "4442587FB7D0A2F9",
        [("Key", "a<b&c"), ("BucketName", "bucket")],
    )
    assert document.startswith(DECLARATION)
    root = reparse(document)
    assert root.tag == "Error"  # S3's error documents carry no namespace
    assert [(child.tag, child.text) for child in root] == [
        ("Code", "NoSuchKey"),
        ("Message", "The specified key does not exist."),
        ("Key", "a<b&c"),
        ("BucketName", "bucket"),
        ("Resource", "/bucket/a<b&c"),
        ("RequestId", "4442587FB7D0A2F9"),
    ]


def test_error_document_without_extra() -> None:
    root = reparse(xml.error_document("AccessDenied", "Access Denied", "/b", "r1", []))
    assert [child.tag for child in root] == ["Code", "Message", "Resource", "RequestId"]


def test_error_document_parses_with_botocore() -> None:
    """
    botocore, the parser behind boto3 and the aws cli, reads code and message back.
    """
    parsers = pytest.importorskip("botocore.parsers")
    document = xml.error_document("SlowDown", "Reduce your request rate.", "/b/k", "rid", [])
    parser = parsers.RestXMLParser()
    parsed = parser._parse_error_from_body(
        {"body": document, "headers": {}, "status_code": 503}
    )
    assert parsed["Error"]["Code"] == "SlowDown"
    assert parsed["Error"]["Message"] == "Reduce your request rate."


# parse


COMPLETE = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
    b"<Part><PartNumber>1</PartNumber><ETag>\"a\"</ETag></Part>"
    b"<Part><PartNumber>2</PartNumber><ETag>&quot;b&quot;</ETag></Part>"
    b"</CompleteMultipartUpload>"
)


def test_parse_namespaced() -> None:
    root = xml.parse(COMPLETE, "CompleteMultipartUpload")
    parts = xml.children(root, "Part")
    assert [xml.child_text(p, "PartNumber") for p in parts] == ["1", "2"]
    assert [xml.child_text(p, "ETag") for p in parts] == ['"a"', '"b"']


def test_parse_without_namespace_or_declaration() -> None:
    body = b"<Delete><Quiet>true</Quiet><Object><Key>a b</Key></Object></Delete>"
    root = xml.parse(body, "Delete")
    assert xml.child_text(root, "Quiet") == "true"
    (obj,) = xml.children(root, "Object")
    assert xml.child_text(obj, "Key") == "a b"


def test_parse_other_namespace_prefix() -> None:
    body = b'<s3:Delete xmlns:s3="urn:other"><s3:Object><s3:Key>k</s3:Key></s3:Object></s3:Delete>'
    root = xml.parse(body, "Delete")
    (obj,) = xml.children(root, "Object")
    assert xml.child_text(obj, "Key") == "k"


def test_parse_unicode_and_references() -> None:
    body = "<Delete><Object><Key>caf\u00e9 &#x2603; &lt;&amp;&gt;</Key></Object></Delete>"
    root = xml.parse(body.encode("utf-8"), "Delete")
    (obj,) = xml.children(root, "Object")
    assert xml.child_text(obj, "Key") == "caf\u00e9 \u2603 <&>"


def test_parse_bom_comment_and_cdata() -> None:
    body = b"\xef\xbb\xbf<!-- hi --><Delete><Object><Key><![CDATA[a<b]]></Key></Object></Delete>"
    root = xml.parse(body, "Delete")
    assert xml.child_text(xml.children(root, "Object")[0], "Key") == "a<b"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"   ",
        b"not xml",
        b"<Delete>",
        b"<Delete></Deleted>",
        b"<Delete/><Delete/>",
        b"<Delete/>trailing",
        b"<Delete><Key>&undefined;</Key></Delete>",
        b"<Delete><Key>a & b</Key></Delete>",
        b"<Delete attr=unquoted/>",
        b"<Delete>\xff\xfe</Delete>",
        b"<Delete>\x00</Delete>",
    ],
)
def test_parse_malformed(body: bytes) -> None:
    with pytest.raises(S3Error) as raised:
        xml.parse(body, "Delete")
    assert raised.value.code == "MalformedXML"
    assert raised.value.status == 400


@pytest.mark.parametrize(
    "body",
    [
        b"<Deletes/>",
        b"<Object><Key>k</Key></Object>",
        b"<delete/>",
        b'<x:Other xmlns:x="urn:x"/>',
        b"<Tagging><Delete/></Tagging>",
    ],
)
def test_parse_wrong_root(body: bytes) -> None:
    with pytest.raises(S3Error) as raised:
        xml.parse(body, "Delete")
    assert raised.value.code == "MalformedXML"


BILLION_LAUGHS = (
    b'<?xml version="1.0"?>\n<!DOCTYPE Delete [\n<!ENTITY lol "lol">\n'
    + b"".join(
        b'<!ENTITY lol%d "%s">\n' % (i, (b"&lol%s;" % (str(i - 1).encode() if i > 1 else b"")) * 10)
        for i in range(1, 10)
    )
    + b"]>\n<Delete><Object><Key>&lol9;</Key></Object></Delete>"
)


@pytest.mark.parametrize(
    "body",
    [
        BILLION_LAUGHS,
        b'<!DOCTYPE Delete [<!ENTITY x "y">]><Delete><Key>&x;</Key></Delete>',
        b'<!DOCTYPE Delete SYSTEM "file:///etc/passwd"><Delete/>',
        b'<!DOCTYPE Delete [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b"<Delete><Key>&x;</Key></Delete>",
        b'<!DOCTYPE Delete [<!ENTITY % p SYSTEM "http://example.invalid/x.dtd"> %p;]><Delete/>',
        b"<!DOCTYPE Delete><Delete/>",
    ],
)
def test_parse_refuses_document_types(body: bytes) -> None:
    """
    Entity bombs and external entities never reach the parser: any DOCTYPE is MalformedXML.
    """
    started = time.monotonic()
    with pytest.raises(S3Error) as raised:
        xml.parse(body, "Delete")
    assert raised.value.code == "MalformedXML"
    assert time.monotonic() - started < 1


def test_parse_refuses_document_types_in_utf16() -> None:
    body = (
        '<?xml version="1.0" encoding="UTF-16"?>'
        '<!DOCTYPE Delete [<!ENTITY x "expanded">]>'
        "<Delete><Object><Key>&x;</Key></Object></Delete>"
    ).encode("utf-16")
    with pytest.raises(S3Error) as raised:
        xml.parse(body, "Delete")
    assert raised.value.code == "MalformedXML"


def test_parse_other_encodings_when_declared() -> None:
    """
    A document that declares its encoding is read in it (expat's rule), without a DOCTYPE.
    """
    body = '<?xml version="1.0" encoding="ISO-8859-1"?><Delete><Key>\u00e9</Key></Delete>'
    root = xml.parse(body.encode("latin-1"), "Delete")
    assert xml.child_text(root, "Key") == "\u00e9"


# children, child_text, local_name


def test_children_by_local_name_only_direct() -> None:
    root = ElementTree.fromstring(
        b'<R xmlns="urn:a"><Part><Part>inner</Part></Part><b:Part xmlns:b="urn:b">x</b:Part>'
        b"<Other/></R>"
    )
    found = xml.children(root, "Part")
    assert len(found) == 2
    assert found[1].text == "x"
    assert xml.children(root, "Missing") == []
    assert xml.children(root, "part") == []


def test_child_text() -> None:
    root = ElementTree.fromstring(
        b"<R><Empty/><Blank></Blank><Key>first</Key><Key>second</Key>"
        b"<Nested><Key>n</Key></Nested></R>"
    )
    assert xml.child_text(root, "Key") == "first"
    assert xml.child_text(root, "Empty") == ""
    assert xml.child_text(root, "Blank") == ""
    assert xml.child_text(root, "Missing") is None
    assert xml.child_text(xml.children(root, "Nested")[0], "Key") == "n"


def test_child_text_keeps_whitespace() -> None:
    root = ElementTree.fromstring(b"<R><Key>  spaced  </Key></R>")
    assert xml.child_text(root, "Key") == "  spaced  "


@pytest.mark.parametrize(
    "tag, name",
    [("{urn:a}Part", "Part"), ("Part", "Part"), ("{http://x/y}Key", "Key"), ("{}E", "E")],
)
def test_local_name(tag: str, name: str) -> None:
    assert xml.local_name(tag) == name


# The direct writer against ElementTree's

#: Texts that exercise every escaping rule, alone and together.
TRICKY_TEXTS = [
    "",
    "plain",
    "a&b<c>d",
    "&amp; &lt; ]]>",
    "cr\rlf\ncrlf\r\n",
    "tab\there",
    "ctl\x00\x01\x08\x0b\x0c\x0e\x1f end",
    "surrogate \ud800 \udfff",
    "nonchars \ufffe \uffff",
    "caf\u00e9 \u2603 \U0001f600",
    "quotes \" and '",
    "a%2Fb+c",
]


def random_node(rng: random.Random, depth: int = 0) -> xml.Node:
    tag = rng.choice(["A", "Key", "Contents", "Prefix"])
    kind = rng.randrange(6 if depth < 4 else 3)
    if kind == 0:
        return (tag, rng.choice(TRICKY_TEXTS))
    if kind == 1:
        return (tag, rng.choice([None, True, False, 0, 7, 5368709120]))
    if kind == 2:
        return (tag, [])
    children: List[Optional[xml.Node]] = []
    for _ in range(rng.randrange(4)):
        children.append(None if rng.random() < 0.2 else random_node(rng, depth + 1))
    return (tag, children if kind != 3 else tuple(children))


@pytest.mark.parametrize("seed", range(200))
def test_render_is_elementtree_byte_for_byte(seed: int) -> None:
    """
    Documents come out exactly as the ElementTree writer made them (L{xmlreference}): empty
    elements as ``<Tag />``, the same escapes, the same replacement characters.
    """
    rng = random.Random(seed)
    node = random_node(rng)
    for namespace in (xml.NAMESPACE, None, "urn:x&y"):
        assert xml.render(node, namespace) == xmlreference.render(node, namespace)


@pytest.mark.parametrize("text", [t for t in TRICKY_TEXTS if t])
def test_escape_is_what_render_writes(text: str) -> None:
    """
    A template filled in with L{xml.escape} writes what a node would (for text that is not
    empty: an empty element is written ``<K />``).
    """
    written = xml.render(("R", [xml.Markup("<K>" + xml.escape(text) + "</K>")]))
    assert written == xmlreference.render(("R", [("K", text)]))


def test_escape_leaves_plain_text_alone() -> None:
    text = "photos/2006/feb.jpg"
    assert xml.escape(text) is text


def test_markup_goes_in_as_it_is() -> None:
    fragment = xml.markup(("Owner", [("ID", "a&b"), ("DisplayName", "")]))
    assert fragment == xml.Markup("<Owner><ID>a&amp;b</ID><DisplayName /></Owner>")
    document = xml.render(("R", [("A", "1"), fragment, None, xml.Markup("")]), None)
    assert document == DECLARATION + b"<R><A>1</A><Owner><ID>a&amp;b</ID><DisplayName /></Owner></R>"
