"""A fake DeepInfra HTTP API for tests and benchmarks (stdlib only).

It is a real HTTP/1.1 server on 127.0.0.1 serving the shapes of DeepInfra's featured catalog,
its OpenAI-compatible chat completions (streamed and not) and its text-to-image inference,
with scripted replies, a queue of injectable faults, a request log and detection of clients
that hang up mid-response.

In-process::

    with FakeDeepInfra() as server:
        server.add_fault(status=502, body_style="html")
        ...  # point the client at server.url

Every wire shape cites its source in a comment, by the ids of
``shared/reference/deepinfra-real-shapes.md`` (public material nobody on this project wrote):
S1 DeepInfra's streaming docs, S2 a model page's chat answer, S3/S4 the FLUX and sd3.5 model
pages, S5 the inference docs, S6 the rate-limit docs, S7 DeepInfra's OpenAPI document, S8/S9
DeepInfra's Python and Node SDKs, S13-S17 issue threads quoting real answers, S19 OpenAI's
``include_usage`` chunk, S20 ``finish_reason: "error"``, S21 real catalog values.

Out of process, ``python -m tests.fake_server`` prints ``FAKE_DEEPINFRA_URL=http://127.0.0.1:PORT``
and serves until SIGTERM/SIGINT; it is then driven over HTTP under ``/_fake/`` (see
``FakeDeepInfra.control``), which calls the same methods as the Python API.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import copy
import dataclasses
import fnmatch
import functools
import hashlib
import http.client
import json
import math
import random
import re
import signal
import socket
import socketserver
import struct
import subprocess
import sys
import threading
import time
import uuid
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Generic, Literal, NoReturn, TypeVar, get_args, overload
from urllib.parse import unquote, urlsplit

from tests import fake_batches

CANARY_KEY = "sk-canary-DO-NOT-LEAK-4f9d2c7e81b3"
"""A recognisable API key: tests use it and then assert it never leaks into output or files."""

URL_LINE_PREFIX = "FAKE_DEEPINFRA_URL="
"""Prefix of the single line the subprocess server prints once it is listening."""

CHAT_PATH = "/v1/openai/chat/completions"
MODELS_PATH = "/v1/openai/models"
FEATURED_PATH = "/models/featured"
INFERENCE_PREFIX = "/v1/inference/"
OPENAI_IMAGES_PATH = "/v1/openai/images/generations"  # S3, S7 (OpenAIImagesOut)
RATE_LIMIT_PATH = "/v1/me/rate_limit"  # S7: HTTPBearer, answers RateLimitOut
FILES_PREFIX = "/files/"
CONTROL_PREFIX = "/_fake/"

ImageStyle = Literal["images", "images_single", "output", "image_url", "url", "jpeg", "webp"]
IMAGE_STYLE_MIME: dict[str, str] = {
    "images": "image/png",
    "images_single": "image/png",
    "output": "image/png",
    "image_url": "image/png",
    "url": "image/png",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
}
"""Each answer style, and the MIME type of the images it carries (for parametrised tests)."""
ImageSize = Literal["small", "full"]
BodyStyle = Literal[
    "detail_str", "detail_obj", "detail_list", "error_obj", "deep_error", "html", "text", "empty"
]
ImageFault = Literal["invalid_base64", "unknown_mime", "zero_images", "big", "url_404"]

SMALL_IMAGE_MAX_SIDE = 64
"""With ``image_size="small"`` images are scaled down to fit this many pixels a side."""

# 8x8 images made once with Pillow (JPEG quality 50; lossless WebP), for MIME-type tests.
TINY_JPEG = base64.b64decode(
    "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDABALDA4MChAODQ4SERATGCgaGBYWGDEjJR0oOjM9PDkzODdASFxOQERX"
    "RTc4UG1RV19iZ2hnPk1xeXBkeFxlZ2P/2wBDARESEhgVGC8aGi9jQjhCY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2Nj"
    "Y2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2P/wAARCAAIAAgDASIAAhEBAxEB/8QAFQABAQAAAAAAAAAAAAAAAAAA"
    "AAT/xAAWEAEBAQAAAAAAAAAAAAAAAAAAARH/xAAUAQEAAAAAAAAAAAAAAAAAAAAF/8QAGREAAwEBAQAAAAAAAAAA"
    "AAAAAQIDABEh/9oADAMBAAIRAxEAPwCaTAB9KNRizH3NTmslCIOAb//Z"
)
TINY_WEBP = base64.b64decode("UklGRiQAAABXRUJQVlA4TBcAAAAvB8ABAA9wFKhbIR+Fdv5jCfMQ0f94AAA=")

_MIME_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}


# --------------------------------------------------------------------------------------------
# Catalog


def token_pricing(cents_per_input_token: float, cents_per_output_token: float) -> dict[str, Any]:
    """Pricing block of a text model, in cents per token as DeepInfra reports it."""
    return {
        "type": "tokens",
        "cents_per_input_token": cents_per_input_token,
        "cents_per_output_token": cents_per_output_token,
    }


def image_pricing(
    cents_per_image_unit: float,
    size: int = 1024,
    iterations: int = 1,
    flat_cents: float | None = None,
) -> dict[str, Any]:
    """Pricing block of a text-to-image model (S7 ``ModelPricingImageUnits``): one image
    unit is one image at the default width × height × iterations (S3, S21);
    ``default_price_cents`` is the price of a default image, flat for models such as sd3.5
    ("$0.06 / img", S4)."""
    return {
        "type": "image_units",
        "cents_per_image_unit": cents_per_image_unit,
        "default_width": size,
        "default_height": size,
        "default_iterations": iterations,
        "default_price_cents": flat_cents,
        "usage_from_cost": False,
    }


@dataclass(frozen=True)
class CatalogModel:
    """One featured-catalog entry; ``to_json`` gives the wire shape of ``GET /models/featured``."""

    name: str
    type: str
    description: str
    max_tokens: int | None = None
    pricing: dict[str, Any] | None = None
    tags: tuple[str, ...] = ()
    reported_type: str | None = None  # None: same as ``type``
    deprecated: int | None = None  # S7 ModelOut, S21: epoch seconds of the deprecation
    replaced_by: str | None = None  # S7 ModelOut, S21

    @property
    def is_text(self) -> bool:
        """Whether chat completions accept this model."""
        return self.type == "text-generation"

    @property
    def is_image(self) -> bool:
        """Whether ``/v1/inference`` treats this model as text-to-image."""
        return self.type == "text-to-image"

    @property
    def is_reasoning(self) -> bool:
        """Whether the model streams ``reasoning_content`` before its answer."""
        return "reasoning" in self.tags

    def to_json(self) -> dict[str, Any]:
        """The entry as DeepInfra serves it."""
        return {
            "model_name": self.name,
            "type": self.type,
            "reported_type": self.reported_type or self.type,
            "description": self.description,
            "max_tokens": self.max_tokens,
            "pricing": self.pricing,
            "tags": list(self.tags),
            "deprecated": self.deprecated,
            "replaced_by": self.replaced_by,
            "quantization": None,
            "cover_img_url": f"https://shared.deepinfra.com/models/{self.name}/cover_image.webp",
        }

    @classmethod
    def from_json(cls, entry: Mapping[str, Any]) -> CatalogModel:
        """Inverse of ``to_json``, so a catalog can be configured over HTTP."""
        return cls(
            name=entry["model_name"],
            type=entry["type"],
            description=entry.get("description", ""),
            max_tokens=entry.get("max_tokens"),
            pricing=entry.get("pricing"),
            tags=tuple(entry.get("tags", ())),
            reported_type=entry.get("reported_type"),
            deprecated=entry.get("deprecated"),
            replaced_by=entry.get("replaced_by"),
        )


TEXT_GENERATION = "text-generation"
TEXT_TO_IMAGE = "text-to-image"

DEFAULT_CATALOG: tuple[CatalogModel, ...] = (
    CatalogModel(
        "meta-llama/Llama-3.3-70B-Instruct-Turbo",
        TEXT_GENERATION,
        "Llama 3.3 70B, quantised for fast inference.",
        131072,
        token_pricing(2.3e-05, 4e-05),
        ("chat", "fast"),
    ),
    CatalogModel(
        "meta-llama/Meta-Llama-3.1-8B-Instruct",
        TEXT_GENERATION,
        "Small, cheap Llama 3.1 for simple tasks.",
        131072,
        token_pricing(3e-06, 5e-06),
        ("chat",),
    ),
    CatalogModel(
        "Qwen/Qwen2.5-72B-Instruct",
        TEXT_GENERATION,
        "Qwen 2.5 72B, strong at code and maths.",
        32768,
        token_pricing(1.2e-05, 3.9e-05),
        ("chat", "code"),
    ),
    CatalogModel(
        "mistralai/Mistral-Small-24B-Instruct-2501",
        TEXT_GENERATION,
        "Mistral Small 3, a 24B model with low latency.",
        32768,
        token_pricing(6e-06, 1.2e-05),
        ("chat",),
    ),
    CatalogModel(
        "deepseek-ai/DeepSeek-R1",
        TEXT_GENERATION,
        "DeepSeek R1 reasoning model: thinks before it answers.",
        163840,
        token_pricing(7.5e-05, 2.4e-04),
        ("chat", "reasoning"),
    ),
    CatalogModel(
        "google/gemma-3-27b-it",
        TEXT_GENERATION,
        "Gemma 3 27B; no published context length or pricing.",
    ),
    # S21: a real deprecated entry, and the model that replaces it.
    CatalogModel(
        "Austism/chronos-hermes-13b-v2",
        TEXT_GENERATION,
        "Chronos Hermes 13B v2 (deprecated).",
        4096,
        token_pricing(1.3e-05, 1.3e-05),
        ("chat",),
        deprecated=1727971605,
        replaced_by="Gryphe/MythoMax-L2-13b",
    ),
    CatalogModel(
        "Gryphe/MythoMax-L2-13b",
        TEXT_GENERATION,
        "MythoMax L2 13B.",
        4096,
        token_pricing(7.2e-06, 7.2e-06),
        ("chat",),
    ),
    # S3: "$0.0005 x (width/1024) x (height/1024) x iters".
    CatalogModel(
        "black-forest-labs/FLUX-1-schnell",
        TEXT_TO_IMAGE,
        "FLUX.1 [schnell]: images in a few steps.",
        None,
        image_pricing(0.05),
        ("image",),
    ),
    CatalogModel(
        "black-forest-labs/FLUX-1-dev",
        TEXT_TO_IMAGE,
        "FLUX.1 [dev]: higher quality, slower.",
        None,
        image_pricing(0.036, iterations=25),
        ("image",),
    ),
    # S4: sd3.5 takes aspect_ratio (no width/height) and costs a flat "$0.06 / img".
    CatalogModel(
        "stabilityai/sd3.5",
        TEXT_TO_IMAGE,
        "Stable Diffusion 3.5 Large.",
        None,
        image_pricing(6.0, flat_cents=6.0),
        ("image",),
    ),
    # S9: a Cog-packaged model: request {"input": {...}}, answer {"status", "output": [...]}.
    CatalogModel(
        "stability-ai/sdxl",
        TEXT_TO_IMAGE,
        "SDXL, packaged with Cog.",
        None,
        image_pricing(0.25),
        ("image",),
    ),
    CatalogModel(
        "BAAI/bge-large-en-v1.5",
        "embeddings",
        "Text embeddings; clients must not offer it for chat.",
        512,
        {"type": "input_tokens", "cents_per_input_token": 1e-06},
    ),
    CatalogModel(
        "openai/whisper-large-v3",
        "automatic-speech-recognition",
        "Speech to text; clients must not offer it for chat.",
        None,
        {"type": "input_length", "cents_per_sec": 0.0045},
    ),
)


ASPECT_RATIO_MODELS = frozenset({"stabilityai/sd3.5"})
"""Models that size images by ``aspect_ratio`` and ignore width/height (S4)."""
COG_MODELS = frozenset({"stability-ai/sdxl"})
"""Models that want ``{"input": {...}}`` and answer in Cog's shape (S9)."""
_ASPECT_RATIOS = {"1:1": (1, 1), "16:9": (16, 9), "9:16": (9, 16), "4:3": (4, 3), "3:4": (3, 4)}


