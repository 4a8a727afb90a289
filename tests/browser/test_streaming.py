"""What a person sees of a streamed reply in JupyterLab, against the fake server.

The reply grows live, then stays in the outputs it streamed in (cut at block boundaries)
and its footer, with nothing empty taking space; a paragraph streamed in many lines is one
block all along; Ctrl-C (an interrupt of the kernel) keeps what arrived, marked.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.fake_deepinfra import CANARY_KEY, FakeDeepInfra

from .jupyterlab import (
    BrowserLog,
    JupyterLabFactory,
    JupyterLabServer,
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

CODE = "".join(f"    total_{i} = sum(values[{i}:])\n" for i in range(60))
REPLY = (
    "## A long answer\n\nFirst a paragraph of prose, then code and a table.\n\n"
    f"```python\ndef totals(values):\n{CODE}    return total_0\n```\n\n"
    "| Model | Tokens/s |\n|---|---:|\n"
    + "".join(f"| model-{i} | {100 + i} |\n" for i in range(25))
    + "\nThe end of the answer.\n"
)

# Every child of the cell's output area: its classes, height and text. An output whose
# bundle was emptied is an empty widget; it must take no room.
_OUTPUT_CHILDREN_JS = r"""
(index) => {
  const cell = window.__labRecorder.cell(index);
  const area = cell.querySelector('.jp-OutputArea');
  return Array.from(area.children)
    .filter((el) => !el.classList.contains('jp-OutputArea-promptOverlay'))  // a click target
    .map((el) => ({
    child: el.classList.contains('jp-OutputArea-child'),
    height: el.getBoundingClientRect().height,
    text: el.innerText.trim(),
  }));
}
"""


def _notebook(path: Path, *sources: str) -> Path:
    cells = [
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
    notebook = {"cells": cells, "metadata": {"kernelspec": kernelspec}, "nbformat": 4}
    path.write_text(json.dumps({**notebook, "nbformat_minor": 5}, indent=1), encoding="utf-8")
    return path


def _open_chat(
    page: Page, factory: JupyterLabFactory, server: FakeDeepInfra, path: Path, prompt: str
) -> JupyterLabServer:
    """JupyterLab on ``server``, showing a notebook that loads the extension and asks
    ``prompt`` in a ``%%deepinfra`` cell (not run yet)."""
    lab = factory({"DEEPINFRA_BASE_URL": server.api_url, "DEEPINFRA_API_KEY": CANARY_KEY})
    open_notebook(page, lab, _notebook(path, "%load_ext deepinfra_magic", f"%%deepinfra\n{prompt}"))
    return lab


def _script(server: FakeDeepInfra, reply: str) -> None:
    """The server answers ``reply`` token by token after half a second (a first-token wait)."""
    server.configure(token_delay=0.004, first_byte_delay=0.5)
    server.script_reply(reply)


def _children(page: Page, index: int) -> list[dict[str, Any]]:
    children: list[dict[str, Any]] = page.evaluate(_OUTPUT_CHILDREN_JS, index)
    return children


def test_a_long_reply_streams_then_stays_once_in_its_outputs_and_its_footer(
    page: Page,
    jupyterlab_factory: JupyterLabFactory,
    fake_server: FakeDeepInfra,
    browser_log: BrowserLog,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    _script(fake_server, REPLY)
    _open_chat(page, jupyterlab_factory, fake_server, tmp_path / "long.ipynb", "Go")
    run_all_cells(page)
    wait_for_execution_finished(page)
    wait_for_output(page, 1, text="tok/s")
    screenshot = save_screenshot(page, request.node.name)

    # It grew live through several states, each a piece of the reply.
    history = get_output_history(page, 1)
    assert len(history) >= 4, history
    assert "Asking" in history[0]
    # At the end: the rendered reply once (its blocks in the outputs it streamed in), then
    # the footer, and no output empty.
    children = _children(page, 1)
    shown = [child for child in children if child["child"]]
    *parts, footer = shown
    assert parts and all(part["text"] for part in parts), children
    answer = "\n".join(part["text"] for part in parts)
    assert answer.startswith("A long answer")
    assert answer.count("The end of the answer.") == 1
    assert footer["text"].startswith("meta-llama/Llama-3.3-70B-Instruct-Turbo · ")
    assert all(c["height"] == 0 and not c["text"] for c in children if not c["child"])
    (cell,) = [c for c in collect_outputs(page) if c.index == 1]
    assert len(cell.code_blocks) == 1 and "total_59 = sum(values[59:])" in cell.code_blocks[0]
    assert sum("<table" in output.html for output in cell.outputs) == 1
    assert not browser_log.page_errors
    assert screenshot.stat().st_size > 0


def test_an_interrupted_reply_keeps_the_text_marked_as_stopped(
    page: Page,
    jupyterlab_factory: JupyterLabFactory,
    fake_server: FakeDeepInfra,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    fake_server.configure(reply_tokens=3000, token_delay=0.005)  # 15 s unless stopped
    lab = _open_chat(page, jupyterlab_factory, fake_server, tmp_path / "stop.ipynb", "Count")
    run_all_cells(page)
    wait_for_output(page, 1, text="charlie")  # text is on screen
    (session,) = lab.api("GET", "api/sessions")
    lab.api("POST", f"api/kernels/{session['kernel']['id']}/interrupt")  # the ■ button
    wait_for_execution_finished(page)
    wait_for_output(page, 1, text="interrupted ·")
    save_screenshot(page, request.node.name)

    shown = [child for child in _children(page, 1) if child["child"]]
    answer, footer, error = shown
    kept, _, note = answer["text"].partition("⏹ Interrupted")
    assert kept.startswith("alpha bravo charlie")
    assert note.startswith(": the partial reply is kept")
    assert footer["text"].startswith("⏹ interrupted · ")
    assert "KeyboardInterrupt" in error["text"]
    assert fake_server.wait_for_disconnect(timeout=10)


PARAGRAPHS = 6
LINES = 14  # each paragraph soft-wrapped over this many lines, as models write
WRAPPED = "\n\n".join(
    "".join(f"Words of paragraph {k}, on line {i}, wrapped like prose.\n" for i in range(LINES))
    for k in range(PARAGRAPHS)
)

# Installed before the run: at every change of the cell's outputs, how many rendered
# paragraphs hold words of each paragraph of the reply, how many outputs show text, and
# whether the reply has all arrived (the finished reply is then published and the live
# outputs emptied: the streaming is over).
_WATCH_PARAGRAPHS_JS = r"""
([index, count, lines]) => {
  const area = window.__labRecorder.cell(index).querySelector('.jp-OutputArea');
  window.__paragraphStates = [];
  const look = () => {
    const shown = Array.from(area.querySelectorAll('.jp-RenderedMarkdown p'));
    const pieces = [];
    for (let k = 0; k < count; k++) {
      pieces.push(shown.filter((p) => p.innerText.includes(`paragraph ${k},`)).length);
    }
    const outputs = Array.from(area.querySelectorAll('.jp-OutputArea-output'))
      .filter((el) => el.innerText.trim()).length;
    const done = area.innerText.includes(`paragraph ${count - 1}, on line ${lines - 1},`);
    window.__paragraphStates.push({pieces, outputs, done});
  };
  new MutationObserver(look).observe(area, {childList: true, subtree: true, characterData: true});
}
"""


def test_a_paragraph_streamed_in_many_lines_shows_as_one_block_while_it_streams(
    page: Page,
    jupyterlab_factory: JupyterLabFactory,
    fake_server: FakeDeepInfra,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    _script(fake_server, WRAPPED)
    _open_chat(page, jupyterlab_factory, fake_server, tmp_path / "wrapped.ipynb", "Go")
    page.evaluate(_WATCH_PARAGRAPHS_JS, [1, PARAGRAPHS, LINES])
    run_all_cells(page)
    wait_for_output(page, 1, text="paragraph 2, on line 5")  # mid-reply
    save_screenshot(page, f"{request.node.name}_streaming")
    wait_for_execution_finished(page)
    wait_for_output(page, 1, text="tok/s")
    save_screenshot(page, request.node.name)

    states: list[dict[str, Any]] = page.evaluate("() => window.__paragraphStates")
    streaming = [state for state in states if not state["done"]]
    assert len(streaming) >= 10
    # While it streamed, the reply was split over several outputs (frozen parts)...
    assert max(state["outputs"] for state in streaming) >= 3
    # ...and yet no paragraph ever showed as more than one block.
    split = [state for state in streaming if max(state["pieces"]) > 1]
    assert not split, split
    assert states[-1]["pieces"] == [1] * PARAGRAPHS
