"""The API reference as one HTML page, rendered on the server from the OpenAPI document.

No JavaScript, no CDN, no asset to ship: the page is plain HTML with its CSS inline, so it works offline and
behind any proxy. Every piece of text taken from the document is escaped; the only markup the descriptions
keep is `code` and **strong**, added after escaping.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from html import escape
from typing import Any

LOCAL_URL = "http://127.0.0.1:8080"
"""Where `maestro up` serves the orchestrator: the base of the page's examples unless told otherwise."""

_SCHEMA_REF = "#/components/schemas/"
_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")

_CSS = """
:root { color-scheme: light; --ink: #1b1f24; --muted: #4a5562; --line: #d0d7de; --tint: #f6f8fa;
  --link: #0a55b8; }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.55 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink);
  background: #fff; }
.skip { position: absolute; left: -999px; }
.skip:focus { left: 1rem; top: 1rem; background: #fff; padding: .5rem; outline: 3px solid var(--link); }
header, main, nav { max-width: 68rem; margin: 0 auto; padding: 0 1.5rem; }
header { padding-top: 1.5rem; border-bottom: 1px solid var(--line); }
h1 { margin: 0 0 .25rem; font-size: 1.9rem; }
h2 { margin-top: 2.5rem; padding-bottom: .3rem; border-bottom: 2px solid var(--line); }
h3 { margin: 0 0 .5rem; font-size: 1.15rem; overflow-wrap: anywhere; }
a { color: var(--link); }
a:focus-visible { outline: 3px solid var(--link); outline-offset: 2px; }
code, pre { font: .9em/1.45 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
:not(pre) > code { background: var(--tint); padding: .05em .3em; border-radius: 4px; }
pre { background: var(--tint); border: 1px solid var(--line); border-radius: 6px; padding: .75rem 1rem;
  overflow-x: auto; }
.version, .muted { color: var(--muted); }
nav ul { padding-left: 1.2rem; }
nav li { margin: .15rem 0; }
.operation { border: 1px solid var(--line); border-radius: 8px; padding: 1rem 1.25rem; margin: 1.25rem 0; }
.method { display: inline-block; min-width: 4.2rem; text-align: center; border-radius: 4px; padding: 0 .4rem;
  font-weight: 700; font-size: .85rem; letter-spacing: .03em; color: #fff; margin-right: .4rem; }
.get { background: #0a5c36; } .post { background: #0a4aa0; } .put { background: #7a4100; }
.delete { background: #a1161f; } .patch, .head, .options, .trace { background: #4a5562; }
.badge { display: inline-block; border: 1px solid var(--muted); border-radius: 999px; padding: 0 .55rem;
  font-size: .85rem; margin-right: .3rem; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0 1rem; font-size: .95rem; }
caption { text-align: left; font-weight: 700; padding: .25rem 0; }
th, td { border: 1px solid var(--line); padding: .35rem .55rem; text-align: left; vertical-align: top; }
th { background: var(--tint); }
"""


# -- small pieces -----------------------------------------------------------------------------------------
def anchor(kind: str, name: str) -> str:
    """The id of a section of the page: `op-submitTask`, `schema-TaskRequest`, `tag-tasks`."""
    return f"{kind}-{re.sub(r'[^A-Za-z0-9_.-]', '-', name)}"


def _prose(text: str) -> str:
    """Paragraphs of escaped text, keeping `code` and **strong** (the only markup the document uses)."""
    out = []
    for paragraph in re.split(r"\n\s*\n", text.strip()):
        if not paragraph:
            continue
        html = escape(paragraph.replace("\n", " "))
        html = re.sub(r"`([^`]+)`", r"<code>\1</code>", html)
        html = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", html)
        out.append(f"<p>{html}</p>")
    return "\n".join(out)


def _json(value: Any) -> str:
    return f"<pre><code>{escape(json.dumps(value, indent=2, ensure_ascii=False))}</code></pre>"


def _schema_link(ref: str) -> str:
    name = ref.removeprefix(_SCHEMA_REF)
    return f'<a href="#{escape(anchor("schema", name))}"><code>{escape(name)}</code></a>'


def type_label(schema: Mapping[str, Any]) -> str:
    """A short HTML label of a schema: a link to a named one, `array of X`, `A | B`, or its type."""
    if isinstance(schema.get("$ref"), str):
        return _schema_link(schema["$ref"])
    if "enum" in schema:
        return " | ".join(f"<code>{escape(json.dumps(v))}</code>" for v in schema["enum"])
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return " | ".join(type_label(s) for s in schema[key])
    kind = schema.get("type")
    if kind == "array":
        return f"array of {type_label(schema.get('items', {}))}"
    if isinstance(kind, list):
        return " | ".join(escape(str(k)) for k in kind)
    label = escape(str(kind)) if kind else "any"
    if schema.get("format"):
        label += f" ({escape(str(schema['format']))})"
    return label


