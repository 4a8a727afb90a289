"""Text hygiene for everything shown to users: no credential, one line, bounded length.

Errors redact their message at construction with these; so do the parsers of error bodies
and the recordings. What the magics send a model from the notebook (a traceback, a cell,
a variable, a table) passes :func:`mask_credentials`: the client's own key and anything
shaped like a credential become ``***``.

Every error imports this module, and so does ``%load_ext``: its patterns are compiled on
first use (compiling them all costs more than a millisecond), each once.
"""

from __future__ import annotations

import functools
import re

__all__ = ["MASK", "MIN_SECRET_LENGTH", "mask_credentials", "one_line", "redact", "shorten"]


@functools.cache
def _secret_patterns() -> tuple[re.Pattern[str], ...]:
    """What :func:`redact` masks: a bearer value, an ``sk-`` key, a named key or token, a JWT."""
    return (
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
    bearer, sk_key, named, jwt = _secret_patterns()
    text = bearer.sub("Bearer [redacted]", text)
    text = sk_key.sub("sk-[redacted]", text)
    text = named.sub(r"\1\2[redacted]", text)
    return jwt.sub("[redacted]", text)


MASK = "***"


@functools.cache
def _credential_shapes() -> tuple[re.Pattern[str], ...]:
    """Shapes of credentials in notebook text, each masked whole or after its name (group 1).
    Values end at a quote, a space, ``&`` (the next query parameter) or a separator."""
    return (
        # An Authorization header's value, whatever its scheme ("Authorization: Basic …",
        # {'authorization': 'Bearer …'}); code that builds one (f"Bearer {key}") stays.
        re.compile(
            r"(?i)(\bauthorization[\"']?\s*[:=]\s*[\"']?)[A-Za-z]+\s+[A-Za-z0-9+/=._~\-]{6,}"
        ),
        re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9+/=._~\-]{6,}"),
        # A named key or token (``?api_key=…``, ``"token": "…"``, ``DEEPINFRA_API_KEY=…``):
        # a value with a digit, not code (``token = tokenizer.encode(text)`` stays).
        re.compile(
            r"(?i)((?:api[_-]?key|api[_-]?token|access[_-]?token|\btoken|secret|password)"
            r"[\"']?\s*[:=]\s*[\"']?)(?=[^\s\"'&,;}]*\d)[A-Za-z0-9_\-.~+/=]{8,}(?![\w(.])"
        ),
        re.compile(r"()\bsk-[A-Za-z0-9_\-]{6,}"),
        # A JWT (a DeepInfra scoped token is "jwt:" and one), wherever it stands.
        re.compile(r"()eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*"),
    )


def mask_credentials(text: str, *secrets: str) -> str:
    """``text`` with each of ``secrets`` (the keys a client sends) and anything shaped like a
    credential — a bearer or Authorization value, a named key or token, a JWT — as ``***``.

    For what leaves the machine from the notebook: unlike :func:`redact` it masks whole
    values, so nothing of a key remains for a model to repeat."""
    for secret in secrets:
        if len(secret) >= MIN_SECRET_LENGTH:
            text = text.replace(secret, MASK)
    for shape in _credential_shapes():
        text = shape.sub(lambda match: match.group(1) + MASK, text)
    return text


def one_line(text: str) -> str:
    """Collapse whitespace (including newlines) so a message stays on one line."""
    return " ".join(text.split())


def shorten(text: str, limit: int = 200) -> str:
    """One line of at most ``limit`` characters, marked with an ellipsis when cut."""
    flat = one_line(text)
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"
