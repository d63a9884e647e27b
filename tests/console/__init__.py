"""The operator console, tested in a real browser (Debian's Chromium driven by Playwright)."""
