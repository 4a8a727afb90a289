"""What a person sees running "Label a table" in JupyterLab, replaying its recording: the
progress bar (an ipywidgets widget) while it runs, a static line in its place once it has
ended, the summaries and the labelled table; and what the notebook shows saved and reopened
(no widget state is saved, so no widget may be left in it)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .jupyterlab import (
    BrowserLog,
    JupyterLabFactory,
    collect_outputs,
    get_output_history,
    install_output_recorder,
    open_notebook,
    run_all_cells,
    save_screenshot,
    wait_for_execution_finished,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.browser

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NOTEBOOK = EXAMPLES / "label_a_table.ipynb"
RECORDING = EXAMPLES / "label_a_table.recording.json"


WIDGET = "application/vnd.jupyter.widget-view+json"
DONE_LINE = re.compile(r"✓ \S+ · 6/6 done")  # the static line left where the bar was


def test_label_a_table_shows_progress_summaries_and_the_labelled_table(
    page: Page,
    browser: Browser,
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
    # The live run's bar moved while it ran (the batch run shows its status instead), and
    # a static line took its place when it ended.
    map_cell = next(cell for cell in cells if "6 rows" in cell.text)
    assert any("Rows" in state for state in get_output_history(page, map_cell.index))
    assert page.locator("[class*=hprogress]").count() == 0
    assert DONE_LINE.search(map_cell.text)
    assert any("sentiment" in cell.text and "mixed" in cell.text for cell in cells)
    assert not [cell.index for cell in cells if cell.has_errors]
    assert not browser_log.page_errors

    # Saved and reopened (Lab saves no widget state): the static line, no widget.
    page.keyboard.press("Control+s")
    page.locator(".lm-TabBar-tab.jp-mod-dirty").wait_for(state="detached", timeout=30_000)
    saved = json.loads((server.root_dir / NOTEBOOK.name).read_text(encoding="utf-8"))
    outputs = [o for c in saved["cells"] if c["cell_type"] == "code" for o in c["outputs"]]
    assert not [o for o in outputs if WIDGET in o.get("data", {})]
    reopened = browser.new_page()
    try:
        install_output_recorder(reopened)
        reopened.goto(server.lab_url(NOTEBOOK.name))
        reopened.get_by_text("6/6 done").first.wait_for(timeout=60_000)
        again = collect_outputs(reopened)
        save_screenshot(reopened, f"{request.node.name}_reopened")
    finally:
        reopened.close()
    shown = "\n".join(cell.text for cell in again)
    assert "Error displaying widget" not in shown and "model not found" not in shown
    assert DONE_LINE.search(shown)
    assert [cell.text for cell in again if "6 rows" in cell.text] == [
        cell.text for cell in summaries
    ]
