"""The errors deepinfra-magic raises, and how HTTP error answers become them.

Every error is a :class:`DeepInfraError` whose message is one line that says what
happened and what to do. In IPython they render as that one line (no traceback),
through IPython's documented ``_render_traceback_`` hook.

Hierarchy::

    DeepInfraError
    ├── ConfigurationError          bad base URL or setting
    │   └── RouteNotFoundError      404 from a route the server does not have
    ├── AuthenticationError         401/403
    │   └── MissingAPIKeyError      no key anywhere (raised before any request)
    ├── InsufficientCreditError     402
    ├── ModelNotFoundError          404 (with close matches from the catalog)
    ├── InvalidRequestError         400/422 (with the field detail)
    │   └── ContextLengthError      the conversation does not fit the model's context
    ├── RateLimitError              429 (with Retry-After)
    ├── ServerError                 5xx
    ├── ModelLoadingError           423: the model was still being deployed after waiting
    ├── APIConnectionError          could not connect / connection dropped
    │   └── APITimeoutError         connect or read timed out
    ├── StreamError                 broken or error-bearing stream (keeps the partial text)
    ├── InvalidResponseError        an answer we cannot use (no images, bad base64, not JSON)
    └── ReplayError                 nothing in the recording matches a request
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "APIConnectionError",
    "APITimeoutError",
    "AuthenticationError",
    "ConfigurationError",
    "ContextLengthError",
    "DeepInfraError",
    "InsufficientCreditError",
    "InvalidRequestError",
    "InvalidResponseError",
    "MissingAPIKeyError",
    "ModelLoadingError",
    "ModelNotFoundError",
    "RateLimitError",
    "ReplayError",
    "RouteNotFoundError",
    "ServerError",
    "StreamError",
    "error_from_response",
    "names_cause",
    "redact",
    "shorten",
]

KEYS_URL = "https://deepinfra.com/dash/api_keys"
BILLING_URL = "https://deepinfra.com/dash/billing"


class DeepInfraError(Exception):
    """Base class: an expected failure, described in one line with its remedy."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(one_line(redact(message)))
        self.status_code = status_code
        self.request_id = request_id

    @property
    def message(self) -> str:
        """The one-line message (the same as ``str(error)``)."""
        return str(self.args[0])

    def _render_traceback_(self) -> list[str]:
        """Show one line in IPython instead of a traceback (IPython's documented hook)."""
        return [f"{type(self).__name__}: {self}"]


class ConfigurationError(DeepInfraError):
    """A setting is unusable (for example a base URL that is not http(s))."""


class RouteNotFoundError(ConfigurationError):
    """The server has no such route (404): the base URL or its flavour is wrong."""


class AuthenticationError(DeepInfraError):
    """The API refused the key (401) or the key lacks permission (403)."""


class MissingAPIKeyError(AuthenticationError):
    """A request needs a key and none is configured; raised before any network call."""


class InsufficientCreditError(DeepInfraError):
    """The account is out of credit (402)."""


class ModelNotFoundError(DeepInfraError):
    """The model does not exist or is not deployed (404)."""

    def __init__(
        self,
        message: str,
        *,
        model: str | None = None,
        close_matches: Sequence[str] = (),
        status_code: int | None = 404,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code, request_id=request_id)
        self.model = model
        self.close_matches = list(close_matches)

    def with_close_matches(self, matches: Sequence[str]) -> ModelNotFoundError:
        """A copy of this error whose message suggests ``matches``."""
        if not matches:
            return self
        suggestion = ", ".join(matches)
        base = self.message.replace(" List models with %deepinfra_models.", "")
        return ModelNotFoundError(
            f"{base} Did you mean: {suggestion}? List models with %deepinfra_models.",
            model=self.model,
            close_matches=matches,
            status_code=self.status_code,
            request_id=self.request_id,
        )


class InvalidRequestError(DeepInfraError):
    """The API rejected a parameter (400/422); ``detail`` names the field."""

    def __init__(
        self,
        message: str,
        *,
        detail: str = "",
        status_code: int | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code, request_id=request_id)
        self.detail = detail


class ContextLengthError(InvalidRequestError):
    """The prompt plus the reply do not fit the model's context; running again cannot help."""


class RateLimitError(DeepInfraError):
    """Too many requests (429); ``retry_after`` is the server's wait in seconds, if given."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        status_code: int | None = 429,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code, request_id=request_id)
        self.retry_after = retry_after


class ServerError(DeepInfraError):
    """The API failed on its side (5xx), after the allowed retries."""


class ModelLoadingError(DeepInfraError):
    """The model was still being deployed (423) when the bounded wait ran out."""


class APIConnectionError(DeepInfraError):
    """The API could not be reached, or the connection dropped before an answer."""


class APITimeoutError(APIConnectionError):
    """Connecting or waiting for the next bytes took longer than the configured timeout."""


class StreamError(DeepInfraError):
    """A stream broke or carried an error; ``partial_text`` keeps what had arrived."""

    def __init__(
        self,
        message: str,
        *,
        partial_text: str = "",
        partial_reasoning: str = "",
        status_code: int | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code, request_id=request_id)
        self.partial_text = partial_text
        self.partial_reasoning = partial_reasoning


class InvalidResponseError(DeepInfraError):
    """The API answered successfully but with something unusable."""


class ReplayError(DeepInfraError):
    """Replay mode: the recording holds no answer for a request."""


# --- text hygiene -----------------------------------------------------------------

_SECRET_PATTERNS = (
    re.compile(r"(?i)\bbearer\s+[^\s\"',;]+"),
    re.compile(r"\bsk-[A-Za-z0-9_\-]{6,}"),
    re.compile(r"(?i)(api[_-]?key|token)([\"']?\s*[:=]\s*[\"']?)[A-Za-z0-9_\-]{12,}"),
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
    return _SECRET_PATTERNS[2].sub(r"\1\2[redacted]", text)


def one_line(text: str) -> str:
    """Collapse whitespace (including newlines) so a message stays on one line."""
    return " ".join(text.split())


def shorten(text: str, limit: int = 200) -> str:
    """One line of at most ``limit`` characters, marked with an ellipsis when cut."""
    flat = one_line(text)
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


# --- parsing error bodies ----------------------------------------------------------

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
    return DeepInfraError(
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
    return DeepInfraError(
        f"Unexpected HTTP {status} from the API ({detail}). Check that DEEPINFRA_BASE_URL "
        "points at the DeepInfra API, then run again.",
        **common,
    )
