"""``client.chat(..., schema=Spec)`` on both clients against the fake server: what is sent,
``ChatResult.parsed``, the one repair request, the json_schema refusal and its memory."""

from __future__ import annotations

import dataclasses
import enum
import logging
from collections.abc import Callable
from typing import Any

import pytest

from deepinfra_magic.client import DeepInfraClient
from deepinfra_magic.schema import SchemaValidationError
from deepinfra_magic.types import ChatResult, ContentDelta
from tests.fake_deepinfra import CHAT_PATH, FakeDeepInfra
from tests.fake_deepinfra.structured import JSON_MODE_ONLY_MODEL, NOT_JSON_REPLY, REPAIR_MODEL

MODEL = "meta-llama/Meta-Llama-3.1-8B-Instruct"
SPEC = "label: positive|negative|mixed, score: float"
ASK = [{"role": "user", "content": "Label: I loved it"}]


class Mood(enum.Enum):
    HAPPY = "happy"
    SAD = "sad"


@dataclasses.dataclass
class Review:
    label: str
    stars: int


def chats(server: FakeDeepInfra) -> list[dict[str, Any]]:
    return [r.json for r in server.requests if r.path == CHAT_PATH]


def streamed(client: DeepInfraClient, model: str, schema: Any) -> tuple[str, ChatResult]:
    """The streamed text as it arrived, and the final result."""
    text, result = "", None
    with client.chat(ASK, model, schema=schema, max_tokens=50) as stream:
        for event in stream:
            if isinstance(event, ContentDelta):
                text += event.text
            elif isinstance(event, ChatResult):
                result = event
    assert result is not None
    return text, result


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
def test_inline_spec_sends_strict_json_schema_and_parses_to_a_dict(
    make_client: Callable[..., DeepInfraClient], fake_server: FakeDeepInfra, stream: bool
) -> None:
    client = make_client()
    if stream:
        text, result = streamed(client, MODEL, SPEC)
        assert text == result.text  # the JSON streamed live
    else:
        result = client.chat(ASK, MODEL, stream=False, schema=SPEC)
    assert set(result.parsed) == {"label", "score"}
    assert result.parsed["label"] in ("positive", "negative", "mixed")
    assert isinstance(result.parsed["score"], float)
    assert result.repairs == 0
    (sent,) = chats(fake_server)
    response_format = sent["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["strict"] is True
    assert response_format["json_schema"]["schema"]["required"] == ["label", "score"]


def test_a_dataclass_and_an_enum_come_back_as_their_types(
    make_client: Callable[..., DeepInfraClient], fake_server: FakeDeepInfra
) -> None:
    client = make_client()
    review = client.chat(ASK, MODEL, stream=False, schema=Review).parsed
    assert isinstance(review, Review) and isinstance(review.stars, int)
    assert isinstance(client.chat(ASK, MODEL, stream=False, schema=Mood).parsed, Mood)


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
def test_invalid_json_gets_one_repair_request_that_sends_the_problem_back(
    make_client: Callable[..., DeepInfraClient], fake_server: FakeDeepInfra, stream: bool
) -> None:
    client = make_client()
    if stream:
        text, result = streamed(client, REPAIR_MODEL, SPEC)
        assert text == NOT_JSON_REPLY  # what streamed live was the broken first reply
    else:
        result = client.chat(ASK, REPAIR_MODEL, stream=False, schema=SPEC)
    assert result.repairs == 1 and result.complete
    assert result.parsed["label"] in ("positive", "negative", "mixed")
    first, repair = chats(fake_server)
    assert repair["messages"][-2] == {"role": "assistant", "content": NOT_JSON_REPLY}
    assert "not valid JSON" in repair["messages"][-1]["content"]
    assert first["response_format"] == repair["response_format"]


def test_a_failed_repair_is_one_error_that_keeps_the_raw_text(
    make_client: Callable[..., DeepInfraClient], fake_server: FakeDeepInfra
) -> None:
    for _ in range(2):  # the first reply and the repair's
        fake_server.script_reply("still not JSON")
    with pytest.raises(SchemaValidationError) as caught:
        make_client().chat(ASK, MODEL, stream=False, schema=SPEC)
    assert "after 1 repair" in str(caught.value) and "\n" not in str(caught.value)
    assert caught.value.result.text == "still not JSON"
    assert caught.value.result.parsed is None and caught.value.result.repairs == 1
    assert len(chats(fake_server)) == 2


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
def test_a_json_schema_refusal_falls_back_once_to_json_mode_and_is_remembered(
    make_client: Callable[..., DeepInfraClient],
    fake_server: FakeDeepInfra,
    stream: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = make_client()
    with caplog.at_level(logging.WARNING, logger="deepinfra_magic"):
        for _ in range(2):
            if stream:
                result = streamed(client, JSON_MODE_ONLY_MODEL, SPEC)[1]
            else:
                result = client.chat(ASK, JSON_MODE_ONLY_MODEL, stream=False, schema=SPEC)
            assert result.parsed["label"] in ("positive", "negative", "mixed")
    kinds = [body["response_format"]["type"] for body in chats(fake_server)]
    assert kinds == ["json_schema", "json_object", "json_object"]  # refused once, then remembered
    fallback = chats(fake_server)[1]
    assert "JSON Schema:" in fallback["messages"][0]["content"]
    notices = [r.message for r in caplog.records if "json_schema" in r.message]
    assert len(notices) == 1 and "JSON mode" in notices[0]
    assert client.json_mode_only(JSON_MODE_ONLY_MODEL)
    assert not client.json_mode_only(MODEL)


def test_schema_and_response_format_together_are_refused_before_sending(
    make_client: Callable[..., DeepInfraClient], fake_server: FakeDeepInfra
) -> None:
    with pytest.raises(ValueError, match="schema= or response_format="):
        make_client().chat(
            ASK, MODEL, stream=False, schema=SPEC, response_format={"type": "json_object"}
        )
    assert chats(fake_server) == []
