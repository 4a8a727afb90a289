"""Sans-I/O core: build API requests and parse answers, with no networking at all.

The rules this module keeps:

* The sync and async transports move bytes; everything about what the bytes mean lives
  here, so both clients (and replay) behave identically.
* A request builder checks its arguments first and raises ``InvalidArgumentError`` for a
  mistake: nothing wrong is ever sent. An answer parser raises ``InvalidResponseError``
  or ``StreamError`` (keeping the text received); HTTP error answers are ``_status``'s.
* Images are typed by their bytes (``sniff_image_type``, the package's one sniffer) over
  any label, and only ``IMAGE_MIME_TYPES`` (``_config``'s) are accepted.
* DeepInfra's paths live here; another server's routes are ``_routes``'s. Retry policy
  and every other default are ``_config``'s.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

from ._buffer import TextBuffer
from ._config import IMAGE_MIME_TYPES
from ._sse import SSEDecoder
from ._status import context_overflow_message
from ._text import shorten
from .errors import ContextLengthError, InvalidArgumentError, InvalidResponseError, StreamError
from .types import ContentDelta, ReasoningDelta, Usage

__all__ = [
    "CATALOG_PATH",
    "CHAT_PATH",
    "LOADING_STATUS",
    "MODELS_PATH",
    "RECORDED_AT_HEADER",
    "REPLAY_HEADER",
    "ApiRequest",
    "ChatStreamDecoder",
    "ImageAnswer",
    "ImageRef",
    "RawResponse",
    "RequestKind",
    "as_cog_request",
    "catalog_request",
    "chat_request",
    "check_image_request",
    "decode_data_uri",
    "fetched_image_ref",
    "file_request",
    "image_request",
    "key_check_request",
    "parse_catalog",
    "parse_chat_completion",
    "parse_image_answer",
    "parse_json",
    "sniff_image_type",
    "wants_cog_input",
]

CATALOG_PATH = "/models/featured"
CHAT_PATH = "/v1/openai/chat/completions"
MODELS_PATH = "/v1/openai/models"
# DeepInfra's OpenAPI marks this HTTPBearer; it costs nothing and holds no personal data.
# (/v1/openai/models is marked HTTPBearer too, but is reported to answer without a key.)
KEY_CHECK_PATH = "/v1/me/rate_limit"
INFERENCE_PREFIX = "/v1/inference/"
_decode_json = json.JSONDecoder().decode  # json.loads without its per-call keyword checks
_raw_decode = json.JSONDecoder().raw_decode  # and without decode's whitespace handling


# "read": a GET; "chat": a completion (repeatable before any reply byte); "billable": an
# image generation, paid for even when its answer is lost.
RequestKind = Literal["read", "chat", "billable"]


@dataclass(frozen=True)
class ApiRequest:
    """What to send: method, API path (or absolute URL for hosted files) and JSON body."""

    method: str
    path: str
    json: Mapping[str, Any] | None = None
    stream: bool = False
    needs_key: bool = True
    model: str | None = None
    kind: RequestKind = "read"  # what a retry may cost: see _config.RetryPolicy
    content: bytes | None = None  # a non-JSON body (a multipart file upload), sent as is
    content_type: str | None = None  # the Content-Type of ``content``
    max_retries: int | None = None  # None: the transport's policy (map rows retry themselves)

    @property
    def is_external(self) -> bool:
        """True for absolute URLs (hosted images): never sent with our Authorization."""
        return self.path.startswith(("http://", "https://"))


@dataclass(frozen=True)
class RawResponse:
    """A complete answer: status, lower-cased headers and the body bytes."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    @property
    def replayed_from(self) -> str | None:
        """The recording file the answer came from (None when it came from the network)."""
        return self.headers.get(REPLAY_HEADER)

    @property
    def recorded_at(self) -> float | None:
        """When a replayed answer was recorded (Unix time), if its recording says."""
        value = self.headers.get(RECORDED_AT_HEADER)
        return float(value) if value else None


REPLAY_HEADER = "x-deepinfra-magic-replay"
RECORDED_AT_HEADER = "x-deepinfra-magic-recorded-at"  # set by replay, never sent or stored