# --------------------------------------------------------------------------------------------
# Wire shapes: every JSON body the server sends is built here.


def dumps(obj: Any) -> str:
    """JSON as DeepInfra writes it: non-ASCII characters raw, not escaped."""
    return json.dumps(obj, ensure_ascii=False)


def validation_error(
    field_name: str, msg: str = "Field required", given: Any = None
) -> dict[str, Any]:
    """A 422 in pydantic v2's form (S17; S7 ``HTTPValidationError``)."""
    item = {"type": "missing", "loc": ["body", field_name], "msg": msg, "input": given}
    return {"detail": [item]}


def detail_error(message: str) -> dict[str, Any]:
    """``{"detail": "..."}``: FastAPI's plain error body (S7's API is FastAPI)."""
    return {"detail": message}


def deep_error(message: str) -> dict[str, Any]:
    """S7 ``DeepError``: ``{"error": "Model not found"}`` (403/404/423 on /v1/inference)."""
    return {"error": message}


def model_unavailable() -> dict[str, Any]:
    """The 404 body for a model it does not serve (S7 ``DeepError`` example)."""
    return deep_error("Model not found")


def not_authenticated() -> dict[str, Any]:
    """403 for a request without a key (S13)."""
    return {"detail": {"error": "Not authenticated"}}


