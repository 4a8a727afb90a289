"""Server configuration, injectable faults, request records and chat planning."""

from __future__ import annotations

import base64
import dataclasses
import math
import re
import struct
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, get_args

from .catalog import DEFAULT_CATALOG, CatalogModel
from .replies import (
    _content_text,
    _fill_to_bytes,
    _last_user_text,
    default_reasoning,
    default_reply,
    filler_reply,
    tokenize,
)
from .scoped_jwt import REFUSAL_SHAPES
from .wire import (
    CHAT_PATH,
    BodyStyle,
    ImageFault,
    ImageSize,
    ImageStyle,
    chat_chunk,
    chat_completion,
    dumps,
    usage_block,
    usage_chunk,
)

# --------------------------------------------------------------------------------------------
# Configuration, faults, scripts and logs


@dataclass
class ServerConfig:
    """Behaviour knobs, set with ``FakeDeepInfra.configure`` or ``POST /_fake/config``."""

    token_delay: float = 0.0  # seconds between streamed chat events
    first_byte_delay: float = 0.0  # seconds before a chat response's status line
    reply_tokens: int | None = None  # chat replies of N filler tokens instead of the echo
    image_style: ImageStyle = "images"
    image_size: ImageSize = "small"  # "full": images at the requested size
    image_delay: float = 0.0  # seconds per generated image
    image_delay_by_seed: dict[int, float] = field(default_factory=dict)  # overrides image_delay
    max_concurrent: int | None = None  # in-flight API requests before 429
    valid_keys: set[str] = field(default_factory=set)  # empty: any non-empty key is accepted
    seed_as_string: bool = False  # image answers give the seed as a string (S8's type)
    nsfw_seeds: set[int] = field(default_factory=set)  # images flagged by the safety checker
    extra_models: set[str] = field(default_factory=set)  # served though not in the catalog
    catalog: tuple[CatalogModel, ...] = DEFAULT_CATALOG
    # The OpenAI model list checks the key, as on servers started with one: vLLM's
    # ``--api-key`` guards every /v1 route (docs.vllm.ai, "OpenAI-Compatible Server"), and
    # LiteLLM's proxy answers /v1/models only with a key it issued (docs.litellm.ai,
    # "Virtual Keys"). DeepInfra's own list answers without one (server.py, MODELS_PATH).
    models_need_key: bool = False
    # Scoped JWTs (scoped_jwt.py): how refusals look, the account's key names, the clock.
    scoped_refusal: str = "by_reason"  # one of scoped_jwt.REFUSAL_SHAPES
    key_names: dict[str, str] = field(default_factory=dict)  # key → name (default "auto")
    clock_offset: float = 0.0  # seconds the fake's clock runs ahead (to outlive a token)
    cors: bool = True  # answer web pages' CORS preflights and allow any origin

    def model(self, name: str) -> CatalogModel | None:
        """The catalog entry called ``name``, if any."""
        return next((entry for entry in self.catalog if entry.name == name), None)


_CONFIG_FIELDS = frozenset(f.name for f in dataclasses.fields(ServerConfig))