# --- requests --------------------------------------------------------------------------


def catalog_request() -> ApiRequest:
    """The featured-models list: public, so it needs no key."""
    return ApiRequest("GET", CATALOG_PATH, needs_key=False)


def key_check_request() -> ApiRequest:
    """A free request that DeepInfra answers only for a valid key (see KEY_CHECK_PATH)."""
    return ApiRequest("GET", KEY_CHECK_PATH)


def _check_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Messages as plain dicts, or a one-line error saying what is wrong with them."""
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise InvalidArgumentError(
            "messages must be a list of {'role': ..., 'content': ...} dicts, "
            f"not {type(messages).__name__}."
        )
    if not messages:
        raise InvalidArgumentError("messages is empty: add at least one user message.")
    checked = []
    for index, message in enumerate(messages):
        if not isinstance(message, Mapping) or "role" not in message:
            raise InvalidArgumentError(
                f"messages[{index}] must be a dict with 'role' and 'content', not {message!r:.60}."
            )
        checked.append(dict(message))
    return checked


def chat_request(
    messages: Sequence[Mapping[str, Any]],
    model: str,
    *,
    stream: bool,
    temperature: float | None,
    max_tokens: int | None,
    params: Mapping[str, Any],
) -> ApiRequest:
    """An OpenAI-compatible chat completion; streams ask for usage in the last chunk."""
    if not model:
        raise InvalidArgumentError("No model given: pass model=... (see %deepinfra_models).")
    body: dict[str, Any] = {"model": model, "messages": _check_messages(messages)}
    if temperature is not None:
        body["temperature"] = temperature
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    body.update(params)
    _check_single_choice(body.get("n"))
    body["stream"] = stream
    if stream:
        body.setdefault("stream_options", {"include_usage": True})
    return ApiRequest("POST", CHAT_PATH, json=body, stream=stream, model=model, kind="chat")


def _check_single_choice(n: Any) -> None:
    """Refuse ``n > 1``: its replies would arrive interleaved, and one cell shows one reply."""
    if n is None or n == 1:
        return
    raise InvalidArgumentError(
        f"n={n!r} asks for several replies at once, which are not shown apart: leave n out "
        "and run the cell (or call chat) once per reply."
    )


def check_image_request(prompt: str, model: str) -> None:
    """Refuse an empty prompt or a missing model before anything is sent."""
    if not prompt or not prompt.strip():
        raise InvalidArgumentError("The image prompt is empty: describe the picture you want.")
    if not model:
        raise InvalidArgumentError("No image model given (see %deepinfra_models --images).")


def image_request(
    prompt: str, model: str, extra: Mapping[str, Any], *, cog: bool = False
) -> ApiRequest:
    """Text-to-image on the native inference endpoint: ``{"prompt": ..., **extra}``, or
    ``{"input": {...}}`` for Cog-packaged models (DeepInfra's Node SDK sends that shape)."""
    check_image_request(prompt, model)
    path = INFERENCE_PREFIX + quote(model, safe="/-_.~")
    fields = {"prompt": prompt, **extra}
    body = {"input": fields} if cog else fields
    return ApiRequest("POST", path, json=body, model=model, kind="billable")


_WANTS_INPUT = re.compile(r"\bbody\.input: field required", re.IGNORECASE)


def wants_cog_input(detail: str) -> bool:
    """True when a 422's detail says the model wants its fields under ``input`` (Cog)."""
    return bool(_WANTS_INPUT.search(detail))


def as_cog_request(req: ApiRequest) -> ApiRequest:
    """The same image request with its fields moved under ``input``."""
    return dataclasses.replace(req, json={"input": dict(req.json or {})})


def file_request(url: str) -> ApiRequest:
    """Fetch a hosted image; it needs no key and must never carry ours."""
    return ApiRequest("GET", url, needs_key=False)


# --- answers ---------------------------------------------------------------------------


def parse_json(response: RawResponse, what: str) -> Any:
    """The JSON body of a successful answer, or a one-line error quoting the body."""
    try:
        return json.loads(response.body)
    except ValueError:
        text = response.body.decode("utf-8", errors="replace")
        raise InvalidResponseError(
            f"The {what} answer was not JSON: {shorten(text, 160) or 'empty body'}."
        ) from None


def _first_choice(payload: Mapping[str, Any]) -> Mapping[str, Any] | None:
    choices = payload.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], Mapping):
        return choices[0]
    return None


