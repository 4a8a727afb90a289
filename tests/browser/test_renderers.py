"""Prices read as written, and math stays math, in every renderer a notebook meets.

Each test renders what `escape_dollars` makes of a reply, reads the text a person sees
(`tests/browser/renderers.py`: math typeset as ⟦…⟧) and compares it with what the model
wrote. The renderers: JupyterLab, Notebook 7 and Voilà (offline, and with MathJax 2 from
npm's package instead of its CDN), nbconvert's
HTML export opened from a file with every network request refused, once with a local
MathJax and once without (its CDN unreachable: the offline reading), and VS Code's
markdown-it + KaTeX (tests/node/test_markdown_it.py, no browser).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from deepinfra_magic._markdown import escape_dollars

from .jupyterlab import JupyterLabFactory, JupyterLabServer, start_jupyterlab
from .renderers import (
    MATHJAX2,
    ensure_node_packages,
    read_jupyter,
    read_nbconvert,
    voila_mathjax_config,
)

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

# What models write: prices (one, two in a paragraph, after "<"), a lone sign, the model's
# own "\$", next to inline and display math.
REPLIES = (
    "It costs $0.23 in / $0.40 out, under <$0.0001 a token, and grows as $x^2$.\n\n$$\\int f$$",
    "From $5-$10, or US$3; a lone $ sign, \\$4, and $y = 2x$ holds.",
    "| model | price |\n|---|---|\n| llama | $0.23 in / $0.40 out |\n\nSo $n \\log n$ wins.",
)
# The text a person reads, math replaced by ⟦⟧, when MathJax runs and when it does not.
WITH_MATH = (
    "It costs $0.23 in / $0.40 out, under <$0.0001 a token, and grows as ⟦⟧.\n\n⟦⟧",
    "From $5-$10, or US$3; a lone $ sign, $4, and ⟦⟧ holds.",
    "model\tprice\nllama\t$0.23 in / $0.40 out\n\nSo ⟦⟧ wins.",
)
WITHOUT_MATH = (
    "It costs $0.23 in / $0.40 out, under <$0.0001 a token, and grows as $x^2$.\n\n$$\\int f$$",
    "From $5-$10, or US$3; a lone $ sign, $4, and $y = 2x$ holds.",
    "model\tprice\nllama\t$0.23 in / $0.40 out\n\nSo $n \\log n$ wins.",
)


def _math_as_slots(readings: list[str]) -> list[str]:
    """Readings with each typeset formula as ``⟦⟧`` (renderers spell math differently)."""
    return [re.sub(r"⟦[^⟧]*⟧", "⟦⟧", reading) for reading in readings]


@pytest.fixture(scope="module")
def escaped() -> list[str]:
    """The replies as the display layer sends them."""
    return [escape_dollars(reply) for reply in REPLIES]


@pytest.mark.parametrize("frontend", ["lab", "notebook7"])
def test_jupyter_frontends_read_prices_and_typeset_math(
    frontend: str,
    page: Page,
    jupyterlab_factory: JupyterLabFactory,
    escaped: list[str],
) -> None:
    readings = read_jupyter(page, jupyterlab_factory(), frontend, escaped, frontend)  # type: ignore[arg-type]
    assert _math_as_slots(readings) == list(WITH_MATH)


def test_voila_offline_reads_prices_and_math_as_written(
    page: Page, jupyterlab_factory: JupyterLabFactory, escaped: list[str]
) -> None:
    server = jupyterlab_factory()
    readings = read_jupyter(page, server, "voila", escaped, "voila", math=False)
    assert readings == list(WITHOUT_MATH)


@pytest.fixture(scope="module")
def voila_with_mathjax(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterLabServer]:
    """A Jupyter server whose Voilà loads MathJax 2 from npm's package, not its CDN."""
    base = tmp_path_factory.mktemp("voila-mathjax")
    voila_mathjax_config(base / "jupyter-config")  # isolated_env's JUPYTER_CONFIG_DIR
    server = start_jupyterlab(base)
    yield server
    server.stop()


def test_voila_with_local_mathjax_reads_prices_and_typesets_math(
    page: Page, voila_with_mathjax: JupyterLabServer, escaped: list[str]
) -> None:
    readings = read_jupyter(page, voila_with_mathjax, "voila", escaped, "voila-mathjax")
    assert _math_as_slots(readings) == list(WITH_MATH)


@pytest.mark.parametrize("mathjax", [True, False], ids=["local-mathjax", "offline"])
def test_nbconvert_html_reads_prices_with_and_without_mathjax(
    mathjax: bool, page: Page, escaped: list[str], tmp_path: Path
) -> None:
    if mathjax:
        ensure_node_packages()
        assert MATHJAX2.is_file()
    shot = f"renderers-nbconvert-{'mathjax' if mathjax else 'offline'}"
    readings = read_nbconvert(page, escaped, tmp_path, mathjax=mathjax, shot=shot)
    if mathjax:
        assert _math_as_slots(readings) == list(WITH_MATH)
    else:
        assert readings == list(WITHOUT_MATH)
