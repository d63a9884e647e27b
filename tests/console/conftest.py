"""Fixtures for tests in a real browser: Debian's Chromium, driven by Playwright's async API.

Which Chromium: the executable MAESTRO_BROWSER names, else `chromium` on PATH (`make test` installs
Debian's when it runs as root with apt-get); with neither, every browser test skips. Playwright's own
browser download (`playwright install`) is not used: it is not reachable from where Maestro is built.

One browser per test: Playwright's async objects belong to the event loop that made them, and
pytest-asyncio gives each test a loop of its own (as the e2e mesh fixtures expect), so a browser shared by
the session could not be used from the next test's loop. Starting Playwright's driver and Chromium costs
about 0.7 s a test (measured on 2 cores: driver 0.4 s, launch 0.25 s; closing 0.15 s).

A test that fails leaves a full-page picture of every page it had open in test-screenshots/
(`<test name>.png`, then `-2`, `-3` for more pages). `screenshot(page, name)` keeps pictures for the
README in the folder MAESTRO_SCREENSHOTS names, and does nothing when it is unset.
"""

from __future__ import annotations

import os
import re
import shutil
import warnings
from collections.abc import AsyncIterator, Generator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Error, Page, ViewportSize, async_playwright

NO_CHROMIUM = (
    "no Chromium: install Debian's chromium (apt-get install chromium); "
    "Playwright's own browser download is not available here"
)
# Headless and without the sandbox (Playwright adds both, and a new empty profile): the tests run as root
# in CI, where Chromium refuses its sandbox. Without the background-networking flags Chromium keeps dialling
# Google's hosts, which this machine's closed network refuses, many connections at a time.
CHROMIUM_FLAGS = (
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}
# Playwright waits 30 s for an element before a click fails; a test here is a few seconds, and 10 s still
# leaves room for three workers' browsers on two cores (a page opened in 1 to 3 s there).
ACTION_TIMEOUT_MS = 10_000
FAILURE_PICTURES = "test-screenshots"

_failed = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Mark a test whose setup or body failed, so the browser's teardown pictures its pages first."""
    report = yield
    if report.failed and report.when in ("setup", "call"):
        item.stash[_failed] = True
    return report


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """The Chromium the tests drive: MAESTRO_BROWSER, else `chromium` on PATH; skips the test when neither."""
    named = os.environ.get("MAESTRO_BROWSER")
    if named:
        found = shutil.which(named)
        if found is None:
            pytest.fail(f"MAESTRO_BROWSER={named} is not an executable Chromium")
        return found
    found = shutil.which("chromium")
    if found is None:
        pytest.skip(NO_CHROMIUM)
    return found


@pytest.fixture
async def browser(chromium_path: str, request: pytest.FixtureRequest) -> AsyncIterator[Browser]:
    """A headless Chromium for this test, closed after it; a failed test's pages are pictured first."""
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=chromium_path, headless=True, chromium_sandbox=False, args=CHROMIUM_FLAGS
        )
        try:
            yield launched
        finally:
            if request.node.stash.get(_failed, False):
                await _picture_failure(
                    launched, request.config.rootpath / FAILURE_PICTURES, request.node.name
                )
            await launched.close()


@pytest.fixture
async def page(browser: Browser) -> Page:
    """A page in a new browser context (its own cookies and storage), 1280x800, whose actions give up after
    ACTION_TIMEOUT_MS; it closes with the browser."""
    context = await browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    return await context.new_page()


async def screenshot(page: Page, name: str, *, full_page: bool = False) -> Path | None:
    """Keep a picture of `page` as `<name>.png` in the folder MAESTRO_SCREENSHOTS names (made if missing),
    for the README; returns where, or None when the variable is unset and nothing was written. Raises
    ValueError for a name that is not a plain file name."""
    folder = os.environ.get("MAESTRO_SCREENSHOTS")
    if not folder:
        return None
    if not name or Path(name).name != name:
        raise ValueError(f"a screenshot's name is a plain file name, not {name!r}")
    path = Path(folder) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=path, full_page=full_page)
    return path


async def _picture_failure(browser: Browser, folder: Path, test: str) -> None:
    """A full-page picture of every page open in `browser`, named after the failed `test`; a page that
    cannot be pictured (it crashed) is a warning, so the test's own failure is what the run reports."""
    stem = re.sub(r"[^\w.-]+", "_", test)
    pages = [open_page for context in browser.contexts for open_page in context.pages]
    folder.mkdir(parents=True, exist_ok=True)
    for number, open_page in enumerate(pages, start=1):
        path = folder / (f"{stem}.png" if number == 1 else f"{stem}-{number}.png")
        try:
            await open_page.screenshot(path=path, full_page=True, timeout=5_000)
        except Error as error:
            warnings.warn(f"no picture of {open_page.url} for {test}: {error.message}", stacklevel=1)
