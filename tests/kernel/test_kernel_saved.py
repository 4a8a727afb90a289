"""Notebooks of replies and of images executed by nbclient and exported by nbconvert: a
saved notebook holds no output with empty data (which nbconvert warns about and renders as
an empty box), whatever way each reply ended: short, long (streamed over several outputs),
with reasoning, or failed before anything arrived; nor any image cell, with one image,
several, or none."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient
from nbconvert import HTMLExporter

from tests.fake_deepinfra import FakeDeepInfra
from tests.kernel_helpers import MARKDOWN, PLAIN, magic_process_env

pytestmark = pytest.mark.kernel

LONG = "\n\n".join(
    "".join(f"Paragraph {k} goes on, line {i} of it, as a model writes.\n" for i in range(8))
    for k in range(40)
)


def _execute(server: FakeDeepInfra, root: Path, sources: list[str]) -> Any:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    for cell in nb.cells[-1:]:
        cell.metadata["tags"] = ["raises-exception"]
    client = NotebookClient(nb, timeout=60, kernel_name="python3")
    client.execute(env=magic_process_env(server.api_url, root))
    return nb


def test_saved_replies_hold_no_empty_output_and_nbconvert_has_nothing_to_warn_about(
    fake_server: FakeDeepInfra, tmp_path: Path
) -> None:
    fake_server.configure(token_delay=0.0005)
    fake_server.script_reply(LONG)
    nb = _execute(
        fake_server,
        tmp_path,
        [
            "%load_ext deepinfra_magic",
            "%config DeepInfraMagics.update_interval = 0.01",
            "%%deepinfra --max-tokens 100000\nWrite at length",  # the scripted long reply
            "%%deepinfra -m deepseek-ai/DeepSeek-R1 --new\nWhy is the sky blue?",
            "%%deepinfra -m nobody/no-such-model --new\nHi",
        ],
    )
    assert not _empty_outputs(nb)
    # The long reply streamed over several outputs and ends cut at paragraph ends there.
    *parts, footer = nb.cells[2].outputs
    assert len(parts) > 1 and footer["data"][PLAIN].startswith("meta-llama/")
    assert "".join(part["data"][PLAIN] for part in parts) == LONG
    assert all(part["data"][MARKDOWN].endswith("\n\n") for part in parts[:-1])
    assert not _html_export_warnings(nb)


def test_saved_image_cells_hold_no_empty_output_and_nbconvert_has_nothing_to_warn_about(
    fake_server: FakeDeepInfra, tmp_path: Path
) -> None:
    nb = _execute(
        fake_server,
        tmp_path,
        [
            "%load_ext deepinfra_magic",
            "%deepinfra_image --seed 7 a red square",
            "%deepinfra_image -n 3 --seed 1 three owls",
            "%deepinfra_image -m nobody/no-such-image-model a cat",
        ],
    )
    assert not _empty_outputs(nb)
    # The progress line ends saying what was made, above the images; the caption below.
    done, image, caption = nb.cells[1].outputs
    assert done["data"][PLAIN].startswith("✓ Generated an image with ")
    assert "image/png" in image["data"] and "seed 7" in caption["data"][PLAIN]
    three = nb.cells[2].outputs
    assert three[0]["data"][PLAIN].startswith("✓ Generated 3 images with ")
    assert sum("image/png" in o["data"] for o in three) == 3
    assert "seeds 1, 2, 3" in three[-1]["data"][PLAIN]
    assert not _html_export_warnings(nb)


def _empty_outputs(nb: Any) -> list[Any]:
    outputs = [output for cell in nb.cells for output in cell.outputs]
    return [o for o in outputs if o["output_type"] == "display_data" and not o["data"]]


def _html_export_warnings(nb: Any) -> list[str]:
    """What nbconvert's HTML export warns about outputs it cannot represent."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        HTMLExporter().from_notebook_node(nb)
    return [str(w.message) for w in caught if "not able to be represented" in str(w.message)]