def _check_choice(name: str, value: Any, choices: tuple[Any, ...]) -> None:
    """Reject a value outside a Literal's choices, naming the field."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, not {value!r}")


def _coerce_config(changes: Mapping[str, Any]) -> dict[str, Any]:
    """Validate config changes and turn their JSON forms (lists, string keys) into Python ones."""
    unknown = set(changes) - _CONFIG_FIELDS
    if unknown:
        raise TypeError(f"unknown config fields: {sorted(unknown)}")
    coerced = dict(changes)
    for name in ("valid_keys", "extra_models", "nsfw_seeds"):
        if name in coerced:
            coerced[name] = set(coerced[name])
    if "image_delay_by_seed" in coerced:
        coerced["image_delay_by_seed"] = {
            int(seed): float(delay) for seed, delay in coerced["image_delay_by_seed"].items()
        }
    if "catalog" in coerced:
        coerced["catalog"] = tuple(
            entry if isinstance(entry, CatalogModel) else CatalogModel.from_json(entry)
            for entry in coerced["catalog"]
        )
    if "image_style" in coerced:
        _check_choice("image_style", coerced["image_style"], get_args(ImageStyle))
    if "image_size" in coerced:
        _check_choice("image_size", coerced["image_size"], get_args(ImageSize))
    if "scoped_refusal" in coerced:
        _check_choice("scoped_refusal", coerced["scoped_refusal"], REFUSAL_SHAPES)
    return coerced


@dataclass
class FaultRule:
    """What to do to the next ``times`` requests whose path matches the glob ``path``.

    Stream-shaping fields act on streamed chat only; their counts ``K`` are content events
    (the role chunk and any reasoning chunks come first and are not counted).
    """

    path: str = CHAT_PATH
    times: int | None = 1  # requests it still applies to; None: forever
    # Only requests whose last user message contains this (as ScriptedReply.match), so a
    # test can slow one row of a map, whatever order its requests arrive in.
    match: str | None = None
    status: int | None = None  # answer with this error status instead
    body_style: BodyStyle = "detail_str"
    message: str | None = None  # error text instead of the status phrase
    headers: dict[str, str] = field(default_factory=dict)  # added to the response
    first_byte_delay: float | None = None  # before anything, even the status line
    token_delay: float | None = None  # overrides the config for this stream
    reply_tokens: int | None = None  # overrides the config for this reply
    text: str | None = None  # the reply text, before any script
    disconnect_after: int | None = None  # drop the connection after K content events
    malformed_after: int | None = None  # after K content events send ``data: {not json``
    error_event_after: int | None = None  # after K content events send an error event, end
    no_done: bool = False  # no [DONE], and the last event lacks its blank line
    huge_chunk_bytes: int | None = None  # the whole reply as one content event of N bytes
    split_utf8: bool = False  # each event in two HTTP chunks, split inside a UTF-8 character
    # Every event up to the end (or the error event) in ONE write: the client reads earlier
    # text and the error together. deepinfra-real-shapes.md row 8 (S18, S15): an in-stream
    # error comes after some content; SSE (WHATWG HTML "Server-sent events") ties no event
    # to a network read, so a server or proxy may deliver them in one.
    one_write: bool = False
    comments: bool = False  # ``: keep-alive`` comments between events
    multi_data: bool = False  # the first content event's JSON over two ``data:`` lines
    crlf: bool = False  # CRLF line endings
    finish_error: bool = False  # end with ``finish_reason: "error"`` (vLLM family, S20)
    hang_up: bool = False  # read the request, then close without a byte of answer
    cut_body: bool = False  # a whole (non-streamed) answer stops halfway: the line dropped
    image_fault: ImageFault | None = None

    def __post_init__(self) -> None:
        _check_choice("body_style", self.body_style, get_args(BodyStyle))
        if self.image_fault is not None:
            _check_choice("image_fault", self.image_fault, get_args(ImageFault))
        if self.times is not None and self.times < 1:
            raise ValueError("times must be None or at least 1")


_NO_FAULT = FaultRule(path="", times=None)
"""Stands in when no rule matches, so request handling needs no None checks."""


@dataclass(frozen=True)
class ScriptedReply:
    """A canned chat reply for the next chat request whose last user message contains ``match``."""

    text: str
    match: str | None = None  # None: the next chat request, whatever it says
    reasoning: str | None = None  # streamed as reasoning_content first, on any model


@dataclass(frozen=True)
class RequestRecord:
    """One API request as the server received it (control requests are not logged)."""

    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    json: Any  # parsed body, or None
    time: float


@dataclass(frozen=True)
class DisconnectRecord:
    """A client that went away before its response was completely written."""

    path: str
    events_sent: int  # SSE events written before it left (0 for non-streamed responses)
    time: float


@dataclass
class _ChatPlan:
    """Everything a chat response will contain, decided before the first byte goes out."""

    completion_id: str
    created: int
    model: str
    reasoning: list[str]
    content: list[str]
    finish_reason: str
    usage: dict[str, Any]

    def chunk(
        self,
        delta: dict[str, Any],
        finish_reason: str | None = None,
        usage: dict[str, Any] | None = None,
    ) -> str:
        """A stream chunk of this reply, as JSON text."""
        return dumps(
            chat_chunk(self.completion_id, self.created, self.model, delta, finish_reason, usage)
        )

    def usage_chunk(self) -> str:
        """The usage chunk of this reply, as JSON text."""
        return dumps(usage_chunk(self.completion_id, self.created, self.model, self.usage))

    def completion(self) -> dict[str, Any]:
        """The non-streamed body of this reply."""
        reasoning = "".join(self.reasoning) if self.reasoning else None
        return chat_completion(
            self.completion_id,
            self.created,
            self.model,
            "".join(self.content),
            reasoning,
            self.finish_reason,
            self.usage,
        )


def _plan_chat(
    payload: dict[str, Any],
    entry: CatalogModel | None,
    rule: FaultRule,
    script: ScriptedReply | None,
    config: ServerConfig,
) -> _ChatPlan:
    """Decide reply text, tokens, finish reason and usage for a valid chat request.

    Text precedence: the fault's ``text``, then a script, then ``reply_tokens`` filler (the
    fault's, then the config's), then the generated echo.
    """
    messages = payload["messages"]
    prompt = _last_user_text(messages)
    model = payload["model"]
    filler = rule.reply_tokens or config.reply_tokens
    if rule.text is not None:
        text = rule.text
    elif script is not None:
        text = script.text
    elif filler:
        text = filler_reply(filler)
    else:
        text = default_reply(model, prompt)
    if script is not None and script.reasoning is not None:
        reasoning = tokenize(script.reasoning)
    elif entry is not None and entry.is_reasoning:
        reasoning = tokenize(default_reasoning(prompt))
    else:
        reasoning = []

    finish_reason = "error" if rule.finish_error else "stop"
    if rule.huge_chunk_bytes:
        content = [_fill_to_bytes(text, rule.huge_chunk_bytes)]
    else:
        content = tokenize(text)
        cap = payload.get("max_tokens")
        if isinstance(cap, int) and not isinstance(cap, bool) and 0 <= cap < len(content):
            content, finish_reason = content[:cap], "length"
    usage = usage_block(_prompt_tokens(messages), len(reasoning) + len(content), entry)
    return _ChatPlan(
        completion_id=f"chatcmpl-{uuid.uuid4().hex}",
        created=int(time.time()),
        model=model,
        reasoning=reasoning,
        content=content,
        finish_reason=finish_reason,
        usage=usage,
    )


def _prompt_tokens(messages: list[dict[str, Any]]) -> int:
    """The fake's token count of a prompt: one token per four characters."""
    prompt_chars = sum(len(_content_text(m.get("content"))) for m in messages)
    return max(1, math.ceil(prompt_chars / 4))


