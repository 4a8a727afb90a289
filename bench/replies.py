"""Realistic replies for the streaming benchmarks, and how a model would tokenize them.

* ``mixed_reply(size)``: prose paragraphs, a 300-line Python block and a table, repeated
  (with numbered sections) until ``size`` bytes.
* ``run_on_reply(size)``: one paragraph with no line break at all.

Tokens are about 4 characters, like a BPE tokenizer's on English text and code.
"""

from __future__ import annotations

import re

__all__ = ["mixed_reply", "run_on_reply", "tokens_of"]

_PROSE = (
    "Streaming a long answer should feel like reading over someone's shoulder: the text "
    "grows steadily, the code block fills line by line and nothing jumps. Each update "
    "costs the browser a render, so the view sends only what changed, at a steady pace, "
    "and freezes what is finished. The numbers below were measured, not guessed: 42 ms, "
    "3.5 MB and 1,000 tokens a second are ordinary figures for a chat model today."
)
_TOKEN = re.compile(r"\s*\S{1,4}|\s+")


def _code_block(lines: int, section: int) -> str:
    body = [
        f"def step_{section}_{i}(values: list[float], scale: float = {i % 7 + 1}.0) -> float:"
        if i % 10 == 0
        else f"    total_{i} = sum(v * scale for v in values[{i % 5}:])  # line {i}"
        for i in range(lines)
    ]
    return "```python\n" + "\n".join(body) + "\n```\n"


def _table(rows: int, section: int) -> str:
    head = "| Model | Tokens/s | First token | Cost |\n|---|---:|---:|---:|\n"
    return head + "".join(
        f"| model-{section}-{i} | {100 + 37 * i} | {0.1 + i / 100:.2f} s | ${i / 1000:.4f} |\n"
        for i in range(rows)
    )


def mixed_reply(size: int) -> str:
    """Prose, a 300-line code block and a table, repeated to ``size`` bytes (at least one
    of each; the cut falls wherever ``size`` lands)."""
    parts: list[str] = []
    section = 0
    while sum(len(part) for part in parts) < size:
        section += 1
        parts += [
            f"## Part {section}\n\n",
            f"{_PROSE}\n\n{_PROSE}\n\n",
            _code_block(300, section),
            "\n",
            f"{_PROSE}\n\n",
            _table(20, section),
            "\n",
        ]
    return "".join(parts)[:size]


def run_on_reply(size: int) -> str:
    """A reply of ``size`` bytes with no line break at all (one very long paragraph)."""
    return ((_PROSE + " ") * (size // len(_PROSE) + 1))[:size]


def tokens_of(text: str) -> list[str]:
    """``text`` split into model-like tokens of up to 4 characters (joined, it is ``text``)."""
    return _TOKEN.findall(text)