def _constraints(schema: Mapping[str, Any]) -> str:
    rules = []
    for key, name in (("minimum", "min"), ("maximum", "max"), ("minLength", "min length")):
        if key in schema:
            rules.append(f"{name} {escape(str(schema[key]))}")
    if "maxLength" in schema:
        rules.append(f"max length {escape(str(schema['maxLength']))}")
    if "pattern" in schema:
        rules.append(f"pattern <code>{escape(str(schema['pattern']))}</code>")
    return f'<br><span class="muted">{"; ".join(rules)}</span>' if rules else ""


def _table(caption: str, headings: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    """A table whose cells are HTML already (escaped by the caller)."""
    head = "".join(f'<th scope="col">{escape(h)}</th>' for h in headings)
    body = "\n".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return (
        f"<table>\n<caption>{escape(caption)}</caption>\n<thead><tr>{head}</tr></thead>\n"
        f"<tbody>\n{body}\n</tbody>\n</table>"
    )


# -- an operation -----------------------------------------------------------------------------------------
def _access(operation: Mapping[str, Any]) -> str:
    security = operation.get("security")
    if security == []:
        return '<span class="badge">open: no token</span>'
    badges = []
    scope = operation.get("x-maestro-scope")
    if scope:
        badges.append(f'<span class="badge">scope <code>{escape(str(scope))}</code></span>')
    elif security:
        badges.append('<span class="badge">token needed</span>')
    if operation.get("x-maestro-operator"):
        badges.append('<span class="badge">operator only</span>')
    return "".join(badges)


def _parameters(operation: Mapping[str, Any]) -> str:
    params = operation.get("parameters") or []
    if not params:
        return ""
    rows = []
    for param in params:
        schema = param.get("schema", {})
        many = " (repeatable)" if schema.get("type") == "array" and param.get("explode") else ""
        constrained = schema.get("items", schema) if many else schema
        rows.append(
            (
                f"<code>{escape(str(param.get('name', '')))}</code>",
                escape(str(param.get("in", ""))),
                type_label(schema) + escape(many) + _constraints(constrained),
                "yes" if param.get("required") else "no",
                _prose(str(param.get("description", ""))),
            )
        )
    return _table("Parameters", ("Name", "In", "Type", "Required", "Description"), rows)


def _request_body(operation: Mapping[str, Any]) -> str:
    body = operation.get("requestBody")
    if not body:
        return ""
    parts = ["<h4>Request body</h4>"]
    needed = "required" if body.get("required") else "optional"
    for media, content in sorted(body.get("content", {}).items()):
        label = type_label(content.get("schema", {}))
        parts.append(f"<p><code>{escape(media)}</code>, {needed}: {label}</p>")
        for name, example in sorted(content.get("examples", {}).items()):
            parts.append(f"<p>Example <code>{escape(name)}</code>:</p>{_json(example.get('value'))}")
    return "\n".join(parts)


def _responses(operation: Mapping[str, Any]) -> str:
    rows = []
    for status, response in operation.get("responses", {}).items():
        contents = response.get("content") or {"": {}}
        headers = ", ".join(f"<code>{escape(h)}</code>" for h in sorted(response.get("headers", {})))
        said = _prose(str(response.get("description", "")))
        if headers:
            said += f"<p>Headers: {headers}</p>"
        for media, content in sorted(contents.items()):
            body = type_label(content["schema"]) if "schema" in content else "none"
            rows.append(
                (f"<strong>{escape(str(status))}</strong>", f"<code>{escape(media)}</code>", body, said)
            )
    return _table("Responses", ("Status", "Media type", "Body", "Description"), rows)


def _operation(path: str, method: str, operation: Mapping[str, Any]) -> str:
    name = str(operation.get("operationId") or f"{method} {path}")
    section, heading = escape(anchor("op", name)), escape(anchor("h", name))
    verb = f'<span class="method {escape(method)}">{escape(method.upper())}</span>'
    return f"""<section class="operation" id="{section}" aria-labelledby="{heading}">
<h3 id="{heading}">{verb} <code>{escape(path)}</code></h3>
<p><strong>{escape(str(operation.get("summary", "")))}</strong></p>
<p>{_access(operation)}<span class="muted">operationId <code>{escape(name)}</code></span></p>
{_prose(str(operation.get("description", "")))}
{_parameters(operation)}
{_request_body(operation)}
{_responses(operation)}
</section>"""


# -- the page ---------------------------------------------------------------------------------------------
def _operations_by_tag(document: Mapping[str, Any]) -> dict[str, list[tuple[str, str, Mapping[str, Any]]]]:
    by_tag: dict[str, list[tuple[str, str, Mapping[str, Any]]]] = {
        str(tag["name"]): [] for tag in document.get("tags", [])
    }
    for path, item in document.get("paths", {}).items():
        for method in _METHODS:
            if method in item:
                operation = item[method]
                for tag in operation.get("tags") or ["other"]:
                    by_tag.setdefault(str(tag), []).append((path, method, operation))
    return {tag: ops for tag, ops in by_tag.items() if ops}


def _start(document: Mapping[str, Any], base_url: str) -> str:
    url = escape(base_url)
    return f"""<section id="start" aria-labelledby="start-h">
<h2 id="start-h">Getting started</h2>
{_prose(str(document.get("info", {}).get("description", "")))}
<h3>Calling the API</h3>
<p>Send the token in the <code>Authorization</code> header (<code>maestro up</code> writes an operator's
token to <code>.maestro/api.token</code>; <code>maestro token create</code> makes others):</p>
<pre><code>TOKEN=$(cat .maestro/api.token)
curl -H "Authorization: Bearer $TOKEN" {url}/v1/tasks
curl -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \\
  -d '{{"tenant": "acme", "role": "tester", "prompt": "run the unit tests"}}' {url}/v1/tasks</code></pre>
<h3>Generating a client</h3>
<p>The machine-readable document is at <a href="/openapi.json"><code>/openapi.json</code></a> (OpenAPI 3.1);
any generator that reads it makes a typed client:</p>
<pre><code>pip install openapi-python-client
openapi-python-client generate --url {url}/openapi.json
npx @openapitools/openapi-generator-cli generate -i {url}/openapi.json -g go -o maestro-go</code></pre>
</section>"""


def _contents(by_tag: Mapping[str, list[tuple[str, str, Mapping[str, Any]]]], schemas: Iterable[str]) -> str:
    items = ['<li><a href="#start">Getting started</a></li>']
    for tag, operations in by_tag.items():
        links = "".join(
            f'<li><a href="#{escape(anchor("op", str(op.get("operationId") or f"{method} {path}")))}">'
            f"<code>{escape(method.upper())} {escape(path)}</code></a> "
            f"{escape(str(op.get('summary', '')))}</li>"
            for path, method, op in operations
        )
        items.append(f'<li><a href="#{escape(anchor("tag", tag))}">{escape(tag)}</a><ul>{links}</ul></li>')
    names = list(schemas)
    if names:
        links = ", ".join(f'<a href="#{escape(anchor("schema", n))}">{escape(n)}</a>' for n in names)
        items.append(f'<li><a href="#schemas">Schemas</a>: {links}</li>')
    return (
        '<nav aria-labelledby="toc-h">\n<h2 id="toc-h">Contents</h2>\n<ul>'
        + "\n".join(items)
        + "</ul>\n</nav>"
    )


def _schema(name: str, schema: Mapping[str, Any]) -> str:
    about = _prose(str(schema.get("description", "")))
    return f"""<section id="{escape(anchor("schema", name))}" aria-labelledby="{escape(anchor("sh", name))}">
<h3 id="{escape(anchor("sh", name))}">{escape(name)}</h3>
{about}
{_json(schema)}
</section>"""


def page(document: Mapping[str, Any], *, base_url: str = LOCAL_URL) -> str:
    """The whole reference page of an OpenAPI 3.1 document (`maestro.openapi.document()`), as HTML; the
    examples call the API at `base_url`."""
    info = document.get("info", {})
    title = escape(str(info.get("title", "API reference")))
    version = escape(str(info.get("version", "")))
    descriptions = {str(t["name"]): str(t.get("description", "")) for t in document.get("tags", [])}
    by_tag = _operations_by_tag(document)
    schemas: Mapping[str, Any] = document.get("components", {}).get("schemas", {})

    sections = []
    for tag, operations in by_tag.items():
        body = "\n".join(_operation(path, method, op) for path, method, op in operations)
        sections.append(
            f'<section id="{escape(anchor("tag", tag))}" aria-labelledby="{escape(anchor("th", tag))}">\n'
            f'<h2 id="{escape(anchor("th", tag))}">{escape(tag)}</h2>\n'
            f"{_prose(descriptions.get(tag, ''))}\n{body}\n</section>"
        )
    if schemas:
        rendered = "\n".join(_schema(name, schemas[name]) for name in sorted(schemas))
        sections.append(
            '<section id="schemas" aria-labelledby="schemas-h">\n<h2 id="schemas-h">Schemas</h2>\n'
            "<p>Each body's JSON Schema (2020-12), as the API decodes and encodes it.</p>\n"
            f"{rendered}\n</section>"
        )
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} {version} reference</title>
<style>{_CSS}</style>
</head>
<body>
<a class="skip" href="#main">Skip to the reference</a>
<header>
<h1>{title} <span class="version">{version}</span></h1>
<p class="muted">OpenAPI {escape(str(document.get("openapi", "")))} reference; the document itself:
<a href="/openapi.json"><code>/openapi.json</code></a></p>
</header>
{_contents(by_tag, sorted(schemas))}
<main id="main">
{_start(document, base_url)}
{"".join(sections)}
</main>
</body>
</html>
"""
