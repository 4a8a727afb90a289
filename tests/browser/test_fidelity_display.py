"""What DeepInfra's real answers look like in JupyterLab: a deprecated model in the list,
and images the safety checker flagged (shapes from tests/fake_deepinfra/)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

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
)

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser


def _notebook(path: Path, *sources: str) -> Path:
    cells = [
        {"cell_type": "code", "id": f"c{n}", "metadata": {}, "execution_count": None,
         "outputs": [], "source": source}
        for n, source in enumerate(sources)
    ]  # fmt: skip
    kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook = {"cells": cells, "metadata": {"kernelspec": kernelspec}, "nbformat": 4,
                "nbformat_minor": 5}  # fmt: skip
    path.write_text(json.dumps(notebook), encoding="utf-8")
    return path


def test_deprecated_model_and_filtered_image_are_visible(
    page: Page,
    jupyterlab_factory: JupyterLabFactory,
    browser_log: BrowserLog,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    with FakeDeepInfra(nsfw_seeds={8}) as fake:
        server = jupyterlab_factory(
            {"DEEPINFRA_BASE_URL": fake.api_url, "DEEPINFRA_API_KEY": CANARY_KEY}
        )
        notebook = _notebook(
            tmp_path / "fidelity.ipynb",
            "%load_ext deepinfra_magic",
            "%deepinfra_models --text 13b",
            "%deepinfra_models llama",
            "%deepinfra_image -n 2 --seed 7 a fox in the snow",
        )
        open_notebook(page, server, notebook)
        run_all_cells(page)
        wait_for_execution_finished(page, timeout_ms=60_000)
        cells = collect_outputs(page)
        save_screenshot(page, request.node.name)
    listing, images = cells[1], cells[3]
    assert "Austism/chronos-hermes-13b-v2 ⚠ deprecated, use Gryphe/MythoMax-L2-13b" in (
        listing.text
    )
    assert len(images.images) >= 2  # each image, then the grid of both
    assert "⚠ image 2 filtered by the safety checker" in images.text
    assert not [cell.index for cell in cells if cell.has_errors]
    assert CANARY_KEY not in "".join(cell.text for cell in cells)
    assert not browser_log.page_errors
