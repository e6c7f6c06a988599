"""Headless Chromium from Debian, driven by Playwright, against Django's live server."""
import os
import shutil
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from tests.clock import OFFSET_VARIABLE
from tests.conftest import IN_CI

CHROMIUM = os.environ.get("LABRES_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("LABRES_TEST_ARTIFACTS", settings.BASE_DIR / "var" / "test-artifacts"))
WIDTHS = {"phone": 375, "desktop": 1440}
# axe-core (npm registry, MPL-2.0), injected into pages to check them against WCAG 2 A/AA.
AXE = Path(__file__).parent / "vendor" / "axe-core-4.14.1" / "axe.min.js"
# Without these, Chromium tries to reach Google's services, which this network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
    "--disable-background-networking", "--disable-component-update",
]


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def chromium():
    if not shutil.which(CHROMIUM):
        message = f"{CHROMIUM} is missing; install Debian's chromium (apt-get install -y chromium)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls are
    # still synchronous, one at a time.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def browse(chromium, live_server, clock):
    """browse(width='desktop') opens a fresh browser context on the live server, its pages' clock on the suite's."""
    contexts = []

    def open_page(width="desktop"):
        context = chromium.new_context(viewport={"width": WIDTHS[width], "height": 900}, base_url=live_server.url)
        context.set_default_timeout(10_000)
        if os.environ.get(OFFSET_VARIABLE):
            context.clock.install(time=timezone.now())  # then it runs, as the test's does
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()


@pytest.fixture
def shoot():
    """shoot(page, name) saves a full-page screenshot under the test artifacts folder."""
    folder = ARTIFACTS / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)

    def save(page, name):
        path = folder / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return save


def sign_in(page, username, password):
    page.goto("/accounts/login/")
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/")


def accessibility_problems(page):
    """Serious and critical WCAG 2 A/AA violations axe-core finds on the page, as readable lines."""
    page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        "() => axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa']}, resultTypes: ['violations']})"
    )
    return [
        f"{violation['id']} ({violation['impact']}): {violation['help']} — {node['target']}"
        for violation in result["violations"]
        if violation["impact"] in {"serious", "critical"}
        for node in violation["nodes"][:3]
    ]