def openai_error(message: str, status: int) -> dict[str, Any]:
    """The OpenAI-style envelope DeepInfra uses on its OpenAI routes (S14, S15, S16)."""
    error = {"message": message, "type": _error_type(status), "param": None, "code": None}
    return {"error": error}


def _error_type(status: int) -> str:
    """OpenAI-style error ``type`` for a status code."""
    if status == 429:
        return "rate_limit_error"
    return "invalid_request_error" if status < 500 else "server_error"


def error_body(
    style: BodyStyle, status: int, message: str | None = None
) -> tuple[bytes, str | None]:
    """An error response in one of the styles seen from DeepInfra or proxies in front of it.

    Returns the body and its content type (None for an empty body).
    """
    phrase = http.client.responses.get(status, "Error")
    text = message if message is not None else phrase
    if style == "html":
        title = f"{status} {phrase}"
        page = (
            f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
            f"<center><h1>{message or title}</h1></center>\r\n"
            "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
        )
        return page.encode(), "text/html"
    if style == "text":
        return text.encode(), "text/plain; charset=utf-8"
    if style == "empty":
        return b"", None
    payload: dict[str, Any]
    if style == "detail_str":
        payload = detail_error(text)
    elif style == "detail_obj":
        payload = {"detail": {"error": text}}
    elif style == "detail_list":
        payload = validation_error("messages", message or "Field required")
    elif style == "deep_error":
        payload = deep_error(text)
    else:
        payload = openai_error(text, status)
    return dumps(payload).encode(), "application/json"


STREAM_ERROR_EVENT: dict[str, Any] = {
    "error": {"message": "Internal error while generating", "type": "server_error"}
}
"""What DeepInfra sends inside an SSE stream when generation fails after headers went out."""


def model_list(names: list[str]) -> dict[str, Any]:
    """Body of ``GET /v1/openai/models``."""
    return {
        "object": "list",
        "data": [{"id": name, "object": "model", "owned_by": "deepinfra"} for name in names],
    }


def usage_block(
    prompt_tokens: int, completion_tokens: int, model: CatalogModel | None
) -> dict[str, Any]:
    """Token usage with DeepInfra's ``estimated_cost`` in dollars (S2: a non-streamed
    answer), from the catalog pricing."""
    pricing = model.pricing if model is not None else None
    cost = 0.0
    if pricing is not None and pricing.get("type") == "tokens":
        cents = (
            prompt_tokens * pricing["cents_per_input_token"]
            + completion_tokens * pricing["cents_per_output_token"]
        )
        cost = cents / 100
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "estimated_cost": cost,
    }


def finish_usage(usage: dict[str, Any]) -> dict[str, Any]:
    """Usage as DeepInfra's streaming docs put it on the finish chunk: token counts only,
    no ``total_tokens`` and no ``estimated_cost`` (S1)."""
    return {
        "prompt_tokens": usage["prompt_tokens"],
        "completion_tokens": usage["completion_tokens"],
    }


def chat_chunk(
    completion_id: str,
    created: int,
    model: str,
    delta: dict[str, Any] | None,
    finish_reason: str | None = None,
    usage: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One ``chat.completion.chunk`` of a streamed reply (S1); the finish chunk carries
    ``usage`` (S1)."""
    chunk: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}],
    }
    if usage is not None:
        chunk["usage"] = usage
    return chunk


def usage_chunk(
    completion_id: str, created: int, model: str, usage: dict[str, Any]
) -> dict[str, Any]:
    """OpenAI's trailing chunk when ``stream_options.include_usage`` is true: no choices
    (S19). Token counts only: no source shows ``estimated_cost`` in a stream."""
    usage = {**finish_usage(usage), "total_tokens": usage["total_tokens"]}
    return {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [],
        "usage": usage,
    }


def chat_completion(
    completion_id: str,
    created: int,
    model: str,
    content: str,
    reasoning: str | None,
    finish_reason: str,
    usage: dict[str, Any],
) -> dict[str, Any]:
    """A non-streamed ``chat.completion``; ``reasoning_content`` only when there is some."""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if reasoning is not None:
        message["reasoning_content"] = reasoning
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": usage,
    }


def image_response(
    style: ImageStyle,
    refs: list[str],
    seed: int | str,
    runtime_ms: int,
    cost: float,
    nsfw: list[bool] | None = None,
) -> dict[str, Any]:
    """Body of a successful ``/v1/inference`` call, with the images placed as ``style`` says.

    The FLUX page's example (S3, S4, S5): ``request_id: null``, ``nsfw_content_detected``
    per image, ``inference_status`` with ``"status": "unknown"``.
    """
    images: dict[str, Any]
    if style == "images_single":
        images = {"images": refs[0] if refs else ""}
    elif style == "output":
        images = {"output": refs}
    elif style == "image_url":
        images = {"image_url": refs[0] if refs else ""}
    else:
        images = {"images": refs}
    return {
        "request_id": None,
        "seed": seed,
        **images,
        "nsfw_content_detected": nsfw if nsfw is not None else [False] * max(1, len(refs)),
        "inference_status": {
            "status": "unknown",
            "runtime_ms": runtime_ms,
            "cost": cost,
            "tokens_input": None,
            "tokens_generated": None,
        },
    }


def cog_response(refs: list[str], runtime_ms: int, cost: float) -> dict[str, Any]:
    """A Cog model's answer (S9 ``cog/response.ts``): status, ``output`` list, ``error``."""
    return {
        "request_id": None,
        "status": "succeeded",
        "output": refs,
        "error": None,
        "inference_status": {"status": "succeeded", "runtime_ms": runtime_ms, "cost": cost},
    }


def openai_images_response(images: list[bytes], prompt: str) -> dict[str, Any]:
    """``POST /v1/openai/images/generations`` (S3, S7 ``OpenAIImagesOut``): raw base64 in
    ``b64_json``, whatever the real format (S10)."""
    data = [
        {"b64_json": base64.b64encode(image).decode(), "revised_prompt": prompt, "url": None}
        for image in images
    ]
    return {"created": int(time.time()), "data": data}


def sse_event(data: str, *, eol: str = "\n", split_json: bool = False, end: bool = True) -> bytes:
    """One server-sent event carrying ``data``.

    ``split_json`` spreads the JSON over two ``data:`` lines after its first comma (joining
    them with a newline, as SSE says, keeps it valid JSON); ``end=False`` leaves off the blank
    line that terminates the event.
    """
    lines = [data]
    if split_json and "," in data:
        cut = data.index(",") + 1
        lines = [data[:cut], data[cut:]]
    text = "".join(f"data: {line}{eol}" for line in lines)
    return (text + eol if end else text).encode()


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


# --------------------------------------------------------------------------------------------
# Images


def make_png(
    width: int, height: int, rgb: bytes | tuple[int, int, int], *, compress_level: int = 6
) -> bytes:
    """Encode an 8-bit RGB PNG; ``rgb`` is row-major pixel data or one colour to fill with."""
    if isinstance(rgb, tuple):
        rgb = bytes(rgb) * (width * height)
    stride = width * 3
    if width < 1 or height < 1 or len(rgb) != stride * height:
        raise ValueError(f"need {stride * height} bytes of RGB for {width}x{height}")
    raw = b"".join(b"\x00" + rgb[y * stride : (y + 1) * stride] for y in range(height))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, compress_level))
        + chunk(b"IEND", b"")
    )


