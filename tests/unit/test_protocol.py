"""The sans-I/O core: chat stream decoding, answer and error parsing, requests, retry policy.

No network here: these are the rules both clients (and replay) share, tested on bytes.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from deepinfra_magic._config import (
    ConfigurationError,
    RetryPolicy,
    Secret,
    Timeouts,
    resolve_api_url,
    resolve_key,
)
from deepinfra_magic._protocol import (
    ChatStreamDecoder,
    chat_request,
    decode_data_uri,
    image_request,
    parse_catalog,
    parse_chat_completion,
    parse_image_answer,
    sniff_image_type,
)
from deepinfra_magic._routes import Routes
from deepinfra_magic.errors import (
    APIStatusError,
    InvalidArgumentError,
    InvalidResponseError,
    StreamError,
)
from deepinfra_magic.types import ContentDelta, ReasoningDelta, Usage
from tests.fake_deepinfra import TINY_JPEG, TINY_WEBP, make_png

PNG = make_png(2, 2, (1, 2, 3))


def sse(*payloads: Any, eol: str = "\n") -> bytes:
    """An SSE body with one event per payload (dicts become JSON, strings are sent as is)."""
    parts = [p if isinstance(p, str) else json.dumps(p, ensure_ascii=False) for p in payloads]
    return "".join(f"data: {part}{eol}{eol}" for part in parts).encode()


def delta(content: str | None = None, reasoning: str | None = None, finish: str | None = None):
    body: dict[str, Any] = {}
    if content is not None:
        body["content"] = content
    if reasoning is not None:
        body["reasoning_content"] = reasoning
    return {"choices": [{"index": 0, "delta": body, "finish_reason": finish}]}


USAGE = {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8, "estimated_cost": 1.5e-06}


def assert_one_line(error: BaseException) -> str:
    message = str(error)
    assert "\n" not in message and "\r" not in message
    assert message.strip() == message and message
    return message


# ---- chat stream decoding -------------------------------------------------------------------


def test_stream_of_deltas_then_usage_then_done() -> None:
    decoder = ChatStreamDecoder("m")
    body = sse(
        delta(content=""),  # the role chunk: nothing to show
        delta(content="Hel"),
        delta(content="lo"),
        delta(finish="stop"),
        {"choices": [], "usage": USAGE},  # include_usage: a chunk without choices
        "[DONE]",
    )
    events = decoder.feed(body)
    assert events == [ContentDelta("Hel"), ContentDelta("lo")]
    assert decoder.done and decoder.text == "Hello"
    assert decoder.finish_reason == "stop"
    assert decoder.usage == Usage(5, 3, 8, 1.5e-06)
    assert decoder.close() == []


def test_reasoning_deltas_are_kept_apart_from_the_answer() -> None:
    decoder = ChatStreamDecoder("m")
    events = decoder.feed(
        sse(
            delta(reasoning="Think"),
            {"choices": [{"delta": {"reasoning": "ing."}}]},  # the other field name in use
            delta(content="Answer"),
            delta(finish="stop"),
            "[DONE]",
        )
    )
    assert events == [ReasoningDelta("Think"), ReasoningDelta("ing."), ContentDelta("Answer")]
    assert decoder.reasoning == "Thinking." and decoder.text == "Answer"


def test_nothing_after_done_is_read_as_content() -> None:
    decoder = ChatStreamDecoder("m")
    assert decoder.feed(sse(delta(content="a"), delta(finish="stop"), "[DONE]")) == [
        ContentDelta("a")
    ]
    assert decoder.feed(sse(delta(content="ghost"))) == []
    assert decoder.text == "a"


def test_error_object_mid_stream_raises_with_the_text_so_far() -> None:
    decoder = ChatStreamDecoder("m")
    decoder.feed(sse(delta(content="Partial "), delta(content="answer")))
    with pytest.raises(StreamError) as caught:
        decoder.feed(sse({"error": {"message": "Internal error while generating"}}))
    error = caught.value
    assert error.partial_text == "Partial answer"
    message = assert_one_line(error)
    assert "Internal error while generating" in message
    assert "14 characters received are kept" in message and "Run the cell again" in message


def test_malformed_json_line_raises_with_the_text_so_far() -> None:
    decoder = ChatStreamDecoder("m")
    decoder.feed(sse(delta(reasoning="hmm"), delta(content="Kept")))
    with pytest.raises(StreamError) as caught:
        decoder.feed(b"data: {not json\n\n")
    assert caught.value.partial_text == "Kept"
    assert caught.value.partial_reasoning == "hmm"
    assert "malformed data '{not json'" in assert_one_line(caught.value)


def test_json_that_is_not_an_object_is_an_error_too() -> None:
    decoder = ChatStreamDecoder("m")
    with pytest.raises(StreamError, match="unexpected data"):
        decoder.feed(sse("[1, 2]"))


def test_a_stream_without_done_completes_when_the_finish_reason_arrived() -> None:
    decoder = ChatStreamDecoder("m")
    # The last event also lacks its blank line: close() must still dispatch it.
    decoder.feed(sse(delta(content="All")) + b'data: {"choices":[{"delta":{"content":" here"}')
    decoder.feed(b',"finish_reason":"length"}]}')
    assert decoder.close() == [ContentDelta(" here")]
    assert decoder.text == "All here" and decoder.finish_reason == "length"


def test_a_stream_that_just_stops_is_an_error_that_keeps_the_text() -> None:
    decoder = ChatStreamDecoder("m")
    decoder.feed(sse(delta(content="cut sho")))
    with pytest.raises(StreamError) as caught:
        decoder.close()
    assert caught.value.partial_text == "cut sho"
    assert "ended before the reply finished" in assert_one_line(caught.value)


def test_crlf_split_characters_and_line_separators_survive_decoding() -> None:
    text = "naïve\u2028日本語🎉\u2029end"
    body = sse(delta(content=text), delta(finish="stop"), "[DONE]", eol="\r\n")
    decoder = ChatStreamDecoder("m")
    events = [event for i in range(len(body)) for event in decoder.feed(body[i : i + 1])]
    assert events == [ContentDelta(text)]


# ---- non-streamed answers ---------------------------------------------------------------------


def test_non_streamed_completion() -> None:
    payload = {
        "model": "served-name",
        "choices": [
            {
                "message": {"role": "assistant", "content": "Hi", "reasoning_content": "R"},
                "finish_reason": "stop",
            }
        ],
        "usage": USAGE,
    }
    assert parse_chat_completion(payload, "asked") == (
        "Hi",
        "R",
        "stop",
        Usage(5, 3, 8, 1.5e-06),
        "served-name",
    )


def test_non_streamed_completion_carrying_an_error() -> None:
    with pytest.raises(StreamError, match="model overloaded"):
        parse_chat_completion({"error": {"message": "model overloaded"}}, "m")


# ---- images -------------------------------------------------------------------------------------


def data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


@pytest.mark.parametrize(
    "payload",
    [
        {"images": [data_uri(PNG)]},
        {"images": data_uri(PNG)},
        {"output": [data_uri(PNG)]},
        {"image_url": data_uri(PNG)},
        {"images": [{"b64_json": base64.b64encode(PNG).decode()}]},
        {"data": None, "images": [{"url": data_uri(PNG)}]},
    ],
    ids=["images", "images_single", "output", "image_url", "b64_json", "url_object"],
)
def test_image_answer_styles(payload: dict[str, Any]) -> None:
    payload |= {"seed": 4, "request_id": "r", "inference_status": {"cost": 0.01, "runtime_ms": 9}}
    answer = parse_image_answer(payload, json.dumps(payload).encode())
    [ref] = answer.refs
    assert (ref.data, ref.mime_type) == (PNG, "image/png")
    assert (answer.seed, answer.cost, answer.runtime_ms, answer.request_id) == (4, 0.01, 9, "r")


def test_image_urls_are_kept_for_fetching() -> None:
    answer = parse_image_answer({"images": ["https://x.test/a.png"]}, b"")
    assert answer.refs[0].url == "https://x.test/a.png" and answer.refs[0].data is None


@pytest.mark.parametrize(
    ("data", "label", "mime"),
    [
        (PNG, "image/png", "image/png"),
        (TINY_JPEG, "image/jpeg", "image/jpeg"),
        (TINY_WEBP, "image/webp", "image/webp"),
        (PNG, "image/x-unknown", "image/png"),  # the bytes win over a wrong label
        (b"GIF89a....", "image/gif", "image/gif"),
    ],
)
def test_image_type_comes_from_the_bytes(data: bytes, label: str, mime: str) -> None:
    assert decode_data_uri(data_uri(data, label)).mime_type == mime


def test_image_of_unknown_type_is_a_clear_error() -> None:
    with pytest.raises(InvalidResponseError) as caught:
        decode_data_uri(data_uri(b"not an image at all", "image/x-unknown"))
    message = assert_one_line(caught.value)
    assert "image/x-unknown" in message and "supported: PNG, JPEG, WebP, GIF" in message
    assert sniff_image_type(b"not an image") is None


def test_invalid_base64_is_a_clear_error() -> None:
    with pytest.raises(InvalidResponseError) as caught:
        decode_data_uri("data:image/png;base64,@@ this is not base64 @@")
    message = assert_one_line(caught.value)
    assert "invalid base64 data ('@@ this is not base64 @@')" in message


def test_no_images_is_an_error_quoting_a_shortened_body() -> None:
    payload = {"images": [], "request_id": "x" * 500}
    body = json.dumps(payload).encode()
    with pytest.raises(InvalidResponseError) as caught:
        parse_image_answer(payload, body)
    message = assert_one_line(caught.value)
    assert message.startswith("The answer held no images: {") and "…" in message
    assert len(message) < 300 and "Try another prompt" in message


# ---- catalog ------------------------------------------------------------------------------------


def test_catalog_is_a_list_or_wrapped_and_skips_nameless_entries() -> None:
    entries = [{"model_name": "a"}, {"type": "x"}, "junk"]
    assert parse_catalog(entries) == [{"model_name": "a"}]
    assert parse_catalog({"models": entries}) == [{"model_name": "a"}]
    with pytest.raises(InvalidResponseError):
        parse_catalog("nope")


# ---- requests -----------------------------------------------------------------------------------


def test_streamed_chat_request_asks_for_usage_and_passes_extra_params() -> None:
    request = chat_request(
        [{"role": "user", "content": "hi"}],
        "m",
        stream=True,
        temperature=0.2,
        max_tokens=9,
        params={"top_p": 0.5, "stop": ["\n\n"], "response_format": {"type": "json_object"}},
    )
    assert request.json == {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "temperature": 0.2,
        "max_tokens": 9,
        "top_p": 0.5,
        "stop": ["\n\n"],
        "response_format": {"type": "json_object"},
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    plain = chat_request([{"role": "user", "content": "hi"}], "m", stream=False,
                         temperature=None, max_tokens=None, params={})  # fmt: skip
    assert plain.json == {"model": "m", "messages": [{"role": "user", "content": "hi"}],
                          "stream": False}  # fmt: skip


@pytest.mark.parametrize(
    ("messages", "says"),
    [
        ("hello", "must be a list"),
        ([], "messages is empty"),
        ([{"content": "no role"}], "messages[0] must be a dict with 'role'"),
    ],
)
def test_bad_messages_are_refused_before_sending(messages: Any, says: str) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        chat_request(messages, "m", stream=True, temperature=None, max_tokens=None, params={})
    assert says in assert_one_line(caught.value)
    assert isinstance(caught.value, ValueError) and not isinstance(caught.value, APIStatusError)


def test_image_request_path_and_empty_prompt() -> None:
    request = image_request("a cat", "black-forest-labs/FLUX-1-schnell", {"seed": 1})
    assert request.path == "/v1/inference/black-forest-labs/FLUX-1-schnell"
    assert request.json == {"prompt": "a cat", "seed": 1}
    with pytest.raises(InvalidArgumentError, match="prompt is empty"):
        image_request("  ", "m", {})


# ---- retry policy -------------------------------------------------------------------------------


def test_retry_policy_is_bounded_and_honours_retry_after() -> None:
    policy = RetryPolicy(max_retries=2)
    waited = policy.delay(1, retry_after=3.0)
    assert waited is not None and 3.0 <= waited <= 3.6  # never sooner; a little jitter
    assert policy.delay(3) is None  # retries used up
    assert policy.delay(1, retry_after=3600.0) is None  # too long to wait: tell the user
    first, second = policy.delay(1), policy.delay(2)
    assert first is not None and 0 < first <= 0.5 * 1.25
    assert second is not None and 0.5 < second <= 1.0 * 1.25
    assert [s for s in (400, 401, 404, 422, 429, 500, 502, 503, 504)
            if policy.should_retry_status(s)] == [429, 500, 502, 503, 504]  # fmt: skip


# ---- configuration ------------------------------------------------------------------------------


def test_base_url_is_normalised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEEPINFRA_BASE_URL", raising=False)

    def root(base_url: str | None = None) -> str:
        return Routes.for_url(resolve_api_url(base_url)).root

    assert root() == "https://api.deepinfra.com"
    assert root("https://api.deepinfra.com/v1/openai/") == "https://api.deepinfra.com"
    monkeypatch.setenv("DEEPINFRA_BASE_URL", "http://proxy.test/v1/openai")
    assert root() == "http://proxy.test"
    assert root("http://arg.test/") == "http://arg.test"
    with pytest.raises(ConfigurationError, match="base_url must be an http"):
        root("api.deepinfra.com")
    assert isinstance(ConfigurationError("x"), ValueError)  # a local mistake


def test_key_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    def revealed(key: str | Secret | None = None) -> str | None:
        secret = resolve_key(key)
        return secret.reveal() if secret is not None else None

    monkeypatch.delenv("DEEPINFRA_API_KEY", raising=False)
    monkeypatch.delenv("DEEPINFRA_API_TOKEN", raising=False)
    assert revealed() is None
    monkeypatch.setenv("DEEPINFRA_API_TOKEN", " token ")
    assert revealed() == "token"
    monkeypatch.setenv("DEEPINFRA_API_KEY", "key")
    assert revealed() == "key"
    assert revealed("arg") == "arg"
    assert revealed(Secret("wrapped")) == "wrapped"
    monkeypatch.setenv("DEEPINFRA_API_KEY", "  ")  # blank: the next variable is used
    assert revealed() == "token"


def test_timeout_must_be_positive() -> None:
    assert Timeouts.from_value(5).read == 5.0
    with pytest.raises(ConfigurationError, match="positive number of seconds"):
        Timeouts.from_value(0)


def test_a_generic_model_list_gives_each_models_context() -> None:
    routes = Routes.for_url("http://127.0.0.1:8080/v1")
    payload = {
        "data": [
            {"id": "tiny", "meta": {"n_ctx": 512, "n_ctx_train": 32768}},  # llama-server
            {"id": "big", "max_model_len": 4096},  # vLLM
            {"id": "plain"},
        ]
    }
    entries = routes.parse_catalog(payload) or []
    assert [(e["model_name"], e.get("max_tokens")) for e in entries] == [
        ("tiny", 512),
        ("big", 4096),
        ("plain", None),
    ]
