"""Structured output: ``response_format`` on chat completions, and two scripted models.

Source: S7, DeepInfra's OpenAPI document, ``OpenAIChatCompletionsIn.response_format`` is
``TextResponseFormat | JsonObjectResponseFormat | JsonSchemaResponseFormat |
RegexResponseFormat | null``; ``JsonSchemaResponseFormat`` requires ``json_schema``, a
``JsonSchema`` that requires ``name`` (string) and ``schema`` (object) and lists no other
field (``strict`` is OpenAI's, accepted and ignored here). DeepInfra's JSON-mode docs
(deepinfra.com/docs/advanced/json_mode, quoted in notebook-ai-tools-2026-12.md) say
``json_object`` makes the reply one JSON object. The fake therefore:

- answers 422 in S7's ``HTTPValidationError`` form for a ``response_format`` outside those
  shapes;
- for ``json_schema``, replies with JSON valid against ``json_schema.schema`` (streamed in
  tokens like any reply), chosen deterministically from the last user message;
- for ``json_object``, replies with a JSON object: valid against the JSON Schema that the
  system message states after "JSON Schema:", if any, else ``{"answer": ...}``;
- ``regex`` and ``text`` change nothing.

Two scripted models no source describes; they stand for what issue #21 asks the client to
survive:

- ``REPAIR_MODEL`` answers text that is not JSON until the conversation holds an assistant
  turn followed by a user turn (a repair request), then answers valid JSON;
- ``JSON_MODE_ONLY_MODEL`` refuses ``json_schema`` with a 400 naming ``response_format`` in
  the OpenAI envelope DeepInfra uses on its OpenAI routes (S14), and accepts ``json_object``.
"""

from __future__ import annotations

import itertools
import json
import zlib
from typing import Any

from .faults import ScriptedReply
from .replies import _content_text, _last_user_text
from .wire import openai_error, validation_error

REPAIR_MODEL = "fake/json-repair"
JSON_MODE_ONLY_MODEL = "fake/json-mode-only"
MODELS = frozenset({REPAIR_MODEL, JSON_MODE_ONLY_MODEL})
"""Chat models served whatever the catalog says (the scripted structured-output models)."""

NOT_JSON_REPLY = 'Sure! Here is the JSON you asked for: {"label": positive'
"""What ``REPAIR_MODEL`` answers before a repair turn: prose and broken JSON."""

REFUSAL_MESSAGE = (
    "response_format of type 'json_schema' is not supported by this model; "
    "use {'type': 'json_object'}"
)

_FORMAT_TYPES = ("text", "json_object", "json_schema", "regex")
_SCHEMA_MARKER = "JSON Schema:"


def refusal(payload: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
    """(status, body) of an error answer the request's ``response_format`` earns, or None."""
    response_format = payload.get("response_format")
    if response_format is None:
        return None
    field = "response_format"
    if not isinstance(response_format, dict):
        return 422, _invalid(field, "Input should be a valid dictionary", response_format)
    kind = response_format.get("type", "text")
    if kind not in _FORMAT_TYPES:
        return 422, _invalid(f"{field}.type", "Input should be 'text', 'json_object', "
                                     "'json_schema' or 'regex'", kind)  # fmt: skip
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        if not isinstance(spec, dict):
            return 422, _invalid(f"{field}.json_schema", given=spec)
        if not isinstance(spec.get("name"), str):
            return 422, _invalid(f"{field}.json_schema.name", given=spec.get("name"))
        if not isinstance(spec.get("schema"), dict):
            return 422, _invalid(f"{field}.json_schema.schema", given=spec.get("schema"))
        if payload.get("model") == JSON_MODE_ONLY_MODEL:
            body = openai_error(REFUSAL_MESSAGE, 400)
            body["error"]["param"] = field
            return 400, body
    if kind == "regex" and not isinstance(response_format.get("regex"), str):
        return 422, _invalid(f"{field}.regex", given=response_format.get("regex"))
    return None


def _invalid(where: str, msg: str = "Field required", given: Any = None) -> dict[str, Any]:
    """S7's 422 body with ``loc`` split at the dots of ``where`` (pydantic's form, S17)."""
    body = validation_error(where, msg, given)
    body["detail"][0]["loc"] = ["body", *where.split(".")]
    return body


def scripted(payload: dict[str, Any]) -> ScriptedReply | None:
    """The reply a ``response_format`` or a scripted model calls for, or None for prose."""
    messages = payload["messages"]
    if payload.get("model") == REPAIR_MODEL and not _has_repair_turn(messages):
        return ScriptedReply(NOT_JSON_REPLY)
    response_format = payload.get("response_format")
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    seed = zlib.crc32(_last_user_text(messages).encode())
    if kind == "json_schema":
        schema = response_format["json_schema"]["schema"]  # type: ignore[index]
        return ScriptedReply(_dumps(example(schema, schema, seed)))
    if kind == "json_object" or payload.get("model") == REPAIR_MODEL:
        stated = _stated_schema(messages)
        if stated is not None:
            return ScriptedReply(_dumps(example(stated, stated, seed)))
        return ScriptedReply(_dumps({"answer": _last_user_text(messages)[:40]}))
    return None


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _has_repair_turn(messages: list[dict[str, Any]]) -> bool:
    """Whether an assistant turn is followed by a user turn (the client asked for a fix)."""
    roles = [message.get("role") for message in messages]
    return any(
        first == "assistant" and second == "user" for first, second in itertools.pairwise(roles)
    )


def _stated_schema(messages: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The JSON Schema a system message states after "JSON Schema:", if any."""
    for message in messages:
        if message.get("role") != "system":
            continue
        text = _content_text(message.get("content"))
        at = text.find(_SCHEMA_MARKER)
        start = text.find("{", at) if at >= 0 else -1
        if start < 0:
            continue
        try:
            value, _ = json.JSONDecoder().raw_decode(text, start)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def example(node: Any, root: dict[str, Any], seed: int) -> Any:
    """A value valid against ``node`` (a JSON Schema), varied by ``seed``: enums pick a member
    by seed, nullable properties are filled, lists hold one item, dates are ISO dates."""
    if not isinstance(node, dict):
        return None
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        return example(target, root, seed)
    if "const" in node:
        return node["const"]
    choices = [choice for choice in node.get("enum", ()) if choice is not None]
    if choices:
        return choices[seed % len(choices)]
    for key in ("anyOf", "oneOf"):
        options = [o for o in node.get(key, ()) if isinstance(o, dict) and o.get("type") != "null"]
        if options:
            return example(options[0], root, seed)
    kind = node.get("type", "object" if "properties" in node else "string")
    if isinstance(kind, list):
        kind = next((each for each in kind if each != "null"), "null")
    if kind == "object":
        properties = node.get("properties", {})
        return {name: example(prop, root, seed + i) for i, (name, prop) in enumerate(
            properties.items())}  # fmt: skip
    if kind == "array":
        return [example(node.get("items", {}), root, seed)]
    if kind == "integer":
        return seed % 100
    if kind == "number":
        return (seed % 100) / 10
    if kind == "boolean":
        return seed % 2 == 0
    if kind == "null":
        return None
    if node.get("format") == "date":
        return f"2026-{seed % 12 + 1:02d}-{seed % 28 + 1:02d}"
    if node.get("format") == "date-time":
        return f"2026-{seed % 12 + 1:02d}-{seed % 28 + 1:02d}T12:00:00Z"
    return f"text {seed % 1000}"
