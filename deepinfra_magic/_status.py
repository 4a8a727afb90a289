"""How an HTTP error answer becomes a typed, one-line error (sans-I/O).

The rules this module keeps:

* Every error answer is decided by one table, ``ERROR_TABLE``: rows of (statuses,
  predicate) → (class, DeepInfra wording, generic-server wording), read top to bottom; the
  first row whose statuses and predicate match, and that has a wording for this kind of
  server, decides. A row without a generic wording is DeepInfra's alone (and the other
  way round). Nothing outside the table picks a class or words a message.
* A predicate looks only at the answer (status, description of the body, the URL tried,
  the model asked for): no I/O, no state.
* Generic-server wordings name that server ("the server at http://…") and never
  DeepInfra's URLs or remedies; DeepInfra wordings may send the user to DeepInfra.
* Every wording is one line that says what happened and what to do, quoting the status
  and the server's own words (``{status}: {detail}``).
* Only answers from a server come here: mistakes found before any request are
  ``InvalidArgumentError`` and are raised where they are found.

The tree of errors is :mod:`deepinfra_magic.errors`; tests/unit/test_status.py holds one
case per row.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

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
    "ERROR_TABLE",
    "Answer",
    "Row",
    "context_overflow_message",
    "describe_body",
    "error_from_response",
    "matching_row",
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
    r"exceeds? (the )?(available |model'?s? )?context|too many tokens|exceed_context_size"
)
_INPUT_TOO_LONG = re.compile(r"input length \d+ exceeds maximum", re.IGNORECASE)
# LiteLLM's proxy answers a model it does not route with a 400, its message a dict or a
# string around "/chat/completions: Invalid model name passed in model=X. Call `/v1/models`
# …" (BerriAI/litellm#8821 and #3142: {"error": {"message": {"error": "…"}, "code": "400"}}).
_LITELLM_UNKNOWN_MODEL = re.compile(r"Invalid model name passed in", re.IGNORECASE)
# LiteLLM's proxy passes on the answer of the server behind it wrapped in its own words:
# "litellm.NotFoundError: NotFoundError: OpenAIException - File Not Found  LiteLLM: model
# group 'tiny' failed with the error above. …" (seen from litellm 1.108.7 in front of
# llama-server, tests/llama/test_litellm.py): the inner answer decides what it means.
_LITELLM_WRAPPED = re.compile(
    r"^litellm\.\w+: (?:\w+: )?\w+Exception - (?P<inner>.*?)\s*LiteLLM: model group", re.DOTALL
)
# LiteLLM's proxy without a database knows only its master key; any other key gets a 400
# whose error type is "no_db_connection" ("No connected db.", litellm 1.108.7).
_LITELLM_NO_DB = re.compile(rb'"type"\s*:\s*"no_db_connection"')
# Bodies of a 404 for a route the server lacks: FastAPI's "Not Found", Go's "404 page not
# found", LM Studio's "Unexpected endpoint", llama.cpp's llama-server "File Not Found".
_ROUTE_404 = (
    "not found",
    "404 page not found",
    "unexpected endpoint",
    "file not found",
    "empty response body",
)
_IMAGES_ROUTE = "/images/generations"  # the OpenAI images route of generic servers
_EXAMPLE_ROOT = "http://127.0.0.1:8000/v1"


def context_overflow_message(detail: str, server: str = "the model") -> str:
    """The one-line remedy for a conversation longer than the model's context."""
    return (
        f"The conversation is longer than {server} can take ({detail}). Start over with "
        "--new (or %deepinfra_reset), ask for fewer tokens with --max-tokens, or send fewer "
        "exchanges with %config DeepInfraMagics.max_history = 1."
    )


@dataclass(frozen=True)
class Answer:
    """What the table reads of one error answer."""

    status: int
    detail: str  # the body described in one line (describe_body)
    body: bytes
    model: str | None = None
    url: str | None = None
    generic: bool = False  # True for a server other than DeepInfra


def _is_route_404(answer: Answer) -> bool:
    """A 404 from a route the server lacks, not from a model it lacks.

    Servers name the model when they do not have it (vLLM, Ollama, DeepInfra's own
    answers); routes they lack get a bare "Not Found" (FastAPI), "404 page not found" (Go),
    LM Studio's "Unexpected endpoint", llama-server's "File Not Found", or HTML. DeepInfra
    also answers an unknown model with an empty 404, so an empty body is a route only on
    other servers.
    """
    wrapped = _LITELLM_WRAPPED.match(answer.detail)
    lowered = (wrapped["inner"] if wrapped else answer.detail).lower().strip(" .")
    if answer.url is None or "model" in lowered:
        return False
    if lowered.startswith("an html page"):
        return True
    return lowered.startswith(_ROUTE_404) and (answer.generic or lowered != "empty response body")


