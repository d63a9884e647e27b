"""The reference page: every operation and schema has its section and a link to it, everything taken from the
document is escaped, and the HTML is well formed (every tag closed in order, ids unique, links resolve)."""

from __future__ import annotations

import json
from html import escape
from html.parser import HTMLParser
from typing import Any

import pytest

from maestro import openapi, reference

VOID = {"meta", "br", "hr", "img", "input", "link"}
EVIL = "<script>alert('x')</script>"


class Outline(HTMLParser):
    """Reads a page strictly: end tags must close the innermost open element; collects ids, links, tables."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.ids: list[str] = []
        self.links: list[str] = []
        self.tables = 0
        self.captions = 0
        self.scripts = 0
        self.faults: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if values.get("id"):
            self.ids.append(str(values["id"]))
        if str(values.get("href", "")).startswith("#"):
            self.links.append(str(values["href"])[1:])
        self.tables += tag == "table"
        self.captions += tag == "caption"
        self.scripts += tag == "script"
        if tag not in VOID:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open[-1] != tag:
            self.faults.append(f"</{tag}> closes {self.open[-1:]} at {self.getpos()}")
        else:
            self.open.pop()


def outline(html: str) -> Outline:
    parser = Outline()
    parser.feed(html)
    parser.close()
    assert parser.faults == []
    assert parser.open == []
    assert len(parser.ids) == len(set(parser.ids)), "duplicate ids"
    return parser


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return openapi.document()


@pytest.fixture(scope="module")
def page(document: dict[str, Any]) -> str:
    return reference.page(document)


def test_every_operation_has_a_section_and_a_link_to_it(document: dict[str, Any], page: str) -> None:
    parsed = outline(page)
    operations = [(path, op) for path, item in document["paths"].items() for op in item.values()]
    assert len(operations) > 20
    for path, operation in operations:
        target = f"op-{operation['operationId']}"
        assert target in parsed.ids and target in parsed.links, target
        assert f"<code>{escape(path)}</code>" in page
    for tag in document["tags"]:
        assert f"tag-{tag['name']}" in parsed.ids
    assert set(parsed.links) <= set(parsed.ids), "a link to no section"
    assert parsed.tables == parsed.captions > len(operations)  # responses and parameters, each captioned
    assert parsed.scripts == 0
    assert page.startswith("<!doctype html>") and '<html lang="en">' in page


def test_schemas_are_shown_as_escaped_json_and_linked(document: dict[str, Any], page: str) -> None:
    parsed = outline(page)
    schemas = document["components"]["schemas"]
    for name, schema in schemas.items():
        assert f"schema-{name}" in parsed.ids
        assert escape(json.dumps(schema, indent=2, ensure_ascii=False)) in page, name
    assert "schema-TaskRequest" in parsed.links  # the body of submitTask links to its schema
    # msgspec's patterns hold characters that must be escaped in HTML.
    assert "(?!\\n)$" in page and "&quot;pattern&quot;" in page


def test_the_page_says_how_to_authenticate_and_generate_a_client(document: dict[str, Any]) -> None:
    page = reference.page(document, base_url="http://maestro.example:9000")
    assert 'curl -H "Authorization: Bearer $TOKEN" http://maestro.example:9000/v1/tasks' in page.replace(
        "&quot;", '"'
    )
    assert "openapi-python-client generate --url http://maestro.example:9000/openapi.json" in page
    assert "&quot;tenant&quot;: &quot;acme&quot;" in page  # submitTask's example, as JSON


def test_everything_from_the_document_is_escaped() -> None:
    fake = {
        "openapi": "3.1.0",
        "info": {"title": f"T {EVIL}", "version": "1", "description": f"**Bold** `code` {EVIL}"},
        "tags": [{"name": "a<b", "description": EVIL}],
        "paths": {
            "/x/<y>": {
                "post": {
                    "operationId": 'op"<id>',
                    "summary": EVIL,
                    "description": EVIL,
                    "tags": ["a<b"],
                    "security": [{"bearer": ["read"]}],
                    "x-maestro-scope": EVIL,
                    "parameters": [
                        {"name": EVIL, "in": "query", "description": EVIL, "schema": {"pattern": EVIL}}
                    ],
                    "requestBody": {
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/S<1>"},
                                "examples": {EVIL: {"value": {"k": EVIL}}},
                            }
                        }
                    },
                    "responses": {"200": {"description": EVIL, "headers": {EVIL: {}}}},
                }
            }
        },
        "components": {"schemas": {"S<1>": {"description": EVIL, "enum": [EVIL]}}},
    }
    page = reference.page(fake, base_url=f"http://h/{EVIL}")
    parsed = outline(page)
    assert parsed.scripts == 0 and "<script" not in page
    assert "&lt;script&gt;" in page
    assert "<strong>Bold</strong> <code>code</code>" in page  # the markup descriptions keep
    assert set(parsed.links) <= set(parsed.ids)
    assert "schema-S-1-" in parsed.ids and "op-op--id-" in parsed.ids
