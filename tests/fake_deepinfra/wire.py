"""The wire: routes, the key canary, literal styles, answer and error shapes."""

from __future__ import annotations

import base64
import http.client
import json
import time
from typing import Any, Literal

from .catalog import CatalogModel

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
