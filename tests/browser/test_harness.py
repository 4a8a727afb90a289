"""Prove the browser harness on notebooks that need nothing but IPython."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .jupyterlab import (
    BrowserLog,
    JupyterLabFactory,
    JupyterLabServer,
    NotebookRunError,
    collect_outputs,
    get_output_history,
    get_output_timeline,
    open_notebook,
    run_all_cells,
    save_screenshot,
    wait_for_execution_finished,
    wait_for_output,
)

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

FIXTURES = Path(__file__).parent / "fixtures"
FINAL_MARKER = "Stream complete."  # only the last streamed state contains it


def _write_notebook(path: Path, *sources: str) -> None:
    """Write a minimal nbformat 4.5 notebook of code cells for the python3 kernel."""
    cells: list[dict[str, object]] = [
        {
            "cell_type": "code",
            "id": f"cell-{number}",
            "metadata": {},
            "execution_count": None,
            "outputs": [],
            "source": source,
        }
        for number, source in enumerate(sources)
    ]
    kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook = {
        "cells": cells,
        "metadata": {"kernelspec": kernelspec},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path.write_text(json.dumps(notebook, indent=1), encoding="utf-8")


def test_streamed_markdown_and_image_render(
    page: Page,
    jupyterlab: JupyterLabServer,
    browser_log: BrowserLog,
    request: pytest.FixtureRequest,
) -> None:
    """Display-handle updates show up as growing Markdown; a PNG output decodes to pixels."""
    open_notebook(page, jupyterlab, FIXTURES / "streaming_demo.ipynb")
    run_all_cells(page)
    wait_for_execution_finished(page)
    wait_for_output(page, 0, text=FINAL_MARKER, selector="pre code")
    stream, image = collect_outputs(page)
    screenshot = save_screenshot(page, request.node.name)

    history = get_output_history(page, 0)
    *intermediate, final = history
    assert final == stream.text
    assert len(intermediate) >= 2, f"expected streaming through >= 2 states, saw {history!r}"
    assert all(FINAL_MARKER not in text for text in intermediate)
    assert len(set(history)) == len(history)
    times = [t for t, _ in get_output_timeline(page, 0)]
    assert times == sorted(times)

    assert stream.execution_count == 1
    assert stream.mime_types == ["text/markdown"]
    assert len(stream.code_blocks) == 1
    assert 'return f"hello {name}"' in stream.code_blocks[0]

    assert image.execution_count == 2
    assert image.mime_types == ["image/png"]
    (img,) = image.images
    assert img.complete
    assert (img.natural_width, img.natural_height) == (64, 40)

    assert not [cell.stderr for cell in (stream, image) if cell.has_errors]
    assert browser_log.page_errors == []
    assert screenshot.stat().st_size > 0


def test_kernel_env_and_failing_cell_are_reported(
    page: Page,
    jupyterlab_factory: JupyterLabFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Extra env reaches the kernel, shell DeepInfra vars do not, and an error stops the run."""
    monkeypatch.setenv("DEEPINFRA_API_KEY", "must-not-leak")
    server = jupyterlab_factory({"HARNESS_PROBE": "probe-42"})
    path = tmp_path / "failing.ipynb"
    _write_notebook(
        path,
        "import os\nprint(os.environ['HARNESS_PROBE'], os.environ.get('DEEPINFRA_API_KEY'))",
        "raise ValueError('boom')",
        "print('unreachable')",
    )

    open_notebook(page, server, path)
    run_all_cells(page)
    with pytest.raises(NotebookRunError, match="did not run"):
        wait_for_execution_finished(page)

    probe, failing, skipped = collect_outputs(page)
    assert probe.text.strip() == "probe-42 None"
    assert not probe.has_errors
    assert failing.has_errors
    assert "ValueError: boom" in failing.stderr[0]
    assert skipped.execution_count is None
    assert skipped.outputs == ()
