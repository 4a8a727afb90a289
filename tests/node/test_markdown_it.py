"""VS Code's notebook Markdown renderer, approximated by npm markdown-it with
@vscode/markdown-it-katex (read in node, no browser): prices read as written, math is KaTeX.

The npm packages are installed into build/node from the npm registry on first use; the
test skips where node or npm is missing (CI sets DEEPINFRA_MAGIC_REQUIRE_NODE=1 to fail).
"""

from __future__ import annotations

import os
import shutil

import pytest

from deepinfra_magic._markdown import escape_dollars
from tests.browser.renderers import read_vscode
from tests.browser.test_renderers import REPLIES

# markdown-it's reading: tables as cell texts, KaTeX keeps the TeX.
EXPECTED = (
    "It costs $0.23 in / $0.40 out, under <$0.0001 a token, and grows as ⟦x^2⟧.\n\n⟦\\int f⟧",
    "From $5-$10, or US$3; a lone $ sign, $4, and ⟦y = 2x⟧ holds.",
    "model\n\nprice\n\nllama\n\n$0.23 in / $0.40 out\n\nSo ⟦n \\log n⟧ wins.",
)
# The escape the display layer used before: right only where MathJax runs.
OLD_DOLLAR = "&#92;&#36;"


@pytest.fixture(scope="module", autouse=True)
def _node() -> None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        if os.environ.get("DEEPINFRA_MAGIC_REQUIRE_NODE") == "1":
            pytest.fail("node and npm are required (scripts/ensure-node installs them)")
        pytest.skip("node or npm is not installed (scripts/ensure-node installs them)")


def test_vscode_reads_prices_as_written_and_math_as_katex() -> None:
    assert read_vscode([escape_dollars(reply) for reply in REPLIES]) == list(EXPECTED)


def test_the_old_entity_escape_shows_a_backslash_in_vscode() -> None:
    (reading,) = read_vscode([f"It costs {OLD_DOLLAR}0.23"])
    assert reading == "It costs \\$0.23"
