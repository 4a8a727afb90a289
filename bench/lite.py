"""The zero-install page (``make lite``): its size, and how soon it answers, in headless Chromium.

    python -m bench.lite [--runs 3]

Prints the site's size on disk, the bytes a first visit downloads (every distinct file
the browser asked for, as ``python -m http.server`` serves it, uncompressed, and gzipped),
and, from page load (``performance.timeOrigin``) in a fresh browser profile each run: the
notebook visible, the kernel shown idle, the kernel ready (the extension loaded and replay on: the
second cell's output) and the first replayed token of the quickstart's first chat, Run
All being clicked as soon as the kernel shows idle.
Requests to anything but 127.0.0.1 are aborted and counted (there must be none).
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from tests.browser.jupyterlab import (
    CHROMIUM_ARGS,
    _free_port,
    chromium_executable,
    get_output_timeline,
    install_output_recorder,
    run_all_cells,
    wait_for_execution_finished,
    wait_for_kernel_idle,
)

from .common import Row

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "build" / "lite"
RUNS = 3  # fresh-profile visits (``--quick`` makes it one)
REPLAY_CELL = 2  # %deepinfra_replay quickstart.recording.json --if-no-key: its first line
FIRST_CHAT = 6  # "Explain in three sentences what a Python generator is."


def _serve(site: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "-d", str(site), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/"
    for _ in range(300):
        try:
            with urllib.request.urlopen(url, timeout=1):
                return process, url
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("the site's server did not start")


def _one_run(browser: Any, url: str) -> dict[str, Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    context.set_default_timeout(180_000)
    blocked: list[str] = []
    paths: set[str] = set()

    def guard(route: Any) -> None:
        parts = urlsplit(route.request.url)
        if parts.hostname == "127.0.0.1":
            paths.add(unquote(parts.path))
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort("blockedbyclient")

    context.route("**/*", guard)
    page = context.new_page()
    install_output_recorder(page)
    page.goto(url)
    page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for()
    origin = page.evaluate("performance.timeOrigin") / 1000.0
    visible = time.time() - origin
    wait_for_kernel_idle(page, timeout_ms=180_000)
    idle = time.time() - origin
    run_all_cells(page)
    wait_for_execution_finished(page, timeout_ms=300_000, inserted_cells=1)
    replay_on = next(t for t, text in get_output_timeline(page, REPLAY_CELL) if text.strip())
    chat = get_output_timeline(page, FIRST_CHAT)
    token = next(t for t, text in chat if text.strip() and "Asking" not in text)
    files = [SITE / p.lstrip("/") for p in paths if (SITE / p.lstrip("/")).is_file()]
    loaded = sum(file.stat().st_size for file in files)
    gzipped = sum(len(gzip.compress(file.read_bytes(), 6)) for file in files)
    context.close()
    return {
        "visible": visible,
        "idle": idle,
        "kernel": replay_on - origin,
        "token": token - origin,
        "bytes": loaded,
        "gzipped": gzipped,
        "blocked": len(blocked),
    }


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} s (min {min(values):.1f}, max {max(values):.1f})"


def _measure_site(runs: int) -> tuple[int, list[dict[str, Any]]]:
    """The site's size on disk and ``runs`` fresh-profile visits (built first if missing)."""
    if not (SITE / "jupyter-lite.json").is_file():
        subprocess.run([sys.executable, "scripts/build_lite.py"], cwd=ROOT, check=True)
    chromium = chromium_executable()
    if chromium is None:
        raise SystemExit("no Chromium: install Debian's chromium (scripts/ensure-chromium)")
    from playwright.sync_api import sync_playwright

    size = sum(p.stat().st_size for p in SITE.rglob("*") if p.is_file())
    process, url = _serve(SITE)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(chromium), headless=True, args=list(CHROMIUM_ARGS)
            )
            visits = [_one_run(browser, url) for _ in range(runs)]
            browser.close()
    finally:
        process.terminate()
        process.wait(timeout=10)
    return size, visits


def measure() -> list[Row]:
    """The rows of ``python -m bench.run``: size and first visit, kernel ready, first token."""
    size, visits = _measure_site(RUNS)
    first = visits[0]
    blocked = sum(r["blocked"] for r in visits)
    kernel = statistics.median(r["kernel"] for r in visits)
    token = statistics.median(r["token"] for r in visits)
    note = (
        f"Headless Chromium, fresh profile each visit, median of {RUNS}; "
        f"{blocked} requests left 127.0.0.1."
    )
    return [
        Row(
            "13a. JupyterLite site (`make lite`): first visit downloads",
            f"{first['gzipped'] / 1e6:.1f} MB gzipped ({first['bytes'] / 1e6:.1f} MB raw)",
            f"{size / 1e6:.1f} MB site on disk",
            f"{first['bytes'] / size:.2f}× of the site",
            "— (report)",
            None,
            {"site_bytes": size, "visits": visits},
            note=note,
        ),
        Row(
            "13b. JupyterLite: page load → kernel ready (extension loaded, replay on)",
            f"{kernel:.1f} s",
            f"{statistics.median(r['visible'] for r in visits):.1f} s (notebook visible)",
            "—",
            "— (report)",
            None,
        ),
        Row(
            "13c. JupyterLite: page load → first replayed token of the quickstart",
            f"{token:.1f} s",
            f"{kernel:.1f} s (kernel ready)",
            f"+{token - kernel:.1f} s",
            "— (report)",
            None,
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.lite``: the figures as text lines."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=RUNS)
    args = parser.parse_args(argv)
    size, runs = _measure_site(args.runs)
    print(f"site on disk: {size / 1e6:.1f} MB ({SITE.relative_to(ROOT)})")
    print(
        f"first visit downloads: {runs[0]['bytes'] / 1e6:.1f} MB uncompressed, "
        f"{runs[0]['gzipped'] / 1e6:.1f} MB gzip-6 (what a compressing host such as GitHub "
        "Pages sends)"
    )
    print(f"page load -> notebook visible: {_spread([r['visible'] for r in runs])}")
    print(f"page load -> kernel shown idle: {_spread([r['idle'] for r in runs])}")
    print(f"page load -> kernel ready (replay on): {_spread([r['kernel'] for r in runs])}")
    print(f"page load -> first replayed token: {_spread([r['token'] for r in runs])}")
    print(f"requests outside 127.0.0.1: {sum(r['blocked'] for r in runs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