def render_image(prompt: str, seed: int, width: int, height: int) -> bytes:
    """A PNG whose colours and pattern (checks or stripes) derive from the prompt and seed."""
    digest = hashlib.sha256(f"{seed}\x00{prompt}".encode()).digest()
    ink, paper = digest[0:3], digest[3:6]
    cell = 2 + digest[6] % max(1, min(width, height) // 4)
    row_a = b"".join(ink if (x // cell) % 2 == 0 else paper for x in range(width))
    row_b = b"".join(paper if (x // cell) % 2 == 0 else ink for x in range(width))
    pattern = digest[7] % 3
    rows = []
    for y in range(height):
        odd_band = (y // cell) % 2 == 1
        if pattern == 0:  # checks
            rows.append(row_b if odd_band else row_a)
        elif pattern == 1:  # vertical stripes
            rows.append(row_a)
        else:  # horizontal stripes
            rows.append((paper if odd_band else ink) * width)
    return make_png(width, height, b"".join(rows))


@functools.cache
def big_png() -> bytes:
    """A valid ~20 MB PNG (2580x2580, stored uncompressed); built once, then cached."""
    return make_png(2580, 2580, (200, 30, 90), compress_level=0)


@functools.lru_cache(maxsize=4)
def _data_uri(data: bytes, mime: str) -> str:
    """``data:`` URI of an image (a small cache, so the big PNG is encoded only once)."""
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


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
    return coerced


@dataclass
class FaultRule:
    """What to do to the next ``times`` requests whose path matches the glob ``path``.

    Stream-shaping fields act on streamed chat only; their counts ``K`` are content events
    (the role chunk and any reasoning chunks come first and are not counted).
    """

    path: str = CHAT_PATH
    times: int | None = 1  # requests it still applies to; None: forever
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


# --------------------------------------------------------------------------------------------
# The server


T = TypeVar("T")


class _ConfigField(Generic[T]):
    """A ServerConfig field as a server attribute, so that ``server.max_concurrent = 8`` works."""

    name: str

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, server: None, owner: type) -> _ConfigField[T]: ...

    @overload
    def __get__(self, server: FakeDeepInfra, owner: type) -> T: ...

    def __get__(self, server: FakeDeepInfra | None, owner: type) -> T | _ConfigField[T]:
        if server is None:
            return self
        value: T = getattr(server.config, self.name)
        return value

    def __set__(self, server: FakeDeepInfra, value: T) -> None:
        server.configure(**{self.name: value})


class FakeDeepInfra:
    """The fake server: state, controls and observations; ``_Handler`` does the HTTP.

    Binds a free port on 127.0.0.1 when created; ``start()`` (or ``with``) serves from a
    daemon thread, ``close()`` stops serving and closes every socket.
    """

    token_delay = _ConfigField[float]()
    first_byte_delay = _ConfigField[float]()
    reply_tokens = _ConfigField["int | None"]()
    image_style = _ConfigField[ImageStyle]()
    image_size = _ConfigField[ImageSize]()
    image_delay = _ConfigField[float]()
    image_delay_by_seed = _ConfigField["dict[int, float]"]()
    max_concurrent = _ConfigField["int | None"]()
    valid_keys = _ConfigField["set[str]"]()
    seed_as_string = _ConfigField[bool]()
    nsfw_seeds = _ConfigField["set[int]"]()
    extra_models = _ConfigField["set[str]"]()
    catalog = _ConfigField["tuple[CatalogModel, ...]"]()

    def __init__(self, port: int = 0, **config: Any) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # disconnects, open responses, sockets
        self._base_config = ServerConfig(**_coerce_config(config))
        self.config = copy.deepcopy(self._base_config)
        self._faults: list[FaultRule] = []
        self._scripts: list[ScriptedReply] = []
        self._requests: list[RequestRecord] = []
        self._disconnects: list[DisconnectRecord] = []
        self._files: dict[str, tuple[bytes, str]] = {}
        self.batch_state = fake_batches.BatchState()  # the Files and Batch API (fake_batches)
        self._in_flight = 0
        self._peak = 0
        self._open = 0
        self._connections: set[socket.socket] = set()
        self._httpd = _HTTPServer(self, port)
        self._thread: threading.Thread | None = None
        self._serving = False
        self._closed = False
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        # The base URL a user gives for DeepInfra's OpenAI-compatible API (DeepInfra's docs:
        # https://api.deepinfra.com/v1/openai); the path is what marks a host as DeepInfra.
        self.api_url = self.url + "/v1/openai"

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> FakeDeepInfra:
        """Serve from a daemon thread."""
        self._serving = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), name="fake-deepinfra", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until an exception (such as KeyboardInterrupt)."""
        self._serving = True
        self._httpd.serve_forever(poll_interval=0.05)

    def close(self) -> None:
        """Stop serving, close the listening socket and hang up on every open connection."""
        if self._closed:
            return
        self._closed = True
        if self._serving:
            self._httpd.shutdown()
        if self._thread is not None:
            self._thread.join()
        self._httpd.server_close()
        with self._changed:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        with self._changed:
            self._changed.wait_for(lambda: not self._connections, timeout=10)

    def __enter__(self) -> FakeDeepInfra:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- controls (also reachable over HTTP, see ``control``) ------------------------------------

    def configure(self, **changes: Any) -> None:
        """Change config fields (see ServerConfig); JSON forms such as lists are accepted."""
        coerced = _coerce_config(changes)
        with self._lock:
            self.config = dataclasses.replace(self.config, **coerced)

    def reset(self) -> None:
        """Forget faults, scripts, files and logs, and return to the config given at creation."""
        with self._lock:
            self.config = copy.deepcopy(self._base_config)
            self._faults.clear()
            self._scripts.clear()
            self._requests.clear()
            self._disconnects.clear()
            self._files.clear()
            self.batch_state = fake_batches.BatchState()
            self._peak = 0

    def add_fault(self, path: str = CHAT_PATH, times: int | None = 1, **action: Any) -> FaultRule:
        """Queue a fault for the next ``times`` requests matching ``path``; see FaultRule.

        A request takes the first queued rule that matches it, so rules for the same path
        apply one after another.
        """
        rule = FaultRule(path=path, times=times, **action)
        with self._lock:
            self._faults.append(rule)
        return rule

    def script_reply(
        self, text: str, match: str | None = None, reasoning: str | None = None
    ) -> None:
        """Queue a canned reply for the next chat request whose last user message contains
        ``match`` (any request when None); scripts are used once, in the order given."""
        with self._lock:
            self._scripts.append(ScriptedReply(text, match, reasoning))

    def control(self, method: str, path: str, body: Any) -> dict[str, Any] | None:
        """Carry out an HTTP control request under ``/_fake/``; None for an unknown one.

        ``POST /_fake/reset``, ``/_fake/config``, ``/_fake/fault``, ``/_fake/script``,
        ``/_fake/wait_for_disconnect`` and ``/_fake/wait_streams_closed`` take the keyword
        arguments of the method of the same name as a JSON object; ``GET /_fake/log`` returns
        ``log()``.
        """
        kwargs = body if isinstance(body, dict) else {}
        match method, path.removeprefix(CONTROL_PREFIX):
            case "GET", "log":
                return self.log()
            case "POST", "reset":
                self.reset()
            case "POST", "config":
                self.configure(**kwargs)
            case "POST", "fault":
                self.add_fault(**kwargs)
            case "POST", "script":
                self.script_reply(**kwargs)
            case "POST", "wait_for_disconnect":
                return {"ok": self.wait_for_disconnect(**kwargs)}
            case "POST", "wait_streams_closed":
                return {"ok": self.wait_streams_closed(**kwargs)}
            case _:
                return None
        return {"ok": True}

    # -- observations ------------------------------------------------------------------------

    @property
    def requests(self) -> list[RequestRecord]:
        """A snapshot of the API requests received since the last reset."""
        with self._lock:
            return list(self._requests)

    def count(self, path_glob: str, method: str | None = None) -> int:
        """How many logged requests match the path glob (and method, if given)."""
        return sum(
            1
            for record in self.requests
            if fnmatch.fnmatchcase(record.path, path_glob)
            and (method is None or record.method == method.upper())
        )

    @property
    def disconnects(self) -> int:
        """How many clients left before their response was completely written."""
        with self._lock:
            return len(self._disconnects)

    @property
    def disconnect_log(self) -> list[DisconnectRecord]:
        """A snapshot of the recorded disconnects."""
        with self._lock:
            return list(self._disconnects)

    @property
    def peak_concurrency(self) -> int:
        """The most API requests admitted at once since the last reset."""
        with self._lock:
            return self._peak

    @property
    def streams_open(self) -> int:
        """Responses being prepared or written right now."""
        with self._lock:
            return self._open

    def wait_for_disconnect(self, timeout: float, count: int = 1) -> bool:
        """Block until at least ``count`` disconnects are recorded; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: len(self._disconnects) >= count, timeout)

    def wait_streams_closed(self, timeout: float) -> bool:
        """Block until no response is being written; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: self._open == 0, timeout)

    def log(self) -> dict[str, Any]:
        """Everything observed, as JSON-ready data (the body of ``GET /_fake/log``)."""
        with self._lock:
            return {
                "requests": [dataclasses.asdict(record) for record in self._requests],
                "disconnects": [dataclasses.asdict(record) for record in self._disconnects],
                "peak_concurrency": self._peak,
                "streams_open": self._open,
            }

    # -- used by the request handler ------------------------------------------------------------

    def _log_request(self, record: RequestRecord) -> None:
        with self._lock:
            self._requests.append(record)

    def _take_fault(self, path: str) -> FaultRule:
        """Use up one application of the first rule matching ``path``."""
        with self._lock:
            for rule in self._faults:
                if fnmatch.fnmatchcase(path, rule.path):
                    if rule.times is not None:
                        rule.times -= 1
                        if rule.times == 0:
                            self._faults.remove(rule)
                    return rule
        return _NO_FAULT

    def _take_script(self, prompt: str) -> ScriptedReply | None:
        """Use up the first script whose ``match`` is None or occurs in ``prompt``."""
        with self._lock:
            for script in self._scripts:
                if script.match is None or script.match in prompt:
                    self._scripts.remove(script)
                    return script
        return None

    def _store_file(self, data: bytes, mime: str) -> str:
        """Keep an image to serve under ``/files/``; returns its URL."""
        file_id = uuid.uuid4().hex
        with self._lock:
            self._files[file_id] = (data, mime)
        return f"{self.url}{FILES_PREFIX}{file_id}.{_MIME_EXTENSIONS.get(mime, 'bin')}"

    def _file(self, name: str) -> tuple[bytes, str] | None:
        with self._lock:
            return self._files.get(name.partition(".")[0])

    @contextlib.contextmanager
    def _admission(self, limited: bool) -> Iterator[bool]:
        """Count a request as in flight for ``max_concurrent``; yields False if over the limit."""
        if not limited:
            yield True
            return
        with self._lock:
            cap = self.config.max_concurrent
            admitted = cap is None or self._in_flight < cap
            if admitted:
                self._in_flight += 1
                self._peak = max(self._peak, self._in_flight)
        try:
            yield admitted
        finally:
            if admitted:
                with self._lock:
                    self._in_flight -= 1

    @contextlib.contextmanager
    def _response_open(self) -> Iterator[None]:
        """Count a response in ``streams_open`` while it is prepared and written."""
        with self._changed:
            self._open += 1
        try:
            yield
        finally:
            with self._changed:
                self._open -= 1
                self._changed.notify_all()

    def _record_disconnect(self, path: str, events_sent: int) -> None:
        with self._changed:
            self._disconnects.append(DisconnectRecord(path, events_sent, time.time()))
            self._changed.notify_all()

    def _track_connection(self, connection: socket.socket, open_: bool) -> None:
        with self._changed:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)
                self._changed.notify_all()


class _HTTPServer(ThreadingHTTPServer):
    """Threaded HTTP server bound to 127.0.0.1 that knows its FakeDeepInfra."""

    daemon_threads = True
    request_queue_size = 128  # bursts of concurrent connects must not wait for SYN retries

    def __init__(self, fake: FakeDeepInfra, port: int) -> None:
        self.fake = fake
        super().__init__(("127.0.0.1", port), _Handler)

    def server_bind(self) -> None:
        """Bind without HTTPServer's reverse DNS lookup of the host name."""
        socketserver.TCPServer.server_bind(self)
        self.server_name = "127.0.0.1"
        self.server_port = self.server_address[1]

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet about clients that went away; report real bugs."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _ClientGone(ConnectionError):
    """The client closed its connection while the server was waiting to send."""


class _Handler(BaseHTTPRequestHandler):
    """Serves one connection: routes requests, applies faults, writes (chunked) responses."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # each event goes out as soon as it is written
    server: _HTTPServer
    events_sent: int  # SSE events written for the current request
    raw_body: bytes  # the current request's body, as received
    extra_headers: Mapping[str, str]  # a fault rule's headers for the current request
    cut_body: bool  # a fault rule's: hang up halfway through a whole (non-streamed) body

    def setup(self) -> None:
        super().setup()
        self.server.fake._track_connection(self.connection, open_=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.fake._track_connection(self.connection, open_=False)

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: tests read ``FakeDeepInfra.requests`` instead of stderr."""

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    # -- request flow ------------------------------------------------------------------------

    def _handle(self) -> None:
        fake = self.server.fake
        self.events_sent = 0
        self.extra_headers = {}
        self.cut_body = False
        path = unquote(urlsplit(self.path).path)
        if path.startswith(CONTROL_PREFIX):
            self._control(path, self._read_json())
            return
        # Counted from the request line on, so a test's wait_streams_closed() also covers
        # a request whose body is still being read and which has not been logged yet.
        with fake._response_open():
            payload = self._read_json()
            headers = {name.lower(): value for name, value in self.headers.items()}
            fake._log_request(RequestRecord(self.command, path, headers, payload, time.time()))
            try:
                self._serve(path, payload)
            except OSError:  # BrokenPipe, ConnectionReset, _ClientGone: the client left
                self.close_connection = True
                fake._record_disconnect(path, self.events_sent)

    def _read_json(self) -> Any:
        """The request body as JSON (None when empty or not JSON); the bytes stay in
        ``raw_body`` (file uploads are multipart)."""
        body = self.raw_body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            return json.loads(body) if body else None
        except ValueError:
            return None

    def _control(self, path: str, payload: Any) -> None:
        try:
            result = self.server.fake.control(self.command, path, payload)
        except (TypeError, ValueError, KeyError) as exc:
            self._send_json(400, detail_error(str(exc)))
            return
        if result is None:
            self._send_json(404, detail_error("Not Found"))
        else:
            self._send_json(200, result)

    def _serve(self, path: str, payload: Any) -> None:
        fake = self.server.fake
        with fake._admission(limited=not path.startswith(FILES_PREFIX)) as admitted:
            if not admitted:
                # S15's body; S6 mentions no Retry-After, so none is sent.
                self._send_error(429, "error_obj", "Model busy, retry later")
                return
            rule = fake._take_fault(path)
            if rule.hang_up:  # no DeepInfra shape: any server that dies mid-request
                self._drop()
                return
            self.extra_headers = rule.headers
            self.cut_body = rule.cut_body
            self.pause(rule.first_byte_delay or 0.0)
            if rule.status is not None:
                self._send_error(rule.status, rule.body_style, rule.message)
                return
            self._route(path, payload, rule, fake.config)

    def _route(self, path: str, payload: Any, rule: FaultRule, config: ServerConfig) -> None:
        get, post = self.command == "GET", self.command == "POST"
        if get and path == FEATURED_PATH:
            self._send_json(200, [entry.to_json() for entry in config.catalog])
        elif get and path == MODELS_PATH:
            # Marked HTTPBearer in S7, yet reported to answer without checking the key (row 30
            # of the reference: an integration doc, and g4f's "backup URL that works without
            # a key"): the fake takes the risky reading, so a key check must not rely on it.
            names = [entry.name for entry in config.catalog if entry.is_text]
            self._send_json(200, model_list(names + sorted(config.extra_models)))
        elif get and path == RATE_LIMIT_PATH:
            if self._authorized(config):  # S7: HTTPBearer; RateLimitOut
                self._send_json(200, {"rate_limit": 200, "tpm_rate_limit": 1_000_000})
        elif post and path == CHAT_PATH:
            self._chat(payload, rule, config)
        elif post and path == OPENAI_IMAGES_PATH:
            self._openai_images(payload, config)
        elif post and path.startswith(INFERENCE_PREFIX):
            self._inference(path.removeprefix(INFERENCE_PREFIX), payload, rule, config)
        elif get and path.startswith(FILES_PREFIX):
            self._serve_file(path.removeprefix(FILES_PREFIX))
        elif path.startswith(fake_batches.PREFIXES):
            fake_batches.handle(self, path, payload, config)
        else:
            self._send_json(404, detail_error("Not Found"))

    def _authorized(self, config: ServerConfig) -> bool:
        """Check ``Authorization: Bearer <key>``; answers the failure itself.

        No key: 403 ``{"detail":{"error":"Not authenticated"}}`` (S13). A key it does not
        know: 401 in the OpenAI form (S14).
        """
        scheme, _, key = self.headers.get("Authorization", "").partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            self._send_json(403, not_authenticated())
            return False
        if config.valid_keys and key not in config.valid_keys:
            self._send_json(401, openai_error("Not authenticated", 401))
            return False
        return True

    # -- chat --------------------------------------------------------------------------------

    def _chat(self, payload: Any, rule: FaultRule, config: ServerConfig) -> None:
        if not self._authorized(config):
            return
        problem = _chat_body_problem(payload)
        if problem is not None:
            self._send_json(422, validation_error(problem))
            return
        image_problem = _image_part_problem(payload["messages"])
        if image_problem is not None:
            self._send_json(422, validation_error(*image_problem))
            return
        entry = config.model(payload["model"])
        if (
            not (entry is not None and entry.is_text)
            and payload["model"] not in config.extra_models
        ):
            self._send_json(404, model_unavailable())
            return
        prompt_tokens = _prompt_tokens(payload["messages"])
        if entry is not None and entry.max_tokens is not None and prompt_tokens > entry.max_tokens:
            # S16: a deterministic 500 that names its cause.
            message = (
                f"Requested input length {prompt_tokens} exceeds maximum input length "
                f"{entry.max_tokens}"
            )
            self._send_json(500, openai_error(message, 500))
            return
        script = None
        if rule.text is None:
            script = self.server.fake._take_script(_last_user_text(payload["messages"]))
        plan = _plan_chat(payload, entry, rule, script, config)
        if rule.first_byte_delay is None:
            self.pause(config.first_byte_delay)
        if payload.get("stream"):
            options = payload.get("stream_options")
            include_usage = isinstance(options, dict) and options.get("include_usage") is True
            delay = rule.token_delay if rule.token_delay is not None else config.token_delay
            self._stream_chat(plan, rule, delay, include_usage)
        else:
            self._send_json(200, plan.completion())

    def _stream_chat(
        self, plan: _ChatPlan, rule: FaultRule, delay: float, include_usage: bool
    ) -> None:
        self._start_chunked("text/event-stream")
        events = _EventWriter(self, rule, delay)
        events.send(plan.chunk({"role": "assistant", "content": ""}))
        for piece in plan.reasoning:
            events.send(plan.chunk({"reasoning_content": piece}))
        for index in range(len(plan.content) + 1):
            if rule.disconnect_after == index:
                events.flush()
                self._drop()
                return
            if rule.malformed_after == index:
                events.send("{not json")
            if rule.error_event_after == index:
                events.send(dumps(STREAM_ERROR_EVENT))
                events.flush()
                self._end_chunked()
                return
            if index < len(plan.content):
                content = plan.chunk({"content": plan.content[index]})
                events.send(content, split_json=rule.multi_data and index == 0)
        # S1: usage rides on the finish chunk; S19: OpenAI's include_usage adds its own chunk.
        finish = plan.chunk({}, plan.finish_reason, finish_usage(plan.usage))
        events.send(finish, last=not include_usage)
        if include_usage:
            events.send(plan.usage_chunk(), last=True)
        if not rule.no_done:
            events.send("[DONE]")
        events.flush()
        self._end_chunked()

    # -- images ------------------------------------------------------------------------------

    def _inference(self, model: str, payload: Any, rule: FaultRule, config: ServerConfig) -> None:
        if not self._authorized(config):
            return
        entry = config.model(model)
        if entry is None and model not in config.extra_models:
            self._send_json(404, model_unavailable())  # S7: 404 DeepError
            return
        if entry is not None and not entry.is_image:
            self._send_json(422, detail_error(f"Model {model} is not a text-to-image model"))
            return
        cog = model in COG_MODELS
        if cog:  # S9: a Cog model reads its fields from "input"
            fields = payload.get("input") if isinstance(payload, dict) else None
            if not isinstance(fields, dict):
                self._send_json(422, validation_error("input", given=payload))
                return
            payload = fields
        if not isinstance(payload, dict) or not isinstance(payload.get("prompt"), str):
            self._send_json(422, validation_error("prompt", given=payload))
            return
        started = time.monotonic()
        pricing = (entry.pricing if entry is not None else None) or image_pricing(0.0)
        width, height = self._image_size(model, payload, pricing)
        seed = payload.get("seed")
        if not isinstance(seed, int) or isinstance(seed, bool):
            seed = random.randrange(2**32)
        count = _positive_int(payload.get("num_images"), 1)
        self.pause(config.image_delay_by_seed.get(seed, config.image_delay) * count)
        cost = _image_cost(pricing, payload, width, height) * count

        if config.image_size == "small":
            scale = min(1.0, SMALL_IMAGE_MAX_SIDE / max(width, height))
            width, height = max(1, round(width * scale)), max(1, round(height * scale))
        seeds = [seed + index for index in range(0 if rule.image_fault == "zero_images" else count)]
        nsfw = [each in config.nsfw_seeds for each in seeds]
        refs = [
            self._image_ref(payload["prompt"], each, width, height, rule, config, flagged)
            for each, flagged in zip(seeds, nsfw, strict=True)
        ]
        runtime_ms = int((time.monotonic() - started) * 1000)
        if cog:
            self._send_json(200, cog_response(refs, runtime_ms, cost))
            return
        style: ImageStyle = "images" if rule.image_fault == "zero_images" else config.image_style
        sent_seed: int | str = str(seed) if config.seed_as_string else seed  # S8: seed: str
        self._send_json(200, image_response(style, refs, sent_seed, runtime_ms, cost, nsfw or None))

    @staticmethod
    def _image_size(
        model: str, payload: dict[str, Any], pricing: dict[str, Any]
    ) -> tuple[int, int]:
        """Width and height: from ``aspect_ratio`` for the models that take it (S4), else
        from ``width``/``height`` with the catalog's defaults."""
        default_w, default_h = pricing["default_width"], pricing["default_height"]
        if model in ASPECT_RATIO_MODELS:
            across, down = _ASPECT_RATIOS.get(str(payload.get("aspect_ratio", "1:1")), (1, 1))
            side = math.sqrt(default_w * default_h / (across * down))
            return round(across * side), round(down * side)
        return (
            _positive_int(payload.get("width"), default_w),
            _positive_int(payload.get("height"), default_h),
        )

    def _openai_images(self, payload: Any, config: ServerConfig) -> None:
        """``POST /v1/openai/images/generations`` (S3, S7): JPEG bytes in ``b64_json`` (S3's
        example starts ``/9j/``, a JPEG)."""
        if not self._authorized(config):
            return
        if not isinstance(payload, dict) or not isinstance(payload.get("prompt"), str):
            self._send_json(422, validation_error("prompt", given=payload))
            return
        model = payload.get("model")
        entry = config.model(model) if isinstance(model, str) else None
        if entry is None or not entry.is_image:
            self._send_json(404, model_unavailable())
            return
        count = _positive_int(payload.get("n"), 1)
        self._send_json(200, openai_images_response([TINY_JPEG] * count, payload["prompt"]))

    def _image_ref(
        self,
        prompt: str,
        seed: int,
        width: int,
        height: int,
        rule: FaultRule,
        config: ServerConfig,
        flagged: bool = False,
    ) -> str:
        """One image of a response as a data URI or a URL, with any image fault applied."""
        fake = self.server.fake
        if flagged:  # a flagged image comes back blacked out
            data, mime = make_png(width, height, (0, 0, 0)), "image/png"
        elif rule.image_fault == "big":
            data, mime = big_png(), "image/png"
        elif config.image_style == "jpeg":
            data, mime = TINY_JPEG, "image/jpeg"
        elif config.image_style == "webp":
            data, mime = TINY_WEBP, "image/webp"
        else:
            data, mime = render_image(prompt, seed, width, height), "image/png"
        if rule.image_fault == "url_404":
            return f"{fake.url}{FILES_PREFIX}{uuid.uuid4().hex}.png"
        if rule.image_fault == "invalid_base64":
            return "data:image/png;base64,@@ this is not base64 @@"
        if rule.image_fault == "unknown_mime":
            mime = "image/x-unknown"
        if config.image_style == "url":
            return fake._store_file(data, mime)
        return _data_uri(data, mime)

    def _serve_file(self, name: str) -> None:
        found = self.server.fake._file(name)
        if found is None:
            self._send_json(404, detail_error("Not Found"))
        else:
            data, mime = found
            self._send_bytes(200, data, mime)

    # -- writing -----------------------------------------------------------------------------

    def pause(self, seconds: float) -> None:
        """Wait ``seconds``, raising _ClientGone at once if the client hangs up meanwhile."""
        if seconds <= 0:
            return
        deadline = time.monotonic() + seconds
        try:
            self.connection.settimeout(seconds)
            peeked = self.connection.recv(1, socket.MSG_PEEK)
        except TimeoutError:
            return
        except OSError as exc:
            raise _ClientGone from exc
        finally:
            self.connection.settimeout(None)
        if not peeked:
            raise _ClientGone
        # The client pipelined its next request, so EOF cannot be watched for: just wait.
        time.sleep(max(0.0, deadline - time.monotonic()))

    def _send_headers(self, status: int, headers: Mapping[str, str]) -> None:
        self.send_response(status)
        for name, value in {**headers, **self.extra_headers}.items():
            self.send_header(name, value)
        self.end_headers()

    def _send_bytes(
        self,
        status: int,
        body: bytes,
        content_type: str | None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        fields = {"Content-Type": content_type} if content_type else {}
        self._send_headers(status, {**fields, "Content-Length": str(len(body)), **(headers or {})})
        if self.cut_body:  # no DeepInfra shape: a connection lost mid-answer
            self.wfile.write(body[: len(body) // 2])
            self._drop()
            return
        self.wfile.write(body)

    def _send_json(self, status: int, obj: Any) -> None:
        self._send_bytes(status, dumps(obj).encode(), "application/json")

    def _send_error(
        self,
        status: int,
        style: BodyStyle,
        message: str | None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        body, content_type = error_body(style, status, message)
        self._send_bytes(status, body, content_type, headers)

    def _start_chunked(self, content_type: str) -> None:
        self._send_headers(
            200,
            {
                "Content-Type": content_type,
                "Cache-Control": "no-cache",
                "Transfer-Encoding": "chunked",
            },
        )

    def write_chunk(self, data: bytes) -> None:
        """Send ``data`` as one HTTP chunk (wfile is unbuffered: it goes out immediately)."""
        if data:  # an empty chunk would end the body
            self.wfile.write(b"%X\r\n%s\r\n" % (len(data), data))

    def _end_chunked(self) -> None:
        self.wfile.write(b"0\r\n\r\n")

    def _drop(self) -> None:
        """Hang up mid-body: the client sees the connection close before the last chunk."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


_UTF8_LEAD_BYTE = re.compile(rb"[\xc0-\xff]")


class _EventWriter:
    """Writes SSE events as HTTP chunks, shaped by a fault rule's stream fields."""

    def __init__(self, handler: _Handler, rule: FaultRule, delay: float) -> None:
        self.handler = handler
        self.rule = rule
        self.delay = delay
        self.eol = "\r\n" if rule.crlf else "\n"
        self.held = b""  # events kept for one write (``one_write``)

    def send(self, data: str, *, split_json: bool = False, last: bool = False) -> None:
        """Send one event; ``last`` marks the event that ``no_done`` leaves unterminated."""
        handler, rule = self.handler, self.rule
        if rule.one_write:
            self.held += sse_event(data, eol=self.eol, end=not (last and rule.no_done))
            handler.events_sent += 1
            return
        if handler.events_sent:
            handler.pause(self.delay)
        if rule.comments:
            handler.write_chunk(f": keep-alive{self.eol}{self.eol}".encode())
        frame = sse_event(
            data, eol=self.eol, split_json=split_json, end=not (last and rule.no_done)
        )
        if rule.split_utf8:
            lead = _UTF8_LEAD_BYTE.search(frame)
            cut = lead.end() if lead else len(frame) // 2
            handler.write_chunk(frame[:cut])
            handler.write_chunk(frame[cut:])
        else:
            handler.write_chunk(frame)
        handler.events_sent += 1

    def flush(self) -> None:
        """Write the events kept for ``one_write`` as one HTTP chunk."""
        self.handler.write_chunk(self.held)
        self.held = b""


# --------------------------------------------------------------------------------------------
# Running in a separate process

_REPO_ROOT = Path(__file__).resolve().parent.parent
_CLI_FIELDS = (
    "token_delay",
    "first_byte_delay",
    "reply_tokens",
    "image_style",
    "image_size",
    "image_delay",
    "max_concurrent",
)


def _json_default(value: Any) -> Any:
    """JSON forms of config values that json cannot encode by itself."""
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, CatalogModel):
        return value.to_json()
    raise TypeError(f"cannot send {type(value).__name__} to the fake server")


def start_subprocess_server(**config: Any) -> tuple[str, subprocess.Popen[str]]:
    """Run the server in its own process (``python -m tests.fake_server``); returns its URL
    and the process, which the caller ends with ``terminate()`` and ``wait()``."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.fake_server",
            "--config",
            json.dumps(config, default=_json_default),
        ],
        cwd=_REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    with process.stdout:
        line = process.stdout.readline().strip()
    if not line.startswith(URL_LINE_PREFIX):
        process.kill()
        process.wait()
        raise RuntimeError(f"fake server did not start (printed {line!r})")
    return line.removeprefix(URL_LINE_PREFIX), process


def _interrupt(signum: int, frame: FrameType | None) -> NoReturn:
    """Turn SIGTERM into KeyboardInterrupt so the server shuts down the same way as on Ctrl-C."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    """Command line: serve until SIGTERM/SIGINT, after printing the URL line."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.fake_server", description="Fake DeepInfra API on 127.0.0.1."
    )
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--token-delay", type=float)
    parser.add_argument("--first-byte-delay", type=float)
    parser.add_argument("--reply-tokens", type=int)
    parser.add_argument("--image-style", choices=get_args(ImageStyle))
    parser.add_argument("--image-size", choices=get_args(ImageSize))
    parser.add_argument("--image-delay", type=float)
    parser.add_argument("--max-concurrent", type=int)
    parser.add_argument(
        "--config", type=json.loads, default={}, help="JSON object of any config fields"
    )
    args = parser.parse_args(argv)
    config = dict(args.config)
    config.update(
        {name: getattr(args, name) for name in _CLI_FIELDS if getattr(args, name) is not None}
    )

    signal.signal(signal.SIGTERM, _interrupt)
    server = FakeDeepInfra(port=args.port, **config)
    print(f"{URL_LINE_PREFIX}{server.url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()


if __name__ == "__main__":
    main()
