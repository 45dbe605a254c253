"""SVG primitives: any text (module names, aliases, install commands, undecodable bytes kept
as surrogates) comes out as well-formed XML whose text is the input, with only characters XML
cannot hold replaced by U+FFFD."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from hypothesis import given, settings
from hypothesis import strategies as st

from lkm.draw import svg

TEXT = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF), max_size=40)


def _xml_ok(ch: str) -> bool:
    c = ord(ch)
    return c in (9, 10, 13) or 0x20 <= c <= 0xD7FF or 0xE000 <= c <= 0xFFFD or c >= 0x10000


@settings(deadline=None)
@given(TEXT, TEXT)
def test_text_and_attributes_round_trip(content: str, value: str) -> None:
    doc = svg.document(10, 10, svg.group(svg.text(1, 2, content), content, data_name=value), value)
    root = ET.fromstring(doc.encode("utf-8", "surrogatepass"))
    g = root.find("{http://www.w3.org/2000/svg}g")
    assert g is not None
    want = "".join(c if _xml_ok(c) else "\ufffd" for c in content)
    want_attr = "".join(c if _xml_ok(c) else "\ufffd" for c in value)
    assert g.attrib["data-name"].replace("\n", " ").replace("\t", " ").replace("\r", " ") == (
        want_attr.replace("\n", " ").replace("\t", " ").replace("\r", " ")
    )
    t = g.find("{http://www.w3.org/2000/svg}text")
    assert t is not None and (t.text or "").replace("\r", "\n") == want.replace("\r\n", "\n").replace(
        "\r", "\n"
    )


def test_human_sizes() -> None:
    assert [svg.human(n) for n in (0, 1023, 1024, 1536, 5 << 20, 3 << 30)] == [
        "0 B", "1023 B", "1.0 KiB", "1.5 KiB", "5.0 MiB", "3.0 GiB"]  # fmt: skip
