"""The browser the console's tests drive: Chromium opens a page served on localhost, runs its script, is
clicked, fetches from the server, and is pictured (on request, and when a test fails)."""

from __future__ import annotations

import asyncio
import os
import shutil
import struct
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web
from playwright.async_api import Page, expect

from tests.console.conftest import screenshot

PAGE = """<!doctype html>
<title>smoke</title>
<p id="said">nothing yet</p>
<button id="ask">Ask the server</button>
<script>
  document.getElementById("ask").addEventListener("click", async () => {
    const answer = await fetch("/greeting");
    document.getElementById("said").textContent = await answer.text();
  });
</script>
"""
GREETING = "hello from aiohttp"

# Run in a pytest of its own, so its failure is that run's: two pages open, the first taller than the
# viewport.
FAILING_TEST = """
async def test_the_heading_says_goodbye(page):
    await page.set_content("<h1 style='height: 2000px'>hello</h1>")
    other = await page.context.new_page()
    await other.set_content("<p>another page</p>")
    assert await page.text_content("h1") == "goodbye"
"""


@asynccontextmanager
async def _serving() -> AsyncIterator[str]:
    """PAGE at / and GREETING at /greeting on a free local port for the length of a block; yields its URL."""

    async def front(_: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    async def greeting(_: web.Request) -> web.Response:
        return web.Response(text=GREETING)

    app = web.Application()
    app.router.add_get("/", front)
    app.router.add_get("/greeting", greeting)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def _png_size(path: Path) -> tuple[int, int]:
    """The width and height a PNG file says it has; fails the test when the file is not a PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


async def test_a_click_fetches_from_the_server_and_changes_what_the_page_says(page: Page) -> None:
    async with _serving() as url:
        await page.goto(url)
        said = page.locator("#said")
        await expect(said).to_have_text("nothing yet", timeout=5_000)
        await page.get_by_role("button", name="Ask the server").click()
        await expect(said).to_have_text(GREETING, timeout=5_000)


async def test_screenshot_keeps_a_picture_of_the_viewport_only_when_asked(
    page: Page, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await page.set_content("<h1>the console</h1>")
    monkeypatch.delenv("MAESTRO_SCREENSHOTS", raising=False)
    assert await screenshot(page, "console") is None

    monkeypatch.setenv("MAESTRO_SCREENSHOTS", str(tmp_path / "pictures"))
    kept = await screenshot(page, "console")
    assert kept == tmp_path / "pictures" / "console.png"
    assert _png_size(kept) == (1280, 800)
    with pytest.raises(ValueError, match="plain file name"):
        await screenshot(page, "../console")
    assert sorted(p.name for p in (tmp_path / "pictures").iterdir()) == ["console.png"]


async def test_a_failed_test_leaves_a_full_page_picture_of_each_page_it_had_open(
    chromium_path: str, tmp_path: Path
) -> None:
    shutil.copy(Path(__file__).with_name("conftest.py"), tmp_path / "conftest.py")
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
    )
    (tmp_path / "test_failing.py").write_text(FAILING_TEST)
    run = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "pytest_asyncio.plugin",
        "test_failing.py",
        cwd=tmp_path,
        # Only the plugin it needs: the others installed (Schemathesis's, Hypothesis's) take 2 s to load.
        env={**os.environ, "MAESTRO_BROWSER": chromium_path, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(run.communicate(), timeout=60)
    assert run.returncode == 1, output.decode()
    assert b"1 failed" in output

    pictures = tmp_path / "test-screenshots"
    assert sorted(p.name for p in pictures.iterdir()) == [
        "test_the_heading_says_goodbye-2.png",
        "test_the_heading_says_goodbye.png",
    ]
    width, height = _png_size(pictures / "test_the_heading_says_goodbye.png")
    assert width == 1280 and height > 2000  # the whole page, not the 800 pixels of the viewport