def _error_message(payload: Mapping[str, Any]) -> str | None:
    """The message of an ``error`` object carried inside an otherwise normal answer."""
    error = payload.get("error")
    if error is None:
        return None
    if isinstance(error, Mapping):
        return str(error.get("message") or json.dumps(error, ensure_ascii=False))
    return str(error)


def parse_chat_completion(
    payload: Any, model: str
) -> tuple[str, str, str | None, Usage | None, str]:
    """Text, reasoning, finish_reason, usage and model of a non-streamed completion."""
    if not isinstance(payload, Mapping):
        raise InvalidResponseError(f"Unexpected chat answer: {shorten(json.dumps(payload))}.")
    message_text = _error_message(payload)
    if message_text:
        raise StreamError(f"The model reported an error: {shorten(message_text)}.")
    choice = _first_choice(payload) or {}
    message = choice.get("message") or {}
    usage = payload.get("usage")
    if choice.get("finish_reason") == "error":
        text = str(message.get("content") or "")
        kept = f"; the {len(text)} characters received are kept" if text else ""
        raise StreamError(
            f"The model stopped with an error (finish_reason 'error'){kept}. Run the cell "
            "again to retry.",
            partial_text=text,
        )
    return (
        str(message.get("content") or ""),
        str(message.get("reasoning_content") or message.get("reasoning") or ""),
        choice.get("finish_reason"),
        Usage.from_json(usage) if isinstance(usage, Mapping) else None,
        str(payload.get("model") or model),
    )


