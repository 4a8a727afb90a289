"""Which ``response_format`` llama-cpp-python's server honours, and that its grammar makes
even the random-weight model answer JSON that ``Schema.parse`` accepts, row after row.

Raw httpx, so these tests record the server's behaviour, not our client's reading of it:

- ``{"type": "json_schema", ...}`` (OpenAI's, DeepInfra's) is refused with a **500** whose
  body is the request's validation error naming ``response_format`` and ``json_schema``
  (its ``ChatCompletionRequestResponseFormat`` has ``type: "text" | "json_object"``);
- ``{"type": "json_object"}`` constrains the reply to JSON, not to the schema (with
  random weights, keys and strings run on until ``max_tokens``);
- ``{"type": "json_object", "schema": ...}`` constrains it to the schema with a grammar.
  The grammar does not bound a free string, which the random model never closes, so the
  pydantic model here bounds its strings (``max_length``), which the grammar honours.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Annotated, Any

import httpx
import pydantic
import pytest

from deepinfra_magic.schema import Schema, SchemaValidationError, refuses_json_schema
from tests.llama.server import MODEL, LlamaServer

ROWS = 20
INLINE = "label: positive|negative|mixed, score: float, ok: bool, stars: int?, kind: book|film?"


class Review(pydantic.BaseModel):
    summary: str = pydantic.Field(max_length=12)
    stars: int
    tags: list[Annotated[str, pydantic.StringConstraints(max_length=6)]] = pydantic.Field(
        max_length=2
    )
    liked: bool | None = None


@pytest.fixture
def http(llama: LlamaServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=llama.url, timeout=120) as client:
        yield client


def chat(
    http: httpx.Client, schema: Schema, response_format: dict[str, Any], row: int, stream: bool
) -> httpx.Response:
    messages = [
        {"role": "system", "content": schema.fallback_system_message()},
        {"role": "user", "content": f"Review number {row}: label it."},
    ]
    body = {
        "model": MODEL,
        "messages": messages,
        "response_format": response_format,
        "max_tokens": 400,
        "temperature": 0,
        "stream": stream,
    }
    return http.post("/chat/completions", json=body)


def reply_text(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    if not response.headers["content-type"].startswith("text/event-stream"):
        return str(response.json()["choices"][0]["message"]["content"])
    chunks = [
        json.loads(line.removeprefix("data: "))
        for line in response.text.splitlines()
        if line.startswith("data: {")
    ]
    return "".join(chunk["choices"][0]["delta"].get("content") or "" for chunk in chunks)


@pytest.mark.parametrize("spec", [INLINE, Review], ids=["inline", "pydantic"])
def test_json_schema_is_refused_with_a_500_that_refuses_json_schema_recognises(
    http: httpx.Client, spec: Any
) -> None:
    schema = Schema.from_spec(spec)
    response = chat(http, schema, schema.response_format(), 0, stream=False)
    assert response.status_code == 500
    assert "response_format" in response.text and "json_schema" in response.text
    assert refuses_json_schema(response.status_code, response.text)


def test_plain_json_mode_constrains_to_json_but_not_to_the_schema(http: httpx.Client) -> None:
    schema = Schema.from_spec(INLINE)
    text = reply_text(chat(http, schema, {"type": "json_object"}, 0, stream=False))
    assert text.lstrip().startswith("{")  # the JSON grammar, but keys and strings run free
    with pytest.raises(SchemaValidationError):
        schema.parse(text)


@pytest.mark.parametrize("spec", [INLINE, Review], ids=["inline", "pydantic"])
def test_json_mode_with_the_schema_gives_schema_valid_rows_as_typed_columns(
    http: httpx.Client, spec: Any
) -> None:
    schema = Schema.from_spec(spec)
    json_mode = schema.fallback_response_format()
    replies = [reply_text(chat(http, schema, json_mode, row, row % 2 == 0)) for row in range(ROWS)]
    values = [schema.parse(reply) for reply in replies]
    frame = schema.to_frame(values, prefix="review")
    assert len(frame) == ROWS
    if spec is Review:
        assert all(isinstance(value, Review) for value in values)
        assert {c: str(t) for c, t in frame.dtypes.items()} == {
            "review_summary": "string",
            "review_stars": "Int64",
            "review_tags": "object",
            "review_liked": "boolean",
        }
    else:
        assert {c: str(t) for c, t in frame.dtypes.items()} == {
            "review_label": "category",
            "review_score": "Float64",
            "review_ok": "boolean",
            "review_stars": "Int64",
            "review_kind": "category",
        }
        assert list(frame["review_label"].cat.categories) == ["positive", "negative", "mixed"]
        assert list(frame["review_kind"].cat.categories) == ["book", "film"]
        assert frame["review_label"].notna().all()