def _no_image_route(answer: Answer) -> bool:
    """A 404 for the images route (worded for generic servers only): no images at all."""
    return _is_route_404(answer) and (answer.url or "").endswith(_IMAGES_ROUTE)


def _context_overflow(answer: Answer) -> bool:
    return bool(_CONTEXT_OVERFLOW.search(answer.detail))


def _input_too_long(answer: Answer) -> bool:
    return bool(_INPUT_TOO_LONG.search(answer.detail))  # DeepInfra's 500 for a long prompt


def _litellm_unknown_key(answer: Answer) -> bool:
    return bool(_LITELLM_NO_DB.search(answer.body))


def _unknown_model(answer: Answer) -> bool:
    return bool(answer.model) and bool(_LITELLM_UNKNOWN_MODEL.search(answer.detail))


def _has_model(answer: Answer) -> bool:
    return bool(answer.model)


def _not_authenticated(answer: Answer) -> bool:
    return answer.detail.lower().startswith("not authenticated")


def _names_cause(answer: Answer) -> bool:
    return names_cause(answer.body)


def _always(answer: Answer) -> bool:
    return True


@dataclass(frozen=True)
class Row:
    """One rule: the statuses and predicate it matches, the error and its two wordings.

    Wordings are ``str.format`` templates over ``_fields``; None means the row does not
    apply to that kind of server."""

    name: str
    statuses: frozenset[int] | range
    when: Callable[[Answer], bool]
    error: type[DeepInfraError]
    deepinfra: str | None
    generic: str | None

    def wording(self, answer: Answer) -> str | None:
        """The template for the kind of server that answered (None: not this row's)."""
        return self.generic if answer.generic else self.deepinfra


_CONTEXT = "{context_advice}"
# Wordings that two rows share (the same advice for different statuses).
_NO_MODEL = (
    "Model '{model}' was not found ({status}: {detail}). List models with %deepinfra_models.",
    "{Server} has no model '{model}' ({status}: {detail}). List its models with %deepinfra_models.",
)
_KEY_REFUSED_GENERIC = (
    "{Server} refused the key ({status}: {detail}). Set the key it expects in "
    "DEEPINFRA_API_KEY or with %deepinfra_login."
)
_ANY = range(1000)

ERROR_TABLE: tuple[Row, ...] = (
    Row("no image route", frozenset({404}), _no_image_route, RouteNotFoundError,
        None,
        "{Server} has no image endpoint ({url} answered 404: {detail}), so it cannot make "
        "images; it serves chat. Generate images with DeepInfra or a server that has "
        "/images/generations."),
    Row("route not found", frozenset({404}), _is_route_404, RouteNotFoundError,
        "{url} does not exist on this server (404: {detail}). Check the base URL: "
        "DeepInfra's is https://api.deepinfra.com, another OpenAI-compatible server's is "
        f"the part before /chat/completions, such as {_EXAMPLE_ROOT}.",
        "{url} does not exist on {server} (404: {detail}). Check the base URL: it is the "
        f"part before /chat/completions, such as {_EXAMPLE_ROOT}{{openai_hint}}."),
    Row("context overflow", frozenset({400, 413, 422}), _context_overflow, ContextLengthError,
        _CONTEXT, _CONTEXT),
    Row("input too long", range(500, 600), _input_too_long, ContextLengthError,
        _CONTEXT, _CONTEXT),
    Row("unknown model (LiteLLM)", frozenset({400}), _unknown_model, ModelNotFoundError,
        *_NO_MODEL),
    Row("key unknown to LiteLLM", frozenset({400}), _litellm_unknown_key, AuthenticationError,
        None,
        "{Server} does not know this key ({status}: {detail}): a LiteLLM proxy without a "
        "database takes only its master key. Set that key in DEEPINFRA_API_KEY or with "
        "%deepinfra_login."),
    Row("key rejected", frozenset({401}), _always, AuthenticationError,
        "DeepInfra rejected the API key (401: {detail}). Check DEEPINFRA_API_KEY or run "
        "%deepinfra_login with a key from {keys_url}.",
        _KEY_REFUSED_GENERIC),
    Row("not authenticated", frozenset({403}), _not_authenticated, AuthenticationError,
        "DeepInfra did not accept the API key (403: {detail}). Check DEEPINFRA_API_KEY or "
        "run %deepinfra_login with a key from {keys_url}.",
        None),
    Row("access denied", frozenset({403}), _always, AuthenticationError,
        "Access denied (403: {detail}). The key may lack access to this model; check it "
        "at {keys_url}.",
        _KEY_REFUSED_GENERIC),
    Row("out of credit", frozenset({402}), _always, InsufficientCreditError,
        "The DeepInfra account is out of credit (402: {detail}). Add credit at "
        "{billing_url}.",
        None),
    Row("model not found", frozenset({404}), _has_model, ModelNotFoundError, *_NO_MODEL),
    Row("rejected parameter", frozenset({400, 422}), _always, InvalidRequestError,
        "The API rejected the request ({status}: {detail}). Fix that parameter and run "
        "again.",
        "{Server} rejected the request ({status}: {detail}). Fix that parameter and run "
        "again."),
    Row("rate limited", frozenset({429}), _always, RateLimitError,
        "Rate limited by DeepInfra{tried} (429: {detail}). {Wait}, or send fewer requests "
        "at once.",
        "Rate limited by {server}{tried} (429: {detail}). {Wait}."),
    Row("model loading", frozenset({423}), _always, ModelLoadingError,
        "{Model} is still loading on DeepInfra{after} (423: {detail}). Run again in a "
        "minute or two, or pick another model.",
        None),
    Row("request cannot run", frozenset({500}), _names_cause, ServerError,
        "DeepInfra could not run this request (500: {detail}). Sending it again would fail "
        "the same way: change the request or pick another model.",
        None),
    Row("server error", range(500, 600), _always, ServerError,
        "DeepInfra had a server error{tried} ({status}: {detail}). Try again in a minute or "
        "pick another model.",
        "{Server} failed{tried} ({status}: {detail}). An out-of-range parameter can cause "
        "this; otherwise check the server's log, then run again."),
    Row("unexpected status", _ANY, _always, APIStatusError,
        "Unexpected HTTP {status} from the API ({detail}). Check that DEEPINFRA_BASE_URL "
        "points at the DeepInfra API, then run again.",
        "Unexpected HTTP {status} from {server} ({detail}). Check DEEPINFRA_BASE_URL, then "
        "run again."),
)  # fmt: skip


