"""Run All on the workshop in JupyterLab, replaying its recording: every cell runs (the
error lessons print their one line instead of stopping the run) and the images show in
request order with their seeds."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .jupyterlab import (
    BrowserLog,
    JupyterLabFactory,
    collect_outputs,
    error_lessons,
    open_notebook,
    run_all_cells,
    save_screenshot,
    wait_for_execution_finished,
)

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_workshop_run_all_reaches_the_end(
    page: Page,
    jupyterlab_factory: JupyterLabFactory,
    browser_log: BrowserLog,
    request: pytest.FixtureRequest,
) -> None:
    server = jupyterlab_factory({"DEEPINFRA_MAGIC_REPLAY_SPEED": "0"})
    workshop = EXAMPLES / "workshop.ipynb"
    open_notebook(page, server, workshop, extra_files=[EXAMPLES / "workshop.recording.json"])
    run_all_cells(page)
    wait_for_execution_finished(page, timeout_ms=180_000)  # fails if any cell did not run
    cells = collect_outputs(page)
    save_screenshot(page, request.node.name)

    # The three error lessons: one line each, shown as the cell's output (not stderr, which
    # Voilà drops), and the run went on past them.
    assert not [cell for cell in cells if cell.has_errors]
    shown = error_lessons(cells)
    assert [line.split(":", 1)[0] for line in shown] == [
        "ModelNotFoundError",
        "UsageError",
        "UsageError",
    ]
    assert all("\n" not in line for line in shown)

    # Three lighthouses in request order, each under its seed, then seed 42 alone again.
    three, again = [cell for cell in cells if cell.images]
    labels = [item.text.strip() for item in three.outputs if item.mime_type == "text/markdown"]
    assert labels[1:-1] == ["1 of 3 · seed 42", "2 of 3 · seed 43", "3 of 3 · seed 44"]
    assert labels[0].startswith("✓ Generated 3 images with")  # the progress line, ended
    assert len(three.images) == 3 and len(again.images) == 1
    assert all(image.natural_width > 0 for image in (*three.images, *again.images))
    assert "seed 42" in again.text
    assert not browser_log.page_errors
