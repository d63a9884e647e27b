"""GET /ui/ and /ui/{file}: the console's page and its files, shipped in the wheel (static/), read once.

The page is a client of the public API like any other: it holds no secret and needs no token to load; what
it shows, it reads with the token the person signs in with. A strict Content-Security-Policy lets the page
run only its own scripts and talk only to this origin, so nothing a task or a model wrote runs as script.
"""

from __future__ import annotations

import hashlib
from importlib import resources

from aiohttp import web

from maestro import operations
from maestro.http import error, route

CONTENT_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def _files() -> dict[str, tuple[bytes, str, str]]:
    """Every file of static/: its bytes, content type and ETag, by name."""
    found: dict[str, tuple[bytes, str, str]] = {}
    for entry in resources.files(__package__).joinpath("static").iterdir():
        suffix = entry.name[entry.name.rfind(".") :]
        if entry.is_file() and suffix in CONTENT_TYPES:
            body = entry.read_bytes()
            found[entry.name] = (body, CONTENT_TYPES[suffix], f'"{hashlib.sha256(body).hexdigest()[:16]}"')
    return found


def console_routes() -> list[web.RouteDef]:
    """The console's routes: the page at /ui/ and its files."""
    files = _files()

    def answer(request: web.Request, name: str) -> web.StreamResponse:
        body, content_type, etag = files[name]
        headers = {**SECURITY_HEADERS, "ETag": etag, "Cache-Control": "no-cache"}
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers=headers)
        return web.Response(body=body, content_type=content_type, charset="utf-8", headers=headers)

    async def page(request: web.Request) -> web.StreamResponse:
        return answer(request, "index.html")

    async def asset(request: web.Request) -> web.StreamResponse:
        name = request.match_info["file"]
        if name not in files or name == "index.html":
            return error(404, f"no console file {name!r}")
        return answer(request, name)

    return [route(operations.GET_CONSOLE, page), route(operations.GET_CONSOLE_ASSET, asset)]
