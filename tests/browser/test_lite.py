"""The zero-install page: the examples in JupyterLite, run by headless Chromium, offline.

The site is `make lite`'s ``build/lite/`` (built here unless a build newer than every
input is there), served by ``python -m http.server`` on 127.0.0.1. Every request the
page or its workers make to anything but that server is aborted and counted: there
must be none. Both notebooks run with Run All from their recordings, in Pyodide.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest

from tests.fake_deepinfra import CANARY_KEY, CHAT_PATH, FakeDeepInfra

from .jupyterlab import (
    BrowserLog,
    CellOutputs,
    _free_port,
    collect_outputs,
    error_lessons,
    get_output_history,
    install_output_recorder,
    run_all_cells,
    save_screenshot,
    wait_for_execution_finished,
    wait_for_kernel_idle,
    wait_for_output,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Route

pytestmark = [pytest.mark.browser, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "build" / "lite"
KERNEL_PLUGIN = "@jupyterlite/pyodide-kernel-extension:kernel"
# What the site is built from: a build older than any of these is rebuilt.
INPUTS = (
    ROOT / "deepinfra_magic",
    ROOT / "scripts" / "build_lite.py",
    ROOT / "pyproject.toml",
    *(ROOT / "examples" / f"{name}{suffix}" for name in ("quickstart", "workshop")
      for suffix in (".ipynb", ".recording.json")),
)  # fmt: skip
PYODIDE_START_MS = 180_000
RUN_MS = 300_000


def _newest_input() -> float:
    files = [p for path in INPUTS for p in (path.rglob("*.py") if path.is_dir() else [path])]
    return max(p.stat().st_mtime for p in files)


@pytest.fixture(scope="module")
def lite_site() -> Path:
    """``build/lite``, built with ``make lite`` unless it is newer than all its inputs."""
    stamp = SITE / "jupyter-lite.json"
    if not stamp.is_file() or stamp.stat().st_mtime < _newest_input():
        subprocess.run(["make", "lite", f"PYTHON={sys.executable}"], cwd=ROOT, check=True)
    return SITE


@dataclass
class LiteServer:
    """The static site on 127.0.0.1, and every request the browser tried elsewhere."""

    url: str
    blocked: list[str] = field(default_factory=list)
    served: list[str] = field(default_factory=list)

    def guard(self, route: Route) -> None:
        """Let requests to the site through; abort and remember all others."""
        url = route.request.url
        if urlsplit(url).hostname == "127.0.0.1":
            self.served.append(url)
            route.continue_()
        else:
            self.blocked.append(url)
            route.abort("blockedbyclient")


@pytest.fixture(scope="module")
def lite_server(lite_site: Path) -> Iterator[LiteServer]:
    """``python -m http.server -d build/lite`` on a free loopback port, stopped by its pid."""
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "-d", str(lite_site),
         str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(url + "jupyter-lite.json", timeout=2):
                break
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise
            time.sleep(0.1)  # polling a port until it answers, not synchronising a test
    try:
        yield LiteServer(url)
    finally:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)
        if process.poll() is None:
            process.kill()


def _open(page: Page, server: LiteServer, url: str) -> None:
    """Open ``url`` with every non-loopback request aborted; wait for the Pyodide kernel."""
    server.blocked.clear()
    page.context.route("**/*", server.guard)
    install_output_recorder(page)
    page.goto(url)
    wait_for_kernel_idle(page, timeout_ms=PYODIDE_START_MS)


def _shoot(page: Page, name: str, cell_index: int) -> None:
    """A screenshot of the page scrolled to one cell (the notebook scrolls inside itself)."""
    cells = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell")
    cells.nth(cell_index).scroll_into_view_if_needed()
    save_screenshot(page, name, whole_notebook=False)


def _run_all(page: Page, inserted_cells: int = 0) -> list[CellOutputs]:
    run_all_cells(page)
    wait_for_execution_finished(page, timeout_ms=RUN_MS, inserted_cells=inserted_cells)
    return collect_outputs(page)


def test_the_site_loads_pyodide_and_its_packages_from_itself(lite_site: Path) -> None:
    config = json.loads((lite_site / "jupyter-lite.json").read_text())["jupyter-config-data"]
    kernel = config["litePluginSettings"][KERNEL_PLUGIN]
    assert kernel["pyodideUrl"] == "./static/pyodide/pyodide.mjs"
    assert kernel["loadPyodideOptions"]["lockFileURL"] == "./static/pyodide-lock/pyodide-lock.json"
    assert "deepinfra-magic" in kernel["loadPyodideOptions"]["packages"]
    assert kernel["disablePyPIFallback"] is True
    assert (lite_site / "static" / "pyodide" / "pyodide.asm.wasm").is_file()
    lock = json.loads((lite_site / "static/pyodide-lock/pyodide-lock.json").read_text())
    for package in lock["packages"].values():  # every wheel is a file of the site
        assert "://" not in package["file_name"], package["file_name"]
        assert (lite_site / "static" / "pyodide-lock" / package["file_name"]).is_file()


def test_quickstart_runs_offline_in_the_browser(
    page: Page, lite_server: LiteServer, browser_log: BrowserLog, request: pytest.FixtureRequest
) -> None:
    _open(page, lite_server, lite_server.url)  # the front page opens the quickstart
    panel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
    assert "deepinfra-magic quickstart" in panel.locator(".jp-Cell").first.inner_text()
    _run_all(page, inserted_cells=1)
    replayed = "replayed from quickstart.recording.json"
    wait_for_output(page, 6, text=replayed)
    cells = collect_outputs(page)
    name = request.node.name
    _shoot(page, f"{name}-first-reply", 6)
    _shoot(page, f"{name}-f-code-inserted", 11)
    _shoot(page, f"{name}-image", next(cell.index for cell in cells if cell.images))

    # The first reply streamed: it grew through states before its footer showed.
    history = get_output_history(page, 6)
    growing = [text for text in history if "Asking" not in text and replayed not in text]
    assert len(growing) >= 2, history
    assert "generator" in history[-1] and "tokens" in history[-1]
    assert sum(replayed in cell.text for cell in cells) >= 4
    assert any(any("def countdown" in c for c in cell.code_blocks) for cell in cells)
    # The fox, at its real size, in Pyodide where no thread can start.
    [fox] = [image for cell in cells for image in cell.images]
    assert (fox.natural_width, fox.natural_height) == (512, 512)
    # -f code put the fib() code into a new cell below, and said so.
    [inserted] = [c for c in cells if c.cell_type == "code" and c.execution_count is None]
    source = page.locator(".jp-Notebook .jp-Cell").nth(inserted.index).locator(".cm-content")
    assert "fib" in source.inner_text()
    assert any("put into the next cell" in cell.text for cell in cells)
    assert not [cell.index for cell in cells if cell.has_errors]
    assert lite_server.blocked == []
    assert any(url.endswith("/static/pyodide/pyodide.asm.wasm") for url in lite_server.served)
    assert not browser_log.page_errors


def test_workshop_runs_offline_in_the_browser(
    page: Page, lite_server: LiteServer, browser_log: BrowserLog, request: pytest.FixtureRequest
) -> None:
    _open(page, lite_server, lite_server.url + "lab/index.html?path=workshop.ipynb")
    cells = _run_all(page)
    name = request.node.name
    _shoot(page, f"{name}-temperature", 10)
    _shoot(page, f"{name}-three-images", 12)
    _shoot(page, f"{name}-reasoning", 15)
    _shoot(page, f"{name}-error-lessons", 21)

    # Temperature 0 replays although JupyterLite hands the kernel "temperature":0.
    assert sum("replayed from workshop.recording.json" in cell.text for cell in cells) >= 7
    # Three images one after another (no threads), then seed 42 again.
    three, again = [cell for cell in cells if cell.images]
    assert len(three.images) == 3 and len(again.images) == 1
    assert all(image.natural_width > 0 for image in (*three.images, *again.images))
    # The reasoning model's thinking is shown apart from its answer, as a quote.
    [reasoning] = [cell for cell in cells if "deepseek-ai/DeepSeek-R1" in cell.text]
    assert any("<blockquote" in item.html for item in reasoning.outputs)
    # The three error lessons, one line each, shown as the cell's output (not stderr).
    assert not [cell for cell in cells if cell.has_errors]
    shown = error_lessons(cells)
    assert [line.split(":", 1)[0] for line in shown] == [
        "ModelNotFoundError",
        "UsageError",
        "UsageError",
    ]
    assert lite_server.blocked == []
    assert not browser_log.page_errors


def _type_cell_above(page: Page, index: int, lines: list[str]) -> None:
    """Insert a code cell above cell ``index``, type ``lines`` into it and run it."""
    cells = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell")
    cells.nth(index).locator(".jp-InputPrompt").click()
    page.keyboard.press("Escape")
    page.keyboard.press("a")
    page.keyboard.press("Enter")
    for number, line in enumerate(lines):
        if number:
            page.keyboard.press("Enter")
        page.keyboard.insert_text(line)
    page.keyboard.press("Shift+Enter")


def test_live_mode_streams_through_the_browsers_fetch(
    page: Page,
    lite_server: LiteServer,
    fake_server: FakeDeepInfra,
    browser_log: BrowserLog,
    request: pytest.FixtureRequest,
) -> None:
    fake_server.configure(token_delay=0.05)
    _open(page, lite_server, lite_server.url)
    settings = (
        f'import os; os.environ.update(DEEPINFRA_API_KEY="{CANARY_KEY}", '
        f'DEEPINFRA_BASE_URL="{fake_server.api_url}"); '
        'get_ipython().run_line_magic("load_ext", "deepinfra_magic")'
    )
    _type_cell_above(page, 0, [settings])
    _type_cell_above(page, 1, ["%%deepinfra", "Say hello from the browser."])
    wait_for_output(page, 1, text="tokens", timeout_ms=RUN_MS)
    _shoot(page, f"{request.node.name}-streamed", 1)

    # It streamed: the reply grew in place before its footer showed, from the fake server.
    history = get_output_history(page, 1)
    growing = [text for text in history if "Asking" not in text and "tokens" not in text]
    assert len(growing) >= 2, history
    assert "replayed" not in history[-1]
    [chat] = [r for r in fake_server.requests if r.path == CHAT_PATH]
    assert chat.headers.get("origin") == lite_server.url.rstrip("/")  # sent by the page
    assert chat.json["messages"][-1]["content"] == "Say hello from the browser."

    # A server that does not allow this page: one line that says what to do.
    fake_server.configure(cors=False)
    _type_cell_above(page, 2, ["%%deepinfra", "And again?"])
    wait_for_output(page, 2, text="does not allow calls from this page", timeout_ms=RUN_MS)
    _shoot(page, f"{request.node.name}-blocked", 2)
    [blocked] = [cell for cell in collect_outputs(page) if cell.index == 2]
    [line] = [text.strip() for text in blocked.stderr]
    assert line.startswith("APIConnectionError: The browser blocked the request to http://127.0")
    assert "\n" not in line and "%deepinfra_replay" in line
    assert lite_server.blocked == []
    assert not browser_log.page_errors


def test_without_a_service_worker_replay_says_to_serve_over_https(
    browser: Browser, lite_server: LiteServer, request: pytest.FixtureRequest
) -> None:
    # What a plain-http LAN address gives: no service worker, so the kernel cannot read files.
    context = browser.new_context(viewport={"width": 1280, "height": 1000}, service_workers="block")
    try:
        page = context.new_page()
        _open(page, lite_server, lite_server.url)
        cells = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell")
        cells.nth(1).locator(".jp-InputPrompt").click()
        page.keyboard.press("Shift+Enter")  # %load_ext deepinfra_magic
        page.keyboard.press("Shift+Enter")  # %deepinfra_replay quickstart.recording.json
        wait_for_output(page, 2, text="cannot be read", timeout_ms=RUN_MS)
        _shoot(page, request.node.name, 2)
        [cell] = [cell for cell in collect_outputs(page) if cell.index == 2]
        [line] = [text.strip() for text in cell.stderr]
        assert line.startswith("ConfigurationError: Recording ") and "quickstart.rec" in line
        assert "open the page over https or from localhost" in line and "\n" not in line
        assert lite_server.blocked == []
    finally:
        context.close()
