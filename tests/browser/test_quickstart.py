"""What a person sees running the quickstart in JupyterLab, replaying its recording.

The replay runs at the recorded pace, so the chat text visibly grows while streaming.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .jupyterlab import (
    BrowserLog,
    JupyterLabFactory,
    collect_outputs,
    get_output_history,
    open_notebook,
    run_all_cells,
    save_screenshot,
    wait_for_execution_finished,
    wait_for_output,
)

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
QUICKSTART = EXAMPLES / "quickstart.ipynb"
RECORDING = EXAMPLES / "quickstart.recording.json"
FIRST_CHAT = 6  # "Explain in three sentences what a Python generator is."
REPLAYED = "replayed from quickstart.recording.json"


def test_quickstart_streams_renders_and_shows_the_image(
    page: Page,
    jupyterlab_factory: JupyterLabFactory,
    browser_log: BrowserLog,
    request: pytest.FixtureRequest,
) -> None:
    server = jupyterlab_factory({"DEEPINFRA_MAGIC_REPLAY_SPEED": "1"})
    open_notebook(page, server, QUICKSTART, extra_files=[RECORDING])
    run_all_cells(page)
    # `%%deepinfra -f code` inserts the reply's code as a new cell, which Run All leaves be.
    wait_for_execution_finished(page, timeout_ms=180_000, inserted_cells=1)
    wait_for_output(page, FIRST_CHAT, text=REPLAYED)
    cells = collect_outputs(page)
    save_screenshot(page, request.node.name)

    # The first reply grew through at least two distinct states before the final one,
    # starting from the placeholder that names the model. (At the end the finished text is
    # laid over the outputs it streamed in, one update each, and the footer shows: not growth.)
    history = get_output_history(page, FIRST_CHAT)
    *intermediate, final = history
    replies = [text for text in intermediate if "Asking" not in text and REPLAYED not in text]
    growing = list(itertools.takewhile(lambda pair: len(pair[0]) < len(pair[1]),
                                       itertools.pairwise(replies)))  # fmt: skip
    assert len(growing) >= 1, history
    assert "Asking meta-llama/Llama-3.3-70B-Instruct-Turbo" in history[0]
    assert "generator" in final and REPLAYED in final

    # The final Markdown renders: the follow-up's code block is a real code element.
    code_cells = [cell for cell in cells if any("def countdown" in c for c in cell.code_blocks)]
    assert code_cells, "the countdown example should render as a code block"

    # The image renders as an <img> with real pixels, with its caption.
    pictures = [image for cell in cells for image in cell.images]
    assert len(pictures) == 1
    assert (pictures[0].natural_width, pictures[0].natural_height) == (512, 512)
    assert any("seed 7" in cell.text and REPLAYED in cell.text for cell in cells)

    # Footers show, and nothing went wrong.
    assert sum("tokens" in cell.text and REPLAYED in cell.text for cell in cells) >= 4
    assert not [cell.index for cell in cells if cell.has_errors]
    inserted = [cell for cell in cells if cell.cell_type == "code" and cell.execution_count is None]
    assert len(inserted) == 1  # the fib() code block, put below its cell by -f code
    assert not browser_log.page_errors
