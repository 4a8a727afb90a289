"""Text hygiene for everything shown to users: no credential, one line, bounded length.

Errors redact their message at construction with these; so do the parsers of error bodies
and the recordings.
"""

from __future__ import annotations

import re

__all__ = ["MIN_SECRET_LENGTH", "one_line", "redact", "shorten"]

_SECRET_PATTERNS = (
    re.compile(r"(?i)\bbearer\s+[^\s\"',;]+"),
    re.compile(r"\bsk-[A-Za-z0-9_\-]{6,}"),
    re.compile(r"(?i)(api[_-]?key|token)([\"']?\s*[:=]\s*[\"']?)[A-Za-z0-9_\-]{12,}"),
    # A JWT (a scoped token, "jwt:eyJ..."), also inside a URL's query string.
    re.compile(r"eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*"),
)


# Keys shorter than this are placeholders for servers that need none ("x", "EMPTY"):
# masking every occurrence of them would mangle the text and protect nothing.
MIN_SECRET_LENGTH = 8


def redact(text: str, *secrets: str) -> str:
    """Mask anything that looks like a credential, plus the given secret values."""
    for secret in secrets:
        if len(secret) >= MIN_SECRET_LENGTH:
            text = text.replace(secret, "[redacted]")
    text = _SECRET_PATTERNS[0].sub("Bearer [redacted]", text)
    text = _SECRET_PATTERNS[1].sub("sk-[redacted]", text)
    text = _SECRET_PATTERNS[2].sub(r"\1\2[redacted]", text)
    return _SECRET_PATTERNS[3].sub("[redacted]", text)


def one_line(text: str) -> str:
    """Collapse whitespace (including newlines) so a message stays on one line."""
    return " ".join(text.split())


def shorten(text: str, limit: int = 200) -> str:
    """One line of at most ``limit`` characters, marked with an ellipsis when cut."""
    flat = one_line(text)
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"
