"""What a person sees running "Label a table" in JupyterLab, replaying its recording: the
progress bar (an ipywidgets widget), the summaries and the labelled table."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .jupyterlab import (
    BrowserLog,
    JupyterLabFactory,
    collect_outputs,
    open_notebook,
    run_all_cells,
    save_screenshot,
    wait_for_execution_finished,
)

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NOTEBOOK = EXAMPLES / "label_a_table.ipynb"
RECORDING = EXAMPLES / "label_a_table.recording.json"


def test_label_a_table_shows_progress_summaries_and_the_labelled_table(
    page: Page,
    jupyterlab_factory: JupyterLabFactory,
    browser_log: BrowserLog,
    request: pytest.FixtureRequest,
) -> None:
    server = jupyterlab_factory({"DEEPINFRA_MAGIC_REPLAY_SPEED": "1"})
    open_notebook(page, server, NOTEBOOK, extra_files=[RECORDING])
    run_all_cells(page)
    wait_for_execution_finished(page, timeout_ms=180_000)
    cells = collect_outputs(page)
    save_screenshot(page, request.node.name)

    summaries = [cell for cell in cells if "6 rows" in cell.text]
    assert len(summaries) == 3 and all("6 answered" in cell.text for cell in summaries)
    assert "replayed from label_a_table.recording.json" in summaries[0].text
    bars = page.locator("[class*=hprogress]")
    assert bars.count() == 2  # the live runs' bars (the batch run shows its status instead)
    assert any("sentiment" in cell.text and "mixed" in cell.text for cell in cells)
    assert not [cell.index for cell in cells if cell.has_errors]
    assert not browser_log.page_errors
