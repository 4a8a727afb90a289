"""`make demo`'s HTML export opened with no network, as a workshop gets it: every request
that is not a file is refused, and the page still shows the whole quickstart, images with
their alt text; its console summary counts only outputs that show something."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import nbformat
import pytest

from .jupyterlab import REPO_ROOT, save_screenshot
from .renderers import block_network

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Run ``scripts/run_quickstart.py`` as ``make demo`` does; its folder and what it printed."""
    out = tmp_path_factory.mktemp("demo")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEEPINFRA")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")])
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "run_quickstart.py"), "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=True,
    )
    return out, result.stdout + result.stderr


def test_demo_prints_true_counts_and_no_export_noise(demo: tuple[Path, str]) -> None:
    out, printed = demo
    notebook = nbformat.read(out / "quickstart.ipynb", as_version=4)
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert outputs and all(o.get("data") or o.get("text") for o in outputs), "no empty boxes"
    lines = [line for line in printed.splitlines() if not line.startswith("[IPKernelApp]")]
    assert lines[0].startswith("Ran examples/quickstart.ipynb") and lines[0].endswith(".json:")
    images = sum(any(k.startswith("image/") for k in o.get("data", {})) for o in outputs)
    assert f"{len(outputs)} outputs, {images} image(s), 0 error(s)" in lines[1]
    assert "is not able to be represented" not in printed
    assert "Alternative text is missing" not in printed


def test_demo_html_reads_right_with_no_network(demo: tuple[Path, str], page: Page) -> None:
    out, _ = demo
    html = out / "quickstart.html"
    refused = block_network(page)
    page.goto(html.as_uri())
    page.wait_for_function(
        "() => Array.from(document.images).every((img) => img.complete && img.naturalWidth > 0)"
    )
    save_screenshot(page, "demo-offline", whole_notebook=False)
    assert refused == []  # nothing was even asked of the network

    notebook = nbformat.read(out / "quickstart.ipynb", as_version=4)
    shown = page.evaluate(
        "() => Array.from(document.querySelectorAll('.jp-OutputArea-output.jp-RenderedMarkdown'))"
        ".map((el) => el.innerText.trim())"
    )
    written = [
        o.data["text/plain"]
        for cell in notebook.cells
        if cell.cell_type == "code"
        for o in cell.outputs
        if "text/markdown" in o.get("data", {})
    ]
    assert len(shown) == len(written)
    for text, plain in zip(shown, written, strict=True):
        # Each reply, caption and footer shows the prices of its plain-text copy, as written.
        assert "\\$" not in text and "[]()" not in text, text
        assert re.findall(r"<?\$[\d.]+", text) == re.findall(r"<?\$[\d.]+", plain), text
    assert any("$0.23 in / $0.40 out" in text for text in shown)
    alts = page.evaluate("() => Array.from(document.images).map((img) => img.alt)")
    assert alts and all(alt and "No description" not in alt for alt in alts)
