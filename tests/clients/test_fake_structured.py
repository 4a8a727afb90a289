"""The fake server honours ``response_format`` as DeepInfra's OpenAPI document describes it.

Raw httpx over 127.0.0.1; the replies are checked with the ``jsonschema`` package, a
validator this project did not write. The last test plays the round trip the client will
run with ``deepinfra_magic.schema``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema
import pytest

from deepinfra_magic.schema import Schema, SchemaValidationError, refuses_json_schema
from tests.fake_deepinfra import CANARY_KEY, CHAT_PATH, FakeDeepInfra
from tests.fake_deepinfra.structured import (
    JSON_MODE_ONLY_MODEL,
    NOT_JSON_REPLY,
    REPAIR_MODEL,
)

AUTH = {"Authorization": f"Bearer {CANARY_KEY}"}
TEXT_MODEL = "meta-llama/Meta-Llama-3.1-8B-Instruct"

REVIEW_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "label": {"type": "string", "enum": ["positive", "negative", "mixed"]},
        "score": {"type": "number"},
        "reasons": {"type": "array", "items": {"type": "string"}},
        "ok": {"type": "boolean"},
        "when": {"type": ["string", "null"], "format": "date"},
        "kind": {"$ref": "#/$defs/Kind"},
    },
    "required": ["label", "score", "reasons", "ok", "when", "kind"],
    "additionalProperties": False,
    "$defs": {"Kind": {"enum": ["book", "film"], "type": "string"}},
}


def json_schema_format(schema: dict[str, Any] = REVIEW_SCHEMA) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "review", "schema": schema}}


@pytest.fixture
def client(fake_server: FakeDeepInfra) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fake_server.url, headers=AUTH, timeout=30) as http_client:
        yield http_client


def ask(client: httpx.Client, content: str = "Great book", **body: Any) -> httpx.Response:
    messages = body.pop("messages", [{"role": "user", "content": content}])
    return client.post(CHAT_PATH, json={"model": TEXT_MODEL, "messages": messages, **body})


def streamed_text(response: httpx.Response) -> tuple[str, int]:
    """The streamed content and how many content chunks carried it."""
    assert response.status_code == 200, response.text
    events = [
        json.loads(line.removeprefix("data: "))
        for line in response.text.splitlines()
        if line.startswith("data: {")
    ]
    pieces = [event["choices"][0]["delta"].get("content") for event in events if event["choices"]]
    pieces = [piece for piece in pieces if piece]
    return "".join(pieces), len(pieces)


def test_json_schema_reply_is_streamed_json_valid_against_the_schema(
    client: httpx.Client,
) -> None:
    response = ask(client, response_format=json_schema_format(), stream=True)
    text, pieces = streamed_text(response)
    jsonschema.validate(json.loads(text), REVIEW_SCHEMA)
    assert pieces > 3  # streamed in tokens, like any reply


def test_json_schema_reply_is_the_same_unstreamed_and_varies_with_the_prompt(
    client: httpx.Client,
) -> None:
    answers = set()
    for prompt in ("one", "two", "three", "four", "five", "six"):
        body = ask(client, prompt, response_format=json_schema_format()).json()
        content = body["choices"][0]["message"]["content"]
        jsonschema.validate(json.loads(content), REVIEW_SCHEMA)
        answers.add(json.loads(content)["label"])
        again = ask(client, prompt, response_format=json_schema_format(), stream=True)
        assert streamed_text(again)[0] == content
    assert len(answers) > 1  # a map over distinct rows sees more than one category


def test_json_object_reply_is_an_object_and_follows_a_schema_stated_in_the_system_message(
    client: httpx.Client,
) -> None:
    plain = ask(client, response_format={"type": "json_object"}).json()
    assert isinstance(json.loads(plain["choices"][0]["message"]["content"]), dict)
    system = "Answer in JSON. It must match this JSON Schema: " + json.dumps(REVIEW_SCHEMA)
    messages = [{"role": "system", "content": system}, {"role": "user", "content": "Meh film"}]
    stated = ask(client, messages=messages, response_format={"type": "json_object"}).json()
    jsonschema.validate(json.loads(stated["choices"][0]["message"]["content"]), REVIEW_SCHEMA)


@pytest.mark.parametrize(
    ("response_format", "field"),
    [
        ({"type": "json_schema"}, "json_schema"),
        ({"type": "json_schema", "json_schema": {"schema": {}}}, "json_schema.name"),
        ({"type": "json_schema", "json_schema": {"name": "x"}}, "json_schema.schema"),
        ({"type": "xml"}, "type"),
        ({"type": "regex"}, "regex"),
        ("json", None),
    ],
)
def test_malformed_response_format_is_a_422_naming_the_field(
    client: httpx.Client, response_format: Any, field: str | None
) -> None:
    response = ask(client, response_format=response_format)
    assert response.status_code == 422
    loc = response.json()["detail"][0]["loc"]
    assert loc == ["body", "response_format", *(field.split(".") if field else [])]


def test_text_and_regex_formats_leave_the_reply_as_prose(client: httpx.Client) -> None:
    for response_format in ({"type": "text"}, {"type": "regex", "regex": "(yes|no)"}, None):
        body = ask(client, response_format=response_format).json()
        assert "fake DeepInfra server" in body["choices"][0]["message"]["content"]


def test_repair_model_answers_broken_json_first_and_valid_json_after_a_repair_turn(
    client: httpx.Client,
) -> None:
    first = ask(client, model=REPAIR_MODEL, response_format=json_schema_format(), stream=True)
    text, _ = streamed_text(first)
    assert text == NOT_JSON_REPLY
    with pytest.raises(ValueError):
        json.loads(text)
    messages = [
        {"role": "user", "content": "Great book"},
        {"role": "assistant", "content": text},
        {"role": "user", "content": "The answer is not valid JSON. Reply again."},
    ]
    repaired = ask(
        client,
        model=REPAIR_MODEL,
        messages=messages,
        response_format=json_schema_format(),
        stream=True,
    )
    jsonschema.validate(json.loads(streamed_text(repaired)[0]), REVIEW_SCHEMA)


def test_json_mode_only_model_refuses_json_schema_with_a_400_and_accepts_json_object(
    client: httpx.Client,
) -> None:
    refused = ask(client, model=JSON_MODE_ONLY_MODEL, response_format=json_schema_format())
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["param"] == "response_format"
    assert "json_schema" in error["message"]
    system = "It must match this JSON Schema: " + json.dumps(REVIEW_SCHEMA)
    messages = [{"role": "system", "content": system}, {"role": "user", "content": "Great"}]
    accepted = ask(
        client,
        model=JSON_MODE_ONLY_MODEL,
        messages=messages,
        response_format={"type": "json_object"},
    )
    assert accepted.status_code == 200
    jsonschema.validate(
        json.loads(accepted.json()["choices"][0]["message"]["content"]), REVIEW_SCHEMA
    )


def test_a_scripted_reply_still_wins_over_the_generated_json(
    fake_server: FakeDeepInfra, client: httpx.Client
) -> None:
    fake_server.script_reply('{"label": "surprise"}')
    body = ask(client, response_format=json_schema_format()).json()
    assert body["choices"][0]["message"]["content"] == '{"label": "surprise"}'


def test_the_schema_module_round_trip_a_client_will_run_refusal_fallback_and_repair(
    client: httpx.Client,
) -> None:
    """What phase 2 wires into the client, played by hand over HTTP: json_schema refused,
    JSON mode with the stated schema, then one repair turn on the model that needs it."""
    schema = Schema.from_spec("label: positive|negative|mixed, score: float, tags: list[str]?")
    user = [{"role": "user", "content": "Great book"}]
    refused = ask(
        client, model=JSON_MODE_ONLY_MODEL, messages=user, response_format=schema.response_format()
    )
    assert refuses_json_schema(refused.status_code, refused.json())
    system = [{"role": "system", "content": schema.fallback_system_message()}]
    fallback = ask(
        client,
        model=JSON_MODE_ONLY_MODEL,
        messages=system + user,
        response_format=schema.fallback_response_format(),
        stream=True,
    )
    assert schema.parse(streamed_text(fallback)[0])["label"] in ("positive", "negative", "mixed")

    first = ask(client, model=REPAIR_MODEL, messages=user, response_format=schema.response_format())
    raw = first.json()["choices"][0]["message"]["content"]
    with pytest.raises(SchemaValidationError) as caught:
        schema.parse(raw)
    repaired = ask(
        client,
        model=REPAIR_MODEL,
        messages=user + schema.repair_messages(raw, caught.value),
        response_format=schema.response_format(),
    )
    value = schema.parse(repaired.json()["choices"][0]["message"]["content"])
    assert set(value) == {"label", "score", "tags"}
