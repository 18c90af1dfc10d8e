"""Debian's Chromium driven by Playwright: the ``browser`` and ``page`` fixtures of the browser tests.

Loaded as a plugin by ``tests/conftest.py``. Without Playwright or Chromium the fixtures
skip the tests that use them, with the reason.
"""

import shutil

import pytest

try:
    from playwright import sync_api as playwright_api
except ImportError:  # pragma: no cover - the test extra installs it
    playwright_api = None

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for the test module."""
    if playwright_api is None:
        pytest.skip("playwright is not installed (pip install -e '.[test]')")
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (Debian package 'chromium')")
    with playwright_api.sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield instance
        instance.close()


@pytest.fixture
def page(browser):
    """A fresh browser context and page for each test."""
    context = browser.new_context()
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    context.close()


def expect(target):
    """Playwright's ``expect``: waits for a locator or page to match, polling from the test."""
    return playwright_api.expect(target)

