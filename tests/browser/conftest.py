"""Fixtures for the browser tests: JupyterLab servers and headless Chromium pages.

* ``jupyterlab_factory(extra_env=None)`` -> `JupyterLabServer`, one server per distinct env
  for the whole session (kernels inherit the server's environment).
* ``jupyterlab``: the default server; parametrize it indirectly with a dict to add kernel env.
* ``page``: a fresh Playwright page (own browser context) with the output recorder installed;
  ``browser_log`` holds its console messages, page errors and failed requests.

Artifacts of a failing test (screenshot, browser log, server log) go to
``test-artifacts/browser/``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Generator, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import pytest

from .jupyterlab import (
    CHROMIUM_ARGS,
    CHROMIUM_ENV,
    DEFAULT_CHROMIUM,
    REQUIRE_BROWSER_ENV,
    BrowserLog,
    JupyterLabFactory,
    JupyterLabServer,
    artifact_path,
    chromium_executable,
    install_output_recorder,
    save_screenshot,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Remember each phase's report so fixtures can tell at teardown whether the test failed."""
    report = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    return report


def _test_failed(node: pytest.Item) -> bool:
    """True if the setup or call phase of ``node`` failed."""
    return any(report.failed for report in node.stash.get(_REPORTS, {}).values())


def _unavailable(reason: str) -> NoReturn:
    """Skip for a missing browser, or fail when ``DEEPINFRA_MAGIC_REQUIRE_BROWSER=1``."""
    if os.environ.get(REQUIRE_BROWSER_ENV) == "1":
        pytest.fail(f"{reason}; {REQUIRE_BROWSER_ENV}=1 requires the browser tests", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def chromium_path() -> Path:
    """The Chromium binary and a working Playwright, or skip (fail if they are required)."""
    path = chromium_executable()
    if path is None:
        where = os.environ.get(CHROMIUM_ENV) or str(DEFAULT_CHROMIUM)
        _unavailable(f"no Chromium executable at {where} (set {CHROMIUM_ENV} to point to one)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:
        _unavailable(f"Playwright is not installed ({exc})")
    return path


# Package scope, not session: Playwright's sync API keeps an asyncio loop running on the
# main thread while it lives, which would break asyncio.run() in every test after these.
@pytest.fixture(scope="package")
def jupyterlab_factory(
    chromium_path: Path, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[JupyterLabFactory]:
    """Session-wide factory: ``jupyterlab_factory({"DEEPINFRA_MAGIC_REPLAY": path})``."""
    factory = JupyterLabFactory(lambda: tmp_path_factory.mktemp("jupyterlab"))
    yield factory
    factory.stop_all(keep_logs=request.session.testsfailed > 0)


@pytest.fixture(scope="package")
def jupyterlab(
    jupyterlab_factory: JupyterLabFactory, request: pytest.FixtureRequest
) -> JupyterLabServer:
    """A JupyterLab server; ``@pytest.mark.parametrize("jupyterlab", [env], indirect=True)``."""
    extra_env: Mapping[str, str] | None = getattr(request, "param", None)
    return jupyterlab_factory(extra_env)


@pytest.fixture(scope="package")
def browser(chromium_path: Path) -> Iterator[Browser]:
    """Headless Chromium for the browser tests (Playwright gives it a fresh temporary profile)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(chromium_path), headless=True, args=list(CHROMIUM_ARGS)
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def browser_log() -> BrowserLog:
    """Console and error log of the test's ``page``."""
    return BrowserLog()


@pytest.fixture
def page(
    browser: Browser,
    browser_log: BrowserLog,
    jupyterlab_factory: JupyterLabFactory,
    request: pytest.FixtureRequest,
) -> Iterator[Page]:
    """A new page in its own context; on failure saves screenshot and logs, then ends kernels."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    context.set_default_timeout(30_000)
    new_page = context.new_page()
    new_page.on("console", lambda msg: browser_log.console.append(f"[{msg.type}] {msg.text}"))
    new_page.on("pageerror", lambda exc: browser_log.page_errors.append(str(exc)))
    new_page.on(
        "requestfailed",
        lambda req: browser_log.failed_requests.append(f"{req.method} {req.url}: {req.failure}"),
    )
    install_output_recorder(new_page)
    try:
        yield new_page
    finally:
        name = request.node.name
        if _test_failed(request.node):
            with contextlib.suppress(Exception):  # a screenshot must not mask the failure
                save_screenshot(new_page, f"{name}-failure")
            artifact_path(f"{name}-browser", ".log").write_text(browser_log.dump())
            for number, server in enumerate(jupyterlab_factory.servers):
                shutil.copyfile(
                    server.log_path, artifact_path(f"{name}-jupyterlab-{number}", ".log")
                )
        context.close()
        for server in jupyterlab_factory.servers:
            server.delete_all_sessions()
