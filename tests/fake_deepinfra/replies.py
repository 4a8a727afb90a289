"""The text a fake model answers, deterministically from its prompt."""

from __future__ import annotations

import re
from typing import Any

# --------------------------------------------------------------------------------------------
# Reply text

_TOKEN_RE = re.compile(r"\s*\S{1,8}|\s+")
_FILLER_WORDS = (
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
    "mike",
    "nova",
    "oscar",
    "papa",
)
_PARAGRAPH_TOKENS = 60


def tokenize(text: str) -> list[str]:
    """Split ``text`` into stream tokens: words with their leading whitespace, at most 8
    non-space characters each; joining the tokens gives back ``text``."""
    return _TOKEN_RE.findall(text)


def default_reply(model: str, prompt: str) -> str:
    """The generated Markdown answer: names the model, echoes the prompt, has a Python block."""
    quoted = "\n".join(f"> {line}" for line in prompt.splitlines()) or "> (empty message)"
    return (
        f"This is **{model}** on the fake DeepInfra server. You wrote:\n\n{quoted}\n\n"
        "Here is a short paragraph so that clients have some Markdown to render. "
        "The same request always gets the same reply.\n\n"
        "```python\n"
        f"prompt = {prompt!r}\n"
        "print(len(prompt))\n"
        "```\n"
    )


def default_reasoning(prompt: str) -> str:
    """The chain of thought a reasoning model streams before answering."""
    return (
        f"The user sent {len(prompt)} characters. I should restate the message, "
        "answer briefly and add a small Python example."
    )


def filler_reply(tokens: int) -> str:
    """``tokens`` tokens of filler words, with a paragraph break every 60 tokens."""
    parts = []
    for i in range(tokens):
        separator = "" if i == 0 else "\n\n" if i % _PARAGRAPH_TOKENS == 0 else " "
        parts.append(separator + _FILLER_WORDS[i % len(_FILLER_WORDS)])
    return "".join(parts)


def _fill_to_bytes(text: str, size: int) -> str:
    """``text`` repeated and cut to exactly ``size`` UTF-8 bytes (padded with dots)."""
    seed = text or "x"
    repeated = seed * (size // max(1, len(seed.encode())) + 1)
    cut = repeated.encode()[:size].decode("utf-8", "ignore")
    return cut + "." * (size - len(cut.encode()))


def _content_text(content: Any) -> str:
    """Text of a message ``content``: a string, or the text parts of a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part["text"]
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    """Text of the last user message: what replies echo and scripts match against."""
    for message in reversed(messages):
        if message.get("role") == "user":
            return _content_text(message.get("content"))
    return ""