def _chat_body_problem(payload: Any) -> str | None:
    """Name of the first invalid field of a chat request body, or None if it is valid."""
    if not isinstance(payload, dict):
        return "messages"
    if not isinstance(payload.get("model"), str):
        return "model"
    messages = payload.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages"
    if not all(isinstance(message, dict) for message in messages):
        return "messages"
    return None


# Vision input: a user message's ``content`` may be a list of parts, and an image part is
# ``{"type": "image_url", "image_url": {"url": "https://..." | "data:image/png;base64,..."}}``
# (docs.deepinfra.com/chat/vision; OpenAPI ChatCompletionContentPartImage / ImageURL, which
# is OpenAI's content-part shape). The fake checks that every data URL decodes to an image
# of the type it states, with a readable width and height, and answers 422 otherwise.
_DATA_URL = re.compile(r"^data:(image/(?:png|jpeg|webp|gif));base64,(.*)$", re.DOTALL)


def _stated_image_size(data: bytes, mime: str) -> tuple[int, int] | None:
    """Width and height from the header of a PNG/JPEG/WebP/GIF of type ``mime``, or None."""
    if mime == "image/png" and data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR":
        return struct.unpack(">II", data[16:24])
    if mime == "image/gif" and data[:6] in (b"GIF87a", b"GIF89a"):
        return struct.unpack("<HH", data[6:10])
    if mime == "image/webp" and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        kind = data[12:16]
        if kind == b"VP8X":
            width, height = data[24:27], data[27:30]
            return 1 + int.from_bytes(width, "little"), 1 + int.from_bytes(height, "little")
        if kind == b"VP8L":
            bits = int.from_bytes(data[21:25], "little")
            return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        if kind == b"VP8 ":
            width, height = struct.unpack("<HH", data[26:30])
            return width & 0x3FFF, height & 0x3FFF
        return None
    if mime == "image/jpeg" and data.startswith(b"\xff\xd8"):
        index = 2
        while index + 9 < len(data):
            marker = data[index + 1]
            if data[index] == 0xFF and 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                height, width = struct.unpack(">HH", data[index + 5 : index + 9])
                return width, height
            index += 2 + struct.unpack(">H", data[index + 2 : index + 4])[0]
    return None


IMAGES_REFUSED = (
    "image input is not supported - hint: if this is unexpected, you may need to provide the mmproj"
)


def _has_images(messages: list[dict[str, Any]]) -> bool:
    """Whether any message carries an ``image_url`` part."""
    return any(
        isinstance(part, dict) and part.get("type") == "image_url"
        for message in messages
        if isinstance(message.get("content"), list)
        for part in message["content"]
    )


def _image_part_problem(messages: list[dict[str, Any]]) -> tuple[str, str] | None:
    """(field, message) for the first ``image_url`` part that is not a valid image."""
    for m, message in enumerate(messages):
        parts = message.get("content")
        for p, part in enumerate(parts if isinstance(parts, list) else []):
            if not isinstance(part, dict) or part.get("type") != "image_url":
                continue
            where = f"messages.{m}.content.{p}.image_url"
            url = (part.get("image_url") or {}).get("url")
            if not isinstance(url, str):
                return where, "field required"
            if url.startswith("https://"):
                continue
            match = _DATA_URL.match(url)
            if match is None:
                return where, "expected an https URL or a data:image/...;base64 URL"
            try:
                data = base64.b64decode(match.group(2), validate=True)
            except ValueError:
                return where, "invalid base64 image data"
            size = _stated_image_size(data, match.group(1))
            if size is None or min(size) < 1:
                return where, f"the data is not a valid {match.group(1)} image"
    return None


def _image_cost(pricing: dict[str, Any], payload: dict[str, Any], width: int, height: int) -> float:
    """Dollars for one image: flat when ``default_price_cents`` is set (S4), else image
    units of default width × height × iterations (S3's formula, S21)."""
    if pricing.get("default_price_cents") is not None:
        return float(pricing["default_price_cents"]) / 100
    iterations = pricing.get("default_iterations") or 1
    steps = _positive_int(payload.get("num_inference_steps"), iterations)
    default_size: int = pricing["default_width"] * pricing["default_height"] * iterations
    units = width * height * steps / default_size
    return float(pricing["cents_per_image_unit"]) * units / 100


def _positive_int(value: Any, default: int) -> int:
    """``value`` if it is a positive int (bools excluded), else ``default``."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return default
