"""How an HTTP error answer becomes a typed, one-line error (sans-I/O).

The tree of errors is :mod:`deepinfra_magic.errors`; this module reads error bodies
(DeepInfra's, OpenAI's, FastAPI's, an HTML page) and picks the error and its remedy.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from ._text import shorten
from .errors import (
    BILLING_URL,
    KEYS_URL,
    APIStatusError,
    AuthenticationError,
    ContextLengthError,
    DeepInfraError,
    InsufficientCreditError,
    InvalidRequestError,
    ModelLoadingError,
    ModelNotFoundError,
    RateLimitError,
    RouteNotFoundError,
    ServerError,
)

__all__ = [
    "context_overflow_message",
    "describe_body",
    "error_from_response",
    "names_cause",
    "parse_retry_after",
]

_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_H1 = re.compile(r"<h1[^>]*>(.*?)</h1>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]+>")


def _detail_from_json(payload: Any) -> str:
    """The human part of DeepInfra/OpenAI/FastAPI error JSON."""
    if isinstance(payload, Mapping):
        if "detail" in payload:
            return _detail_from_json(payload["detail"])
        error = payload.get("error")
        if isinstance(error, Mapping):
            return str(error.get("message") or error.get("error") or json.dumps(error))
        if isinstance(error, str):
            return error
        if "message" in payload:
            return str(payload["message"])
        return json.dumps(payload, ensure_ascii=False)
    if isinstance(payload, list):
        return "; ".join(_validation_item(item) for item in payload)
    return str(payload)


def _validation_item(item: Any) -> str:
    """One FastAPI validation entry as ``body.field: message``."""
    if isinstance(item, Mapping):
        loc = item.get("loc")
        where = ".".join(str(part) for part in loc) if isinstance(loc, list) else ""
        msg = str(item.get("msg") or item.get("message") or item)
        return f"{where}: {msg}" if where else msg
    return str(item)


def describe_body(body: bytes, content_type: str = "") -> str:
    """A short one-line description of an error body, whatever its format."""
    text = body.decode("utf-8", errors="replace").strip()
    if not text:
        return "empty response body"
    looks_html = "html" in content_type.lower() or text[:200].lstrip().lower().startswith(
        ("<!doctype html", "<html")
    )
    if looks_html:
        match = _TITLE.search(text) or _H1.search(text)
        title = _TAG.sub("", match.group(1)).strip() if match else ""
        label = f"'{shorten(title, 80)}'" if title else "without a title"
        return f"an HTML page {label} instead of JSON (a proxy or gateway error)"
    try:
        payload = json.loads(text)
    except ValueError:
        return f"non-JSON body: {shorten(text, 160)}"
    return shorten(_detail_from_json(payload), 240)


_INPUT_TOO_LONG = re.compile(r"input length \d+ exceeds maximum", re.IGNORECASE)


def names_cause(body: bytes) -> bool:
    """True when a JSON error body carries a message of its own (not a bare status)."""
    try:
        payload = json.loads(body)
    except ValueError:
        return False
    error = payload.get("error") if isinstance(payload, Mapping) else None
    message = error.get("message") if isinstance(error, Mapping) else error
    generic = ("", "internal server error", "internal error")
    return isinstance(message, str) and message.strip().lower() not in generic


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds form), or None."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return max(seconds, 0.0)


_CONTEXT_OVERFLOW = re.compile(
    r"(?i)maximum context length|context (length|window) (is|of|exceeded)|"
    r"exceeds? (the )?(model'?s? )?context|too many tokens"
)
_ROUTE_404 = ("not found", "404 page not found", "unexpected endpoint", "empty response body")


def context_overflow_message(detail: str, server: str = "the model") -> str:
    """The one-line remedy for a conversation longer than the model's context."""
    return (
        f"The conversation is longer than {server} can take ({detail}). Start over with "
        "--new (or %deepinfra_reset), ask for fewer tokens with --max-tokens, or send fewer "
        "exchanges with %config DeepInfraMagics.max_history = 1."
    )


def _is_route_404(detail: str, generic: bool) -> bool:
    """A 404 from a route the server lacks, not from a model it lacks.

    Servers name the model when they do not have it (vLLM, Ollama, DeepInfra's own
    answers); routes they lack get a bare "Not Found" (FastAPI), "404 page not found" (Go),
    LM Studio's "Unexpected endpoint", or HTML. DeepInfra also answers an unknown model
    with an empty 404, so an empty body is a route only on other servers.
    """
    lowered = detail.lower().strip(" .")
    if "model" in lowered:
        return False
    if lowered.startswith("an html page"):
        return True
    return lowered.startswith(_ROUTE_404) and (generic or lowered != "empty response body")


