"""Currency in Markdown stays currency for Jupyter's MathJax; math, code and prompts stay as
written. What the browser then shows is checked in tests/browser/test_rendering.py."""

from __future__ import annotations

import pytest

from deepinfra_magic._markdown import (
    closes_fence,
    escape_dollars,
    first_code_block,
    opens_fence,
    verbatim,
)

D = "[]()\\$[]()"  # reads "$" in every renderer and pairs with no other dollar


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("$0.23 in / $0.40 out per 1M tok", f"{D}0.23 in / {D}0.40 out per 1M tok"),
        ("costs $0.03 per million and $0.05", f"costs {D}0.03 per million and {D}0.05"),
        ("from $5-$10, or US$3", f"from {D}5-{D}10, or US{D}3"),
        ("a lone $ sign", f"a lone {D} sign"),
        ("<$0.0001", f"<{D}0.0001"),
        # The model's own "\$" is also only a dollar to Markdown, not to MathJax.
        (r"it costs \$4", f"it costs {D}4"),
        # Math: $…$ opens before a non-space, closes after one, not before a digit.
        ("so $x^2$ grows", "so $x^2$ grows"),
        ("$$\\int f$$", "$$\\int f$$"),
        ("$$\n\\sum_i x_i\n$$", "$$\n\\sum_i x_i\n$$"),
        ("pay $5, and $y = 2x$ holds", f"pay {D}5, and $y = 2x$ holds"),
        ("$\\$5$ in math", "$\\$5$ in math"),
        # A paragraph break ends any math.
        ("$a\n\nb$", f"{D}a\n\nb{D}"),
        # Code keeps its dollars.
        ("run `echo $HOME` for $2", f"run `echo $HOME` for {D}2"),
        ("``a ` $b`` then $3", f"``a ` $b`` then {D}3"),
        ("```bash\nexport A=$B\n```\nand $4", f"```bash\nexport A=$B\n```\nand {D}4"),
        ("~~~\n$x\n", "~~~\n$x\n"),  # an unclosed fence runs to the end
        # Fences in list items and in quoted reasoning are code too.
        (
            "1. run\n\n    ```sh\n    echo $A\n    ```\n$5",
            f"1. run\n\n    ```sh\n    echo $A\n    ```\n{D}5",
        ),
        ("> ```\n> cost=$x\n> ```\n> $5", f"> ```\n> cost=$x\n> ```\n> {D}5"),
        ("no dollars at all", "no dollars at all"),
    ],
)
def test_escape_dollars(markdown: str, expected: str) -> None:
    assert escape_dollars(markdown) == expected


def test_verbatim_fences_longer_than_any_backticks_inside() -> None:
    assert verbatim("2*3\n  x") == "```text\n2*3\n  x\n```"
    prompt = "see ```py\nprint(1)\n```"
    assert verbatim(prompt) == f"````text\n{prompt}\n````"


@pytest.mark.parametrize(
    ("text", "body"),
    [
        ("Here:\n\n```python\nprint(1)\n```\n\nand ```more```", "print(1)"),
        ("~~~~\na\n~~~\nb\n~~~~~\n", "a\n~~~\nb"),  # closed by a run at least as long
        ("- item\n\n  ```\n  x = 1\n  ```\n", "  x = 1"),  # in a list item
        ("```\nnever closed", None),
        ("``` a`b\nnot a fence\n```", None),  # a backtick fence's info has no backtick
    ],
)
def test_first_code_block_follows_the_one_fence_grammar(text: str, body: str | None) -> None:
    assert first_code_block(text) == body


def test_a_fence_opens_and_closes_in_a_blockquote_too() -> None:
    assert opens_fence("> ```python") == "```"
    assert closes_fence("> ````", "```") and not closes_fence("> ``` x", "```")
    assert not closes_fence("~~~", "```")


def test_verbatim_names_the_language() -> None:
    assert verbatim("x = 1", "python") == "```python\nx = 1\n```"
