"""Markdown for Jupyter's renderers (pure): currency stays currency, math stays math.

JupyterLab, Notebook 7, Voilà and nbconvert's HTML render Markdown, then let MathJax scan
the *rendered text* for ``$…$``, where any two dollars of one run of text pair up; VS Code's
markdown-it + KaTeX and an HTML export opened offline show the rendered text as it is. So a
price needs a dollar that is a plain ``$`` in the rendered text yet never pairs: the
Markdown escape ``\\$`` (which no Markdown or math pre-parser takes for a delimiter) between
two empty links ``[]()``, which show and copy as nothing: MathJax never pairs across an
element. Every renderer then reads ``$0.23`` (tests/browser/test_renderers.py reads each).
Empty images would do for MathJax, but Voilà shows them as broken-image icons.
"""

from __future__ import annotations

import re

__all__ = [
    "ESCAPED_DOLLAR",
    "closes_fence",
    "escape_dollars",
    "first_code_block",
    "opens_fence",
    "verbatim",
]

ESCAPED_DOLLAR = "[]()\\$[]()"
"""An escaped dollar between empty links: reads ``$`` everywhere, pairs with no other ``$``."""

# The one fence grammar of the package. A fence may sit in a list item (indented) or a
# blockquote (the reasoning is quoted): its line may start with any indentation and ">"
# markers; the marker is three or more backticks or tildes.
_LINE_PREFIX = re.compile(r"(?:[ \t]*>)*[ \t]*")
_FENCE = re.compile(r"(?:[ \t]*>)*[ \t]*(`{3,}|~{3,})")
# In text outside code: a backslash escape, a backtick run, or one or two dollars.
_TOKEN = re.compile(r"\\.|`+|\$\$?", re.DOTALL)
# Inside inline math: an escaped character, the closing dollar, or a paragraph break.
_MATH_INNER = re.compile(r"\\.|\$|\n[ \t]*\n", re.DOTALL)
_BLANK_LINE = re.compile(r"\n[ \t]*\n")


def escape_dollars(markdown: str) -> str:
    """Escape every ``$`` that is not part of math, outside code blocks and code spans.

    Math follows pandoc's rule: ``$…$`` opens before a non-space and closes after a
    non-space, not followed by a digit, within a paragraph (so ``$0.23 in / $0.40 out``
    is two prices); ``$$…$$`` is display math. A ``\\$`` written by the model is a dollar.
    """
    if "$" not in markdown:
        return markdown
    return "".join(
        part if is_code else _escape_text(part) for is_code, part in _split_fences(markdown)
    )


def opens_fence(line: str) -> str:
    """The marker (```` ``` ````, ``~~~``, ...) when ``line`` opens a code fence, else ``""``."""
    match = _FENCE.match(line)
    # A backtick fence's info string may not contain backticks (CommonMark 4.5).
    if match is None or (match.group(1)[0] == "`" and "`" in line[match.end() :]):
        return ""
    return match.group(1)


def closes_fence(line: str, marker: str) -> bool:
    """True when ``line`` closes the fence opened by ``marker``: the same character, at
    least as many of them, and nothing else on the line."""
    body = _LINE_PREFIX.sub("", line, count=1).strip()
    return body.startswith(marker) and body == marker[0] * len(body)


def _split_fences(text: str) -> list[tuple[bool, str]]:
    """The text cut into (is fenced code, part); an unclosed fence runs to the end."""
    parts: list[tuple[bool, str]] = []
    current: list[str] = []
    fence = ""
    for line in text.splitlines(keepends=True):
        if not fence:
            fence = opens_fence(line)
            if fence and current:
                parts.append((False, "".join(current)))
                current = []
            current.append(line)
            continue
        current.append(line)
        if closes_fence(line, fence):
            parts.append((True, "".join(current)))
            current, fence = [], ""
    if current:
        parts.append((bool(fence), "".join(current)))
    return parts


def _escape_text(text: str) -> str:
    """Escape the dollars of Markdown text that has no fenced code."""
    out: list[str] = []
    copied = 0  # text[:copied] is already in out
    position = 0
    while (match := _TOKEN.search(text, position)) is not None:
        token, start, position = match.group(), match.start(), match.end()
        if token[0] == "\\":
            if token == "\\$":  # the model meant a dollar; Jupyter would still see LaTeX
                out += [text[copied:start], ESCAPED_DOLLAR]
                copied = position
            continue
        if token[0] == "`":
            position = _code_span_end(text, position, len(token))
            continue
        end = (
            _display_math_end(text, position) if token == "$$" else _inline_math_end(text, position)
        )
        if end is not None:
            position = end
            continue
        out += [text[copied:start], ESCAPED_DOLLAR * len(token)]
        copied = position
    out.append(text[copied:])
    return "".join(out)


def _code_span_end(text: str, after: int, length: int) -> int:
    """Where a code span opened by ``length`` backticks ends; ``after`` if it never closes."""
    for run in re.finditer(r"`+", text[after:]):
        if len(run.group()) == length:
            return after + run.end()
    return after


def _display_math_end(text: str, after: int) -> int | None:
    """The end of ``$$…$$`` opened just before ``after``, within a paragraph."""
    close = text.find("$$", after)
    if close <= after or _BLANK_LINE.search(text, after, close):
        return None
    return close + 2


def _inline_math_end(text: str, after: int) -> int | None:
    """The end of ``$…$`` opened just before ``after``, or None when it is no math."""
    if after >= len(text) or text[after].isspace():
        return None
    for match in _MATH_INNER.finditer(text, after):
        if match.group() != "$":
            if match.group()[0] == "\\":
                continue
            return None  # a paragraph break: no math
        close = match.start()
        follows = text[close + 1 : close + 2]
        if close == after or text[close - 1].isspace() or follows.isdigit():
            return None
        return close + 1
    return None


def verbatim(text: str, language: str = "text") -> str:
    """``text`` as a fenced code block that shows it exactly as typed (newlines, code,
    asterisks): the package's one fence writer, longer than any backtick run inside."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language}\n{text}\n{fence}"


def first_code_block(text: str) -> str | None:
    """The body of the first closed fenced code block in Markdown, or None."""
    body: list[str] = []
    fence = ""
    for line in text.splitlines(keepends=True):
        if not fence:
            fence = opens_fence(line)
        elif closes_fence(line, fence):
            return "".join(body).rstrip("\n")
        else:
            body.append(line)
    return None