def _openai_hint(url: str | None) -> str:
    """For a generic root with no path or just ``/v1``: the URL if it has DeepInfra's routes
    (a DeepInfra-like server, such as the fake one, prints its bare root)."""
    parts = urlsplit(url or "")
    root_path = parts.path.rsplit("/chat/completions", 1)[0].rsplit("/models", 1)[0]
    if not parts.netloc or root_path.rstrip("/") not in ("", "/v1"):
        return ""
    return f"; a server with DeepInfra's routes wants {parts.scheme}://{parts.netloc}/v1/openai"


def _fields(
    answer: Answer, server: str, attempts: int, retry_after: float | None, waited: float
) -> dict[str, Any]:
    """The values a wording may use."""
    model_name = f"'{answer.model}'" if answer.model else "the model"
    wait = "a little" if retry_after is None else f"{retry_after:g} s"
    return {
        "status": answer.status,
        "detail": answer.detail,
        "model": answer.model or "",
        "Model": f"Model '{answer.model}'" if answer.model else "The model",
        "url": answer.url or "",
        "server": server,
        "Server": server[:1].upper() + server[1:],
        "tried": f" after {attempts} attempts" if attempts > 1 else "",
        "Wait": f"Wait {wait} and run again",
        "after": f" after waiting {waited:.0f} s" if waited >= 1 else "",
        "keys_url": KEYS_URL,
        "billing_url": BILLING_URL,
        "openai_hint": _openai_hint(answer.url),
        "context_advice": context_overflow_message(f"{answer.status}: {answer.detail}", model_name),
    }


def matching_row(answer: Answer) -> Row:
    """The first row of ``ERROR_TABLE`` that decides this answer."""
    for row in ERROR_TABLE:
        if row.wording(answer) is not None and answer.status in row.statuses and row.when(answer):
            return row
    raise AssertionError("the last row matches every answer")  # pragma: no cover


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
    answer = Answer(status, detail, body, model, url, generic=server is not None)
    row = matching_row(answer)
    retry_after = parse_retry_after(headers.get("retry-after"))
    fields = _fields(answer, server or "DeepInfra", attempts, retry_after, waited)
    wording = row.wording(answer)
    assert wording is not None
    kwargs: dict[str, Any] = {
        "status_code": status,
        "request_id": headers.get("x-request-id") or headers.get("x-deepinfra-request-id"),
    }
    if issubclass(row.error, InvalidRequestError):
        kwargs["detail"] = detail
    elif issubclass(row.error, ModelNotFoundError):
        kwargs["model"] = model
    elif issubclass(row.error, RateLimitError):
        kwargs["retry_after"] = retry_after
    return row.error(wording.format(**fields), **kwargs)