@dataclass
class ChatStreamDecoder:
    """Bytes of a streamed completion in, content/reasoning deltas out; keeps the totals."""

    model: str
    finish_reason: str | None = None
    usage: Usage | None = None
    done: bool = False
    # llama-cpp-python's server answers a prompt longer than its context with a 200 stream
    # that ends with no text and no finish_reason; True reads that ending as a context
    # overflow. (llama.cpp's own llama-server answers a 400, a row of _status's table.)
    empty_is_overflow: bool = False
    reported_model: str | None = None  # the ``model`` of the first chunk ("" if none)
    _sse: SSEDecoder = field(default_factory=SSEDecoder)
    _text: TextBuffer = field(default_factory=TextBuffer)
    _reasoning: TextBuffer = field(default_factory=TextBuffer)
    _failure: StreamError | None = None  # raised after the text that arrived with it

    @property
    def text(self) -> str:
        """All answer text received so far."""
        return str(self._text)

    @property
    def reasoning(self) -> str:
        """All reasoning text received so far."""
        return str(self._reasoning)

    def feed(self, chunk: bytes) -> list[ContentDelta | ReasoningDelta]:
        """Decode a network chunk; raises StreamError (with the partial text) on bad data.

        Text that came in the same chunk as the bad data is returned first, and the error
        is raised by the next ``feed`` or ``close``: a caller shows everything received."""
        if self._failure is not None:
            raise self._failure
        if self.done:
            return []
        deltas: list[ContentDelta | ReasoningDelta] = []
        try:
            data = self._sse.single_data(chunk)
            if data is not None:  # one token per network chunk: the usual case, kept short
                self._event(data, deltas)
                return deltas
            for event in self._sse.feed(chunk):
                self._event(event.data, deltas)
                if self.done:
                    break
        except StreamError as exc:
            if not deltas:
                raise
            self._failure = exc
        return deltas

    def close(self) -> list[ContentDelta | ReasoningDelta]:
        """End of body: flush an unterminated last event, then check the reply finished."""
        if self._failure is not None:
            raise self._failure
        deltas: list[ContentDelta | ReasoningDelta] = []
        if not self.done:
            for event in self._sse.close():
                self._event(event.data, deltas)
        self.check_end()
        if not self.done and self.finish_reason is None:
            raise self.error("The stream ended before the reply finished")
        return deltas

    def check_end(self) -> None:
        """At the end of the body: raise for an empty, unfinished reply that means overflow."""
        empty = not (self._text or self._reasoning)
        if self.empty_is_overflow and empty and self.finish_reason is None:
            raise ContextLengthError(
                context_overflow_message(
                    "the server ended the reply with no text and no finish reason",
                    f"'{self.model}'",
                )
            )

    def error(self, message: str) -> StreamError:
        """A StreamError carrying everything received so far."""
        kept = f"; the {len(self.text)} characters received are kept" if self._text else ""
        return StreamError(
            f"{message}{kept}. Run the cell again to retry.",
            partial_text=self.text,
            partial_reasoning=self.reasoning,
        )

    def _event(self, data: str, deltas: list[ContentDelta | ReasoningDelta]) -> None:
        # This runs once per streamed token, so it is written for speed: json gives plain
        # dicts and lists, and exact type checks cost a fraction of isinstance(x, Mapping).
        if data == "[DONE]":
            self.done = True
            return
        try:
            payload, end = _raw_decode(data)  # the usual case: exactly one JSON value
            if end != len(data):
                raise ValueError(data)
        except ValueError:
            try:  # surrounding whitespace, or not JSON at all
                payload = _decode_json(data)
            except ValueError:
                raise self.error(
                    f"The stream carried malformed data {shorten(data, 60)!r}"
                ) from None
        if type(payload) is not dict:
            raise self.error(f"The stream carried unexpected data {shorten(data, 60)!r}")
        if self.reported_model is None:
            self.reported_model = str(payload.get("model") or "")
        choices = payload.get("choices")
        if choices and type(choices) is list and type(choice := choices[0]) is dict:
            delta = choice.get("delta")
            if delta and type(delta) is dict:
                content = delta.get("content")
                if "reasoning_content" in delta or "reasoning" in delta:
                    reasoning = delta.get("reasoning_content") or delta.get("reasoning")
                    if reasoning:
                        self._reasoning.append(reasoning)
                        deltas.append(ReasoningDelta(reasoning))
                if content:
                    self._text.append(content)
                    deltas.append(ContentDelta(content))
            finish_reason = choice.get("finish_reason")
            if finish_reason:
                self.finish_reason = finish_reason
                if finish_reason == "error":  # vLLM-family servers end a failed reply so
                    raise self.error("The model stopped with an error (finish_reason 'error')")
        if "error" in payload or "usage" in payload:
            self._extra_fields(payload)

    def _extra_fields(self, payload: dict[str, Any]) -> None:
        """An ``error`` object raises (keeping the text); a ``usage`` object is kept."""
        if "error" in payload:
            problem = _error_message(payload)
            if problem:
                raise self.error(f"The model stopped with an error: {shorten(problem, 160)}")
        usage = payload.get("usage")
        if type(usage) is dict:
            self.usage = Usage.from_json(usage)


# --- images ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageRef:
    """One image of an answer: decoded bytes with their MIME type, or a URL to fetch."""

    data: bytes | None = None
    mime_type: str | None = None
    url: str | None = None


@dataclass(frozen=True)
class ImageAnswer:
    """The images of one inference answer plus what it says about them."""

    refs: list[ImageRef]
    seed: int | None = None
    cost: float | None = None
    runtime_ms: int | None = None
    request_id: str | None = None
    nsfw: tuple[bool, ...] = ()  # per image: flagged by the safety checker


_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


def sniff_image_type(data: bytes) -> str | None:
    """The MIME type from an image's magic number (PNG, JPEG, GIF or WebP), or None: the
    one sniffer of the package (answers, downloads and attachments)."""
    for signature, mime in _SIGNATURES:
        if data.startswith(signature):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def decode_data_uri(uri: str) -> ImageRef:
    """Bytes and MIME type of a ``data:image/...;base64,...`` URI, or a clear error."""
    header, sep, payload = uri.partition(",")
    if not sep or ";base64" not in header:
        raise InvalidResponseError(
            f"An image came as a data URI that is not base64 ({shorten(header, 60)!r})."
        )
    declared = header[5:].split(";", 1)[0].strip().lower()
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidResponseError(
            f"An image ({declared or 'unknown type'}) had invalid base64 data "
            f"({shorten(payload, 40)!r}), so it cannot be shown; run the cell again."
        ) from None
    return ImageRef(data=data, mime_type=_image_type(data, declared))


