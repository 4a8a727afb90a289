"""What a person reads in JupyterLab: prices stay prices, math stays math, images in order.

The kernel talks to the fake DeepInfra server; the assertions read the rendered text of
each output (after MathJax) and the decoded images, not the messages the kernel sent.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import nbformat
import pytest

from tests.fake_deepinfra import CANARY_KEY, FakeDeepInfra

from .jupyterlab import (
    BrowserLog,
    JupyterLabFactory,
    collect_outputs,
    open_notebook,
    run_all_cells,
    save_screenshot,
    wait_for_execution_finished,
    wait_for_output,
)

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

PROMPT = "What does it cost?"
REPLY = (
    "It costs $0.03 per million and $0.05 per call.\n\n"
    "The work grows as $x^2$, and in total\n\n$$\\int f$$\n\n"
    "Check with `echo $HOME`."
)
CELLS = (
    "%load_ext deepinfra_magic",
    "%deepinfra_models --text",
    f"%%deepinfra\n{PROMPT}",
    "%deepinfra_history",
    "%deepinfra_image -n 3 --seed 42 three foxes",
)
MODELS, CHAT, HISTORY, IMAGES = 1, 2, 3, 4

# The math elements MathJax made in one cell's outputs, as the text each one stands for.
_MATH_JS = """(index) => {
  const cell = window.__labRecorder.cell(index);
  return Array.from(cell.querySelectorAll('.jp-OutputArea-output mjx-container'))
    .map((el) => (el.querySelector('mjx-assistive-mml') || el).textContent);
}"""


def _notebook(path: Path, *sources: str) -> Path:
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    nbformat.write(notebook, path)
    return path


def test_prices_read_as_written_and_math_renders(
    page: Page,
    jupyterlab_factory: JupyterLabFactory,
    fake_server: FakeDeepInfra,
    browser_log: BrowserLog,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    server = jupyterlab_factory(
        {"DEEPINFRA_API_KEY": CANARY_KEY, "DEEPINFRA_BASE_URL": fake_server.api_url}
    )
    fake_server.script_reply(REPLY, match=PROMPT)
    # The images arrive as seeds 43, 44, 42; they must show as 42, 43, 44.
    fake_server.configure(image_delay_by_seed={42: 0.6, 43: 0.0, 44: 0.3})
    open_notebook(page, server, _notebook(tmp_path / "dollars.ipynb", *CELLS))
    run_all_cells(page)
    wait_for_execution_finished(page)
    # "$0.23 in / $0.40 out" appears only once MathJax has read the escaped dollars (before,
    # the text reads "\$0.23"), so these waits also wait for the typesetting.
    wait_for_output(page, MODELS, text="$0.23 in / $0.40 out per 1M tok")
    wait_for_output(page, CHAT, text="costs $0.03 per million and $0.05 per call")
    wait_for_output(page, HISTORY, text="costs $0.03 per million and $0.05 per call")
    cells = collect_outputs(page)
    save_screenshot(page, request.node.name)

    # The models table: every price as written, and no math anywhere in it.
    models = cells[MODELS]
    assert "$0.0005 / image" not in models.text  # --text lists no image models
    assert "$0.03 in / $0.05 out per 1M tok" in models.text
    assert page.evaluate(_MATH_JS, MODELS) == []

    # The reply: prices as written, the two formulas as math, code as code.
    reply = cells[CHAT]
    assert page.evaluate(_MATH_JS, CHAT) == ["x2", "∫f"]
    assert "echo $HOME" in reply.text
    footer = reply.outputs[-1].text
    assert "$0.0" in footer or "<$0.0001" in footer  # the cost, not LaTeX
    assert not reply.has_errors

    # The history: the prompt verbatim, the reply's prices and math as in the reply.
    history = cells[HISTORY]
    assert [block.strip() for block in history.code_blocks] == [PROMPT]
    assert page.evaluate(_MATH_JS, HISTORY) == ["x2", "∫f"]

    # Images: the progress line ended in place saying what was made, then the images in
    # request order, each under its number and seed, with real pixels; then the caption (a
    # fresh output, so that frontends that ignore updates show it too).
    images = cells[IMAGES]
    shown = [(item.mime_type, item.text.strip()) for item in images.outputs]
    assert shown[0] == (
        "text/markdown",
        "✓ Generated 3 images with black-forest-labs/FLUX-1-schnell",
    )
    assert shown[-1][1].startswith("black-forest-labs/FLUX-1-schnell · seeds 42, 43, 44")
    assert shown[1:-1] == [
        ("text/markdown", "1 of 3 · seed 42"),
        ("image/png", ""),
        ("text/markdown", "2 of 3 · seed 43"),
        ("image/png", ""),
        ("text/markdown", "3 of 3 · seed 44"),
        ("image/png", ""),
    ]
    assert len(images.images) == 3
    assert all(image.natural_width > 0 for image in images.images)
    assert not browser_log.page_errors
