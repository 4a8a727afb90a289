"""A fake DeepInfra HTTP API for tests and benchmarks (stdlib only).

Modules: ``wire`` (routes, answer and error shapes), ``catalog`` (the featured models),
``replies`` (what a model says), ``images`` (PNGs it draws), ``faults`` (configuration,
faults, records, chat planning), ``server`` (the HTTP server), ``batches`` (the Files and
Batch API), ``scoped_jwt`` (scoped tokens: mint, inspect, enforce), ``cli`` (out of process).

It is a real HTTP/1.1 server on 127.0.0.1 serving the shapes of DeepInfra's featured catalog,
its OpenAI-compatible chat completions (streamed and not) and its text-to-image inference,
with scripted replies, a queue of injectable faults, a request log and detection of clients
that hang up mid-response.

In-process::

    with FakeDeepInfra() as server:
        server.add_fault(status=502, body_style="html")
        ...  # point the client at server.api_url (DeepInfra's routes under /v1/openai)

Every wire shape cites its source in a comment, by the ids of
``shared/reference/deepinfra-real-shapes.md`` (public material nobody on this project wrote):
S1 DeepInfra's streaming docs, S2 a model page's chat answer, S3/S4 the FLUX and sd3.5 model
pages, S5 the inference docs, S6 the rate-limit docs, S7 DeepInfra's OpenAPI document, S8/S9
DeepInfra's Python and Node SDKs, S13-S17 issue threads quoting real answers, S19 OpenAI's
``include_usage`` chunk, S20 ``finish_reason: "error"``, S21 real catalog values.

Out of process, ``python -m tests.fake_deepinfra`` prints ``FAKE_DEEPINFRA_URL=http://127.0.0.1:PORT``
and serves until SIGTERM/SIGINT; it is then driven over HTTP under ``/_fake/`` (see
``FakeDeepInfra.control``), which calls the same methods as the Python API.
"""

from __future__ import annotations

from .catalog import (
    ASPECT_RATIO_MODELS,
    COG_MODELS,
    DEFAULT_CATALOG,
    TEXT_GENERATION,
    TEXT_TO_IMAGE,
    CatalogModel,
    image_pricing,
    token_pricing,
)
from .cli import start_subprocess_server
from .faults import DisconnectRecord, FaultRule, RequestRecord, ScriptedReply, ServerConfig
from .images import big_png, make_png, render_image
from .replies import default_reasoning, default_reply, filler_reply, tokenize
from .server import FakeDeepInfra
from .wire import (
    CANARY_KEY,
    CHAT_PATH,
    CONTROL_PREFIX,
    FEATURED_PATH,
    FILES_PREFIX,
    IMAGE_STYLE_MIME,
    INFERENCE_PREFIX,
    MODELS_PATH,
    OPENAI_IMAGES_PATH,
    RATE_LIMIT_PATH,
    SMALL_IMAGE_MAX_SIDE,
    STREAM_ERROR_EVENT,
    TINY_JPEG,
    TINY_WEBP,
    URL_LINE_PREFIX,
    BodyStyle,
    ImageFault,
    ImageSize,
    ImageStyle,
    chat_chunk,
    chat_completion,
    cog_response,
    deep_error,
    detail_error,
    dumps,
    error_body,
    finish_usage,
    image_response,
    model_list,
    model_unavailable,
    not_authenticated,
    openai_error,
    openai_images_response,
    sse_event,
    usage_block,
    usage_chunk,
    validation_error,
)

__all__ = [
    "ASPECT_RATIO_MODELS",
    "CANARY_KEY",
    "CHAT_PATH",
    "COG_MODELS",
    "CONTROL_PREFIX",
    "DEFAULT_CATALOG",
    "FEATURED_PATH",
    "FILES_PREFIX",
    "IMAGE_STYLE_MIME",
    "INFERENCE_PREFIX",
    "MODELS_PATH",
    "OPENAI_IMAGES_PATH",
    "RATE_LIMIT_PATH",
    "SMALL_IMAGE_MAX_SIDE",
    "STREAM_ERROR_EVENT",
    "TEXT_GENERATION",
    "TEXT_TO_IMAGE",
    "TINY_JPEG",
    "TINY_WEBP",
    "URL_LINE_PREFIX",
    "BodyStyle",
    "CatalogModel",
    "DisconnectRecord",
    "FakeDeepInfra",
    "FaultRule",
    "ImageFault",
    "ImageSize",
    "ImageStyle",
    "RequestRecord",
    "ScriptedReply",
    "ServerConfig",
    "big_png",
    "chat_chunk",
    "chat_completion",
    "cog_response",
    "deep_error",
    "default_reasoning",
    "default_reply",
    "detail_error",
    "dumps",
    "error_body",
    "filler_reply",
    "finish_usage",
    "image_pricing",
    "image_response",
    "make_png",
    "model_list",
    "model_unavailable",
    "not_authenticated",
    "openai_error",
    "openai_images_response",
    "render_image",
    "sse_event",
    "start_subprocess_server",
    "token_pricing",
    "tokenize",
    "usage_block",
    "usage_chunk",
    "validation_error",
]