def _image_type(data: bytes, declared: str) -> str:
    """Trust the bytes over the label; refuse what no notebook can display."""
    sniffed = sniff_image_type(data)
    if sniffed:
        return sniffed
    if declared in IMAGE_MIME_TYPES:
        return declared
    raise InvalidResponseError(
        f"An image of unknown type ({declared or 'no type given'}, {len(data)} bytes) cannot be "
        "shown; supported: PNG, JPEG, WebP, GIF."
    )


def fetched_image_ref(data: bytes, content_type: str, url: str) -> ImageRef:
    """The ImageRef of an image downloaded from ``url``, typed by its bytes (or, failing
    that, its Content-Type header)."""
    declared = content_type.split(";", 1)[0].strip().lower()
    return ImageRef(data=data, mime_type=_image_type(data, declared), url=url)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _seed(value: Any) -> int | None:
    """A seed sent as a number or, as DeepInfra's Python SDK types it, as a string."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def _image_values(payload: Mapping[str, Any]) -> list[Any]:
    """The image entries: ``images``, Cog's ``output``, ``image_url``, or OpenAI's ``data``."""
    for key in ("images", "output", "image_url", "data"):
        values = _as_list(payload.get(key))
        if values:
            return values
    return []


def parse_image_answer(payload: Any, body: bytes) -> ImageAnswer:
    """Images under ``images``, ``output``, ``image_url`` (one value or a list) or (OpenAI's
    shape) ``data``."""
    if not isinstance(payload, Mapping):
        raise InvalidResponseError(
            f"Unexpected image answer: {shorten(body.decode(errors='replace'))}."
        )
    refs: list[ImageRef] = []
    for value in _image_values(payload):
        if isinstance(value, Mapping):  # some models wrap it: {"url": ...} / {"b64_json": ...}
            value = value.get("url") or value.get("image_url") or value.get("b64_json") or ""
            if value and not str(value).startswith(("data:", "http")):
                value = "data:image/png;base64," + str(value)  # the bytes decide the type
        text = str(value)
        if text.startswith("data:"):
            refs.append(decode_data_uri(text))
        elif text.startswith(("http://", "https://")):
            refs.append(ImageRef(url=text))
    if not refs:
        problem = _error_message(payload)  # Cog answers carry {"status": "failed", "error": …}
        reason = f" ({shorten(problem, 160)})" if problem else ""
        raise InvalidResponseError(
            f"The answer held no images{reason}: "
            f"{shorten(body.decode('utf-8', errors='replace'), 160)}. Try another prompt or model."
        )
    status = payload.get("inference_status")
    status = status if isinstance(status, Mapping) else {}
    cost = status.get("cost")
    runtime = status.get("runtime_ms")
    flags = payload.get("nsfw_content_detected")
    return ImageAnswer(
        refs=refs,
        seed=_seed(payload.get("seed")),
        cost=float(cost) if isinstance(cost, (int, float)) else None,
        runtime_ms=int(runtime) if isinstance(runtime, (int, float)) else None,
        request_id=str(payload["request_id"]) if payload.get("request_id") else None,
        nsfw=tuple(flag is True for flag in flags) if isinstance(flags, list) else (),
    )


# --- catalog ---------------------------------------------------------------------------


def parse_catalog(payload: Any) -> list[dict[str, Any]]:
    """The model entries of ``/models/featured`` (a list, or wrapped in a dict)."""
    entries = payload
    if isinstance(payload, Mapping):
        entries = payload.get("models") or payload.get("data") or []
    if not isinstance(entries, list):
        raise InvalidResponseError("The model catalog answer was not a list of models.")
    return [
        dict(entry) for entry in entries if isinstance(entry, Mapping) and entry.get("model_name")
    ]


# DeepInfra's OpenAPI: /v1/inference answers 423 while a model deploys (see RetryPolicy).
LOADING_STATUS = 423