def _generic_error(
    status: int,
    detail: str,
    server: str,
    model: str | None,
    retry_after: float | None,
    tried: str,
    common: dict[str, Any],
) -> DeepInfraError:
    """Errors from a server other than DeepInfra, worded without DeepInfra's remedies."""
    server_ = server[0].upper() + server[1:]
    if status in (401, 403):
        return AuthenticationError(
            f"{server_} refused the key ({status}: {detail}). Set the key it expects in "
            "DEEPINFRA_API_KEY or with %deepinfra_login.",
            **common,
        )
    if status == 404 and model:
        return ModelNotFoundError(
            f"{server_} has no model '{model}' (404: {detail}). "
            "List its models with %deepinfra_models.",
            model=model,
            **common,
        )
    if status in (400, 422):
        return InvalidRequestError(
            f"{server_} rejected the request ({status}: {detail}). Fix that parameter and "
            "run again.",
            detail=detail,
            **common,
        )
    if status == 429:
        return RateLimitError(
            f"Rate limited by {server}{tried} (429: {detail}). Wait a little and run again.",
            retry_after=retry_after,
            **common,
        )
    if status >= 500:
        return ServerError(
            f"{server_} failed{tried} ({status}: {detail}). An out-of-range parameter can "
            "cause this; otherwise check the server's log, then run again.",
            **common,
        )
    return APIStatusError(
        f"Unexpected HTTP {status} from {server} ({detail}). Check DEEPINFRA_BASE_URL, "
        "then run again.",
        **common,
    )


def error_from_response(
    status: int,
    body: bytes,
    *,
    headers: Mapping[str, str] | None = None,
    model: str | None = None,
    attempts: int = 1,
    server: str | None = None,
    url: str | None = None,
    waited: float = 0.0,
) -> DeepInfraError:
    """Turn an HTTP error answer into the matching typed error with a one-line remedy.

    ``server`` names a server other than DeepInfra ("the server at http://…"), so that its
    errors neither blame nor send the user to DeepInfra; ``url`` is the URL tried.
    """
    headers = {k.lower(): v for k, v in (headers or {}).items()}
    detail = describe_body(body, headers.get("content-type", ""))
    request_id = headers.get("x-request-id") or headers.get("x-deepinfra-request-id")
    tried = f" after {attempts} attempts" if attempts > 1 else ""
    common: dict[str, Any] = {"status_code": status, "request_id": request_id}
    if status == 404 and url and _is_route_404(detail, server is not None):
        return RouteNotFoundError(
            f"{url} does not exist on {server or 'this server'} (404: {detail}). Check the "
            "base URL: DeepInfra's is https://api.deepinfra.com, another OpenAI-compatible "
            "server's is the part before /chat/completions, such as http://127.0.0.1:8000/v1.",
            **common,
        )
    if status in (400, 413, 422) and _CONTEXT_OVERFLOW.search(detail):
        return ContextLengthError(
            context_overflow_message(f"{status}: {detail}", f"'{model}'" if model else "the model"),
            detail=detail,
            **common,
        )
    if server is not None:
        retry_after = parse_retry_after(headers.get("retry-after"))
        return _generic_error(status, detail, server, model, retry_after, tried, common)
    if status == 401:
        return AuthenticationError(
            f"DeepInfra rejected the API key (401: {detail}). Check DEEPINFRA_API_KEY "
            f"or run %deepinfra_login with a key from {KEYS_URL}.",
            **common,
        )
    if status == 403 and detail.lower().startswith("not authenticated"):
        return AuthenticationError(
            f"DeepInfra did not accept the API key (403: {detail}). Check DEEPINFRA_API_KEY "
            f"or run %deepinfra_login with a key from {KEYS_URL}.",
            **common,
        )
    if status == 403:
        return AuthenticationError(
            f"Access denied (403: {detail}). The key may lack access to this model; "
            f"check it at {KEYS_URL}.",
            **common,
        )
    if status == 402:
        return InsufficientCreditError(
            f"The DeepInfra account is out of credit (402: {detail}). Add credit at {BILLING_URL}.",
            **common,
        )
    if status == 404 and model:
        return ModelNotFoundError(
            f"Model '{model}' was not found (404: {detail}). List models with %deepinfra_models.",
            model=model,
            **common,
        )
    if status in (400, 422):
        return InvalidRequestError(
            f"The API rejected the request ({status}: {detail}). Fix that parameter and run again.",
            detail=detail,
            **common,
        )
    if status == 429:
        retry_after = parse_retry_after(headers.get("retry-after"))
        wait = (
            f"wait {retry_after:g} s and run again"
            if retry_after is not None
            else "wait a little and run again"
        )
        return RateLimitError(
            f"Rate limited by DeepInfra{tried} (429: {detail}). {wait.capitalize()}, "
            "or send fewer requests at once.",
            retry_after=retry_after,
            **common,
        )
    if status == 423:
        name = f"Model '{model}'" if model else "The model"
        after = f" after waiting {waited:.0f} s" if waited >= 1 else ""
        return ModelLoadingError(
            f"{name} is still loading on DeepInfra{after} (423: {detail}). Run again in a "
            "minute or two, or pick another model.",
            **common,
        )
    if status >= 500 and _INPUT_TOO_LONG.search(detail):  # DeepInfra's own wording
        return ContextLengthError(
            context_overflow_message(f"{status}: {detail}", f"'{model}'" if model else "the model"),
            detail=detail,
            **common,
        )
    if status == 500 and names_cause(body):
        return ServerError(
            f"DeepInfra could not run this request ({status}: {detail}). Sending it again "
            "would fail the same way: change the request or pick another model.",
            **common,
        )
    if status >= 500:
        return ServerError(
            f"DeepInfra had a server error{tried} ({status}: {detail}). "
            "Try again in a minute or pick another model.",
            **common,
        )
    return APIStatusError(
        f"Unexpected HTTP {status} from the API ({detail}). Check that DEEPINFRA_BASE_URL "
        "points at the DeepInfra API, then run again.",
        **common,
    )
