"""The fake DeepInfra server serves DeepInfra's shapes and each fault mode as specified.

Everything goes through raw httpx (or http.client) so that these tests check the wire format,
not a client library's reading of it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import http.client
import json
import re
import struct
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fake_deepinfra import (
    CANARY_KEY,
    IMAGE_STYLE_MIME,
    URL_LINE_PREFIX,
    FakeDeepInfra,
    ServerConfig,
    filler_reply,
    make_png,
    start_subprocess_server,
    tokenize,
)

CHAT = "/v1/openai/chat/completions"
TEXT_MODEL = "meta-llama/Meta-Llama-3.1-8B-Instruct"
PRICED_MODEL = "meta-llama/Llama-3.3-70B-Instruct-Turbo"
REASONING_MODEL = "deepseek-ai/DeepSeek-R1"
IMAGE_MODEL = "black-forest-labs/FLUX-1-schnell"
IMAGE_PATH = f"/v1/inference/{IMAGE_MODEL}"
AUTH = {"Authorization": f"Bearer {CANARY_KEY}"}

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"


@pytest.fixture
def client(fake_server: FakeDeepInfra) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fake_server.url, headers=AUTH, timeout=30) as http_client:
        yield http_client


def chat_body(
    content: str = "Hello there", model: str = TEXT_MODEL, **extra: Any
) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": content}], **extra}


def sse_data(body: str) -> list[str]:
    """The data of each event of an SSE body; comments are skipped, multi-line data joined."""
    events = []
    for block in re.split(r"\n\n", body.replace("\r\n", "\n")):
        lines = [line[len("data: ") :] for line in block.split("\n") if line.startswith("data: ")]
        if lines:
            events.append("\n".join(lines))
    return events


def stream(client: httpx.Client, **body: Any) -> tuple[list[str], str]:
    """POST a streaming chat request; returns its events' data and the raw body text."""
    response = client.post(CHAT, json={**chat_body(), "stream": True, **body})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream"
    assert response.headers["transfer-encoding"] == "chunked"
    return sse_data(response.text), response.text


def chunks(events: list[str]) -> list[dict[str, Any]]:
    """The JSON chunks of a stream, [DONE] excluded."""
    return [json.loads(data) for data in events if data != "[DONE]"]


def content_of(events: list[str]) -> str:
    return "".join(
        chunk["choices"][0]["delta"].get("content", "")
        for chunk in chunks(events)
        if chunk["choices"]
    )


def png_size(data: bytes) -> tuple[int, int]:
    """Check a PNG's signature, chunk CRCs and pixel data; returns (width, height)."""
    assert data.startswith(PNG_MAGIC)
    position, header, pixels = 8, b"", b""
    while position < len(data):
        length, tag = struct.unpack(">I4s", data[position : position + 8])
        body = data[position + 8 : position + 8 + length]
        (crc,) = struct.unpack(">I", data[position + 8 + length : position + 12 + length])
        assert zlib.crc32(tag + body) == crc
        if tag == b"IHDR":
            header = body
        elif tag == b"IDAT":
            pixels += body
        position += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", header[:10])
    assert (depth, colour) == (8, 2)
    assert len(zlib.decompress(pixels)) == height * (width * 3 + 1)
    return width, height


def image_bytes(client: httpx.Client, ref: str) -> tuple[str, bytes]:
    """MIME type and bytes of an image given as a data URI or a URL."""
    if ref.startswith("data:"):
        header, _, payload = ref.partition(",")
        assert header.endswith(";base64")
        return header[len("data:") : -len(";base64")], base64.b64decode(payload, validate=True)
    response = client.get(ref)
    assert response.status_code == 200
    return response.headers["content-type"], response.content


# ---- catalog --------------------------------------------------------------------------------


def test_featured_catalog_has_text_image_and_filtered_models(client: httpx.Client) -> None:
    response = httpx.get(f"{client.base_url}/models/featured")  # no auth needed
    assert response.status_code == 200
    entries = {entry["model_name"]: entry for entry in response.json()}
    for entry in entries.values():
        assert set(entry) == {
            "model_name",
            "type",
            "reported_type",
            "description",
            "max_tokens",
            "pricing",
            "tags",
            "deprecated",
            "replaced_by",
            "quantization",
            "cover_img_url",
        }  # S7 ModelOut
    text = [name for name, entry in entries.items() if entry["type"] == "text-generation"]
    images = [name for name, entry in entries.items() if entry["type"] == "text-to-image"]
    assert set(text) == {
        PRICED_MODEL,
        TEXT_MODEL,
        "Qwen/Qwen2.5-72B-Instruct",
        REASONING_MODEL,
        "mistralai/Mistral-Small-24B-Instruct-2501",
        "google/gemma-3-27b-it",
        "Austism/chronos-hermes-13b-v2",
        "Gryphe/MythoMax-L2-13b",
        "meta-llama/Llama-3.2-11B-Vision-Instruct",
    }
    assert set(images) == {
        IMAGE_MODEL,
        "black-forest-labs/FLUX-1-dev",
        "stabilityai/sd3.5",
        "stability-ai/sdxl",
    }
    assert {entry["type"] for entry in entries.values()} == {
        "text-generation",
        "text-to-image",
        "embeddings",
        "automatic-speech-recognition",
    }
    assert entries[PRICED_MODEL]["pricing"] == {
        "type": "tokens",
        "cents_per_input_token": 2.3e-05,
        "cents_per_output_token": 4e-05,
    }
    assert entries[PRICED_MODEL]["max_tokens"] == 131072
    assert entries[IMAGE_MODEL]["pricing"] == {  # S3, S7 ModelPricingImageUnits
        "type": "image_units",
        "cents_per_image_unit": 0.05,
        "default_width": 1024,
        "default_height": 1024,
        "default_iterations": 1,
        "default_price_cents": None,
        "usage_from_cost": False,
    }
    assert entries["stabilityai/sd3.5"]["pricing"]["default_price_cents"] == 6.0  # S4 flat
    old = entries["Austism/chronos-hermes-13b-v2"]  # S21
    assert (old["deprecated"], old["replaced_by"]) == (1727971605, "Gryphe/MythoMax-L2-13b")
    assert entries[PRICED_MODEL]["deprecated"] is None
    gemma = entries["google/gemma-3-27b-it"]
    assert gemma["max_tokens"] is None and gemma["pricing"] is None
    assert "reasoning" in entries[REASONING_MODEL]["tags"]
    assert all(entry["reported_type"] == entry["type"] for entry in entries.values())


def test_openai_model_list_answers_without_a_key_and_lists_text_models(
    fake_server: FakeDeepInfra, client: httpx.Client
) -> None:
    fake_server.valid_keys = {CANARY_KEY}
    assert httpx.get(f"{fake_server.url}/v1/openai/models").status_code == 200
    wrong = {"Authorization": "Bearer sk-wrong"}
    assert httpx.get(f"{fake_server.url}/v1/openai/models", headers=wrong).status_code == 200
    fake_server.extra_models = {"my/private-model"}
    body = client.get("/v1/openai/models").json()
    assert body["object"] == "list"
    ids = [model["id"] for model in body["data"]]
    assert PRICED_MODEL in ids and "my/private-model" in ids and IMAGE_MODEL not in ids
    assert body["data"][0] == {"id": PRICED_MODEL, "object": "model", "owned_by": "deepinfra"}


def test_the_model_list_can_check_the_key_as_servers_started_with_one_do(
    fake_server: FakeDeepInfra, client: httpx.Client
) -> None:
    fake_server.configure(models_need_key=True, valid_keys={CANARY_KEY})
    url = f"{fake_server.url}/v1/openai/models"
    assert httpx.get(url).status_code == 403
    assert httpx.get(url, headers={"Authorization": "Bearer sk-wrong"}).status_code == 401
    assert client.get("/v1/openai/models").json()["object"] == "list"


def test_catalog_is_configurable(fake_server: FakeDeepInfra, client: httpx.Client) -> None:
    entry = {"model_name": "acme/tiny", "type": "text-generation", "max_tokens": 8}
    client.post("/_fake/config", json={"catalog": [entry]}).raise_for_status()
    [served] = client.get("/models/featured").json()
    assert served["model_name"] == "acme/tiny" and served["reported_type"] == "text-generation"
    assert client.post(CHAT, json=chat_body(model="acme/tiny")).status_code == 200
    assert client.post(CHAT, json=chat_body(model=TEXT_MODEL)).status_code == 404


# ---- chat -----------------------------------------------------------------------------------


def test_stream_shape_ends_with_done_and_usage_on_the_finish_chunk(client: httpx.Client) -> None:
    events, _ = stream(client)
    assert events[-1] == "[DONE]"
    parsed = chunks(events)
    first, finish = parsed[0], parsed[-1]
    assert first["id"].startswith("chatcmpl-") and first["object"] == "chat.completion.chunk"
    assert isinstance(first["created"], int) and first["model"] == TEXT_MODEL
    assert first["choices"] == [
        {
            "index": 0,
            "delta": {"role": "assistant", "content": ""},
            "finish_reason": None,
            "logprobs": None,
        }
    ]
    assert finish["choices"][0]["delta"] == {} and finish["choices"][0]["finish_reason"] == "stop"
    # S1: usage on the finish chunk, without total_tokens or estimated_cost.
    assert set(finish["usage"]) == {"prompt_tokens", "completion_tokens"}
    assert all("usage" not in chunk for chunk in parsed[:-1])
    assert len({chunk["id"] for chunk in parsed}) == 1
    for chunk in parsed[1:-1]:
        [token] = chunk["choices"][0]["delta"].values()
        assert len(token.strip()) <= 8  # one small token per event


def test_usage_chunk_only_with_include_usage(client: httpx.Client) -> None:
    events, _ = stream(client, model=PRICED_MODEL, stream_options={"include_usage": True})
    assert events[-1] == "[DONE]"
    usage_chunk = json.loads(events[-2])
    assert usage_chunk["choices"] == []  # S19
    usage = usage_chunk["usage"]
    content_events = len(chunks(events)) - 3  # role, finish and usage chunks
    assert usage["completion_tokens"] == content_events
    assert usage["prompt_tokens"] == len("Hello there") // 4 + 1
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert "estimated_cost" not in usage  # no source shows it in a stream
    events, _ = stream(client, stream_options={"include_usage": False})
    assert all(chunk["choices"] for chunk in chunks(events))  # no usage-only chunk


def test_default_reply_echoes_prompt_and_has_python_block(client: httpx.Client) -> None:
    events, _ = stream(client, messages=[{"role": "user", "content": "Sort a list"}])
    text = content_of(events)
    assert TEXT_MODEL in text and "> Sort a list" in text
    assert "```python\nprompt = 'Sort a list'\n" in text
    assert text == content_of(
        stream(client, messages=[{"role": "user", "content": "Sort a list"}])[0]
    )


def test_non_stream_reply_matches_stream(client: httpx.Client) -> None:
    body = client.post(CHAT, json=chat_body()).json()
    assert body["object"] == "chat.completion" and body["model"] == TEXT_MODEL
    [choice] = body["choices"]
    assert choice["finish_reason"] == "stop"
    assert choice["message"]["role"] == "assistant"
    assert "reasoning_content" not in choice["message"]
    assert choice["message"]["content"] == content_of(stream(client)[0])
    assert set(body["usage"]) == {
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "estimated_cost",
    }


def test_reasoning_model_streams_reasoning_first(client: httpx.Client) -> None:
    events, _ = stream(client, model=REASONING_MODEL)
    kinds = [next(iter(chunk["choices"][0]["delta"]), None) for chunk in chunks(events)]
    assert kinds[0] == "role"
    reasoning_end = kinds.index("content", 1)
    assert reasoning_end > 1 and set(kinds[1:reasoning_end]) == {"reasoning_content"}
    assert set(kinds[reasoning_end:-1]) == {"content"}
    message = client.post(CHAT, json=chat_body(model=REASONING_MODEL)).json()["choices"][0]
    assert message["message"]["reasoning_content"].startswith("The user sent")


def test_max_tokens_caps_content_and_finishes_with_length(client: httpx.Client) -> None:
    events, _ = stream(client, max_tokens=5, stream_options={"include_usage": True})
    parsed = chunks(events)
    assert len(parsed) == 1 + 5 + 2
    assert parsed[-2]["choices"][0]["finish_reason"] == "length"
    assert parsed[-2]["usage"]["completion_tokens"] == 5
    assert parsed[-1]["usage"]["completion_tokens"] == 5


def test_reply_tokens_gives_long_filler_reply(
    fake_server: FakeDeepInfra, client: httpx.Client
) -> None:
    fake_server.reply_tokens = 150
    events, _ = stream(client)
    assert len(chunks(events)) == 1 + 150 + 1
    text = content_of(events)
    assert text == filler_reply(150) and text.count("\n\n") == 2
    fake_server.add_fault(reply_tokens=7)  # per request, through a fault rule
    assert len(chunks(stream(client)[0])) == 1 + 7 + 1


def test_scripted_replies_match_and_are_used_once_in_order(
    fake_server: FakeDeepInfra, client: httpx.Client
) -> None:
    fake_server.script_reply("About apples.", match="apple")
    fake_server.script_reply("Anything.", reasoning="Let me think.")
    fake_server.script_reply("Second anything.")

    def reply(prompt: str) -> dict[str, Any]:
        response = client.post(CHAT, json=chat_body(prompt))
        message: dict[str, Any] = response.json()["choices"][0]["message"]
        return message

    assert reply("banana") == {
        "role": "assistant",
        "content": "Anything.",
        "reasoning_content": "Let me think.",
    }
    assert reply("an apple pie")["content"] == "About apples."
    assert reply("apple again")["content"] == "Second anything."
    assert "apple again" in reply("apple again")["content"]  # scripts used up: generated echo


def test_tokenize_round_trips() -> None:
    text = "Hi  there,\n\nsupercalifragilistic 💡 done\u2028x  "
    tokens = tokenize(text)
    assert "".join(tokens) == text
    assert all(len(token.strip()) <= 8 for token in tokens)


# ---- auth and validation ----------------------------------------------------------------------


@pytest.mark.parametrize("header", [None, "Bearer", "Basic abc"])
def test_no_key_gives_403_not_authenticated(fake_server: FakeDeepInfra, header: str | None) -> None:
    headers = {"Authorization": header} if header is not None else {}
    response = httpx.post(f"{fake_server.url}{CHAT}", json=chat_body(), headers=headers)
    assert response.status_code == 403
    assert response.json() == {"detail": {"error": "Not authenticated"}}  # S13


def test_unknown_key_gives_401_in_openai_form(fake_server: FakeDeepInfra) -> None:
    fake_server.valid_keys = {CANARY_KEY}
    headers = {"Authorization": "Bearer sk-wrong"}
    response = httpx.post(f"{fake_server.url}{CHAT}", json=chat_body(), headers=headers)
    assert response.status_code == 401
    assert response.json() == {  # S14
        "error": {
            "message": "Not authenticated",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    }


def test_rate_limit_endpoint_checks_the_key(fake_server: FakeDeepInfra) -> None:
    fake_server.valid_keys = {CANARY_KEY}
    url = f"{fake_server.url}/v1/me/rate_limit"
    assert httpx.get(url).status_code == 403
    assert httpx.get(url, headers={"Authorization": "Bearer sk-wrong"}).status_code == 401
    good = httpx.get(url, headers={"Authorization": f"Bearer {CANARY_KEY}"})
    assert good.status_code == 200 and set(good.json()) == {"rate_limit", "tpm_rate_limit"}


def test_prompt_longer_than_the_context_gives_a_deterministic_500(client: httpx.Client) -> None:
    prompt = "x" * (4 * 4096 + 40)  # chronos-hermes has a 4096-token context
    for _ in range(2):
        body = chat_body(prompt, model="Austism/chronos-hermes-13b-v2")
        response = client.post(CHAT, json=body)
        assert response.status_code == 500
        message = response.json()["error"]["message"]  # S16
        assert message == "Requested input length 4106 exceeds maximum input length 4096"


def test_any_non_empty_key_is_accepted_by_default(fake_server: FakeDeepInfra) -> None:
    headers = {"Authorization": "Bearer whatever"}
    response = httpx.post(f"{fake_server.url}{CHAT}", json=chat_body(), headers=headers)
    assert response.status_code == 200


@pytest.mark.parametrize("model", ["nobody/no-such-model", IMAGE_MODEL])
def test_unknown_or_non_text_model_gives_404(client: httpx.Client, model: str) -> None:
    response = client.post(CHAT, json=chat_body(model=model))
    assert response.status_code == 404
    assert response.json() == {"error": "Model not found"}  # S7 DeepError


def test_extra_models_are_served(fake_server: FakeDeepInfra, client: httpx.Client) -> None:
    fake_server.extra_models = {"nobody/private"}
    assert client.post(CHAT, json=chat_body(model="nobody/private")).status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"this is not json", "messages"),
        (json.dumps({"model": TEXT_MODEL}).encode(), "messages"),
        (json.dumps({"model": TEXT_MODEL, "messages": []}).encode(), "messages"),
        (json.dumps({"messages": [{"role": "user", "content": "x"}]}).encode(), "model"),
    ],
)
def test_malformed_chat_body_gives_422(client: httpx.Client, body: bytes, field: str) -> None:
    response = client.post(CHAT, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    [item] = response.json()["detail"]  # S17: pydantic v2
    assert (item["type"], item["loc"], item["msg"]) == (
        "missing",
        ["body", field],
        "Field required",
    )
    assert "input" in item


# ---- error faults ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("style", "message", "content_type", "expected"),
    [
        ("detail_str", None, "application/json", {"detail": "Service Unavailable"}),
        ("detail_obj", "boom", "application/json", {"detail": {"error": "boom"}}),
        (
            "error_obj",
            "boom",
            "application/json",
            {"error": {"message": "boom", "type": "server_error", "param": None, "code": None}},
        ),
        (
            "detail_list",
            None,
            "application/json",
            {
                "detail": [
                    {
                        "type": "missing",
                        "loc": ["body", "messages"],
                        "msg": "Field required",
                        "input": None,
                    }
                ]
            },
        ),
        (
            "deep_error",
            "Model is being deployed",
            "application/json",
            {"error": "Model is being deployed"},
        ),
        ("text", "upstream exploded", "text/plain; charset=utf-8", "upstream exploded"),
        ("empty", None, None, ""),
    ],
)
def test_status_fault_body_styles(
    fake_server: FakeDeepInfra,
    client: httpx.Client,
    style: str,
    message: str | None,
    content_type: str | None,
    expected: Any,
) -> None:
    fake_server.add_fault(status=503, body_style=style, message=message)
    response = client.post(CHAT, json=chat_body(stream=True))
    assert response.status_code == 503
    assert response.headers.get("content-type") == content_type
    if isinstance(expected, str):
        assert response.text == expected
        assert response.headers["content-length"] == str(len(expected))
    else:
        assert response.json() == expected


def test_html_fault_looks_like_nginx(fake_server: FakeDeepInfra, client: httpx.Client) -> None:
    fake_server.add_fault(status=502, body_style="html")
    response = client.post(CHAT, json=chat_body())
    assert response.status_code == 502
    assert response.headers["content-type"] == "text/html"
    assert "<title>502 Bad Gateway</title>" in response.text and "nginx" in response.text


def test_fault_headers_and_retry_after(fake_server: FakeDeepInfra, client: httpx.Client) -> None:
    fake_server.add_fault(status=429, headers={"Retry-After": "2"})
    response = client.post(CHAT, json=chat_body())
    assert response.status_code == 429 and response.headers["retry-after"] == "2"


def test_faults_are_consumed_in_order_and_by_path(
    fake_server: FakeDeepInfra, client: httpx.Client
) -> None:
    fake_server.add_fault(status=500, times=2)
    fake_server.add_fault(status=503)
    fake_server.add_fault(path="/v1/inference/*", status=418, times=None)
    statuses = [client.post(CHAT, json=chat_body()).status_code for _ in range(4)]
    assert statuses == [500, 500, 503, 200]
    for _ in range(3):
        assert client.post(IMAGE_PATH, json={"prompt": "x"}).status_code == 418


def test_a_fault_with_a_match_waits_for_a_prompt_that_contains_it(
    fake_server: FakeDeepInfra, client: httpx.Client
) -> None:
    fake_server.add_fault(status=503, match="row 2")
    statuses = [
        client.post(CHAT, json=chat_body(f"row {index}")).status_code for index in (1, 2, 2)
    ]
    assert statuses == [200, 503, 200]


@pytest.mark.parametrize("where", ["fault", "config"])
def test_first_byte_delay_triggers_client_timeout_and_is_seen_as_disconnect(
    fake_server: FakeDeepInfra, client: httpx.Client, where: str
) -> None:
    if where == "fault":
        fake_server.add_fault(first_byte_delay=60)
    else:
        fake_server.first_byte_delay = 60
    with pytest.raises(httpx.ReadTimeout):
        client.post(CHAT, json=chat_body(), timeout=httpx.Timeout(30, read=0.2))
    assert fake_server.wait_for_disconnect(timeout=30)
    assert fake_server.disconnect_log[0].events_sent == 0
    assert fake_server.wait_streams_closed(timeout=30)


# ---- stream faults --------------------------------------------------------------------------


def test_disconnect_after_drops_connection_mid_body(
    fake_server: FakeDeepInfra, client: httpx.Client
) -> None:
    fake_server.add_fault(disconnect_after=2)
    received = []
    with (
        pytest.raises(httpx.RemoteProtocolError),
        client.stream("POST", CHAT, json=chat_body(stream=True)) as response,
    ):
        for line in response.iter_lines():
            if line.startswith("data: "):
                received.append(json.loads(line[len("data: ") :]))
    assert [list(chunk["choices"][0]["delta"]) for chunk in received] == [
        ["role", "content"],
        ["content"],
        ["content"],
    ]
    assert fake_server.wait_streams_closed(timeout=30)
    assert fake_server.disconnects == 0  # the server hung up, not the client


def test_client_closing_stream_early_is_recorded(
    fake_server: FakeDeepInfra, client: httpx.Client
) -> None:
    fake_server.configure(reply_tokens=1000, token_delay=0.01)
    data_lines = 0
    with client.stream("POST", CHAT, json=chat_body(stream=True)) as response:
        for line in response.iter_lines():
            data_lines += line.startswith("data: ")
            if data_lines == 3:
                break
    assert fake_server.wait_for_disconnect(timeout=30)
    [record] = fake_server.disconnect_log
    assert record.path == CHAT and 3 <= record.events_sent < 1000
    assert fake_server.wait_streams_closed(timeout=30)
    assert fake_server.streams_open == 0


def test_malformed_after_inserts_bad_event_and_continues(
    fake_server: FakeDeepInfra, client: httpx.Client
) -> None:
    fake_server.add_fault(malformed_after=1)
    events, body = stream(client)
    assert "data: {not json\n\n" in body
    assert events[2] == "{not json" and events[-1] == "[DONE]"


def test_error_event_after_ends_stream_without_done(
    fake_server: FakeDeepInfra, client: httpx.Client
) -> None:
    fake_server.add_fault(error_event_after=2)
    events, body = stream(client)
    assert len(events) == 1 + 2 + 1
    assert json.loads(events[-1]) == {
        "error": {"message": "Internal error while generating", "type": "server_error"}
    }
    assert body.endswith("\n\n") and "[DONE]" not in body


def test_one_write_sends_deltas_and_error_event_in_a_single_chunk(
    fake_server: FakeDeepInfra, client: httpx.Client
) -> None:
    fake_server.add_fault(error_event_after=3, one_write=True)
    with client.stream("POST", CHAT, json=chat_body(stream=True)) as response:
        chunks = list(response.iter_raw())
    assert len(chunks) == 1
    events = [line[6:] for line in chunks[0].decode().splitlines() if line.startswith("data: ")]
    assert len(events) == 1 + 3 + 1
    assert "error" in json.loads(events[-1])


@pytest.mark.parametrize("include_usage", [False, True])
def test_no_done_leaves_last_event_unterminated(
    fake_server: FakeDeepInfra, client: httpx.Client, include_usage: bool
) -> None:
    fake_server.add_fault(no_done=True)
    events, body = stream(client, stream_options={"include_usage": include_usage})
    assert "[DONE]" not in body
    assert body.endswith("}\n") and not body.endswith("\n\n")
    assert (json.loads(events[-1])["choices"] == []) is include_usage


def test_huge_chunk_sends_reply_as_one_event(
    fake_server: FakeDeepInfra, client: httpx.Client
) -> None:
    fake_server.add_fault(huge_chunk_bytes=1_000_000)
    events, _ = stream(client)
    parsed = chunks(events)
    assert len(parsed) == 3
    assert len(parsed[1]["choices"][0]["delta"]["content"].encode()) == 1_000_000


def test_forced_text_with_line_separator_and_multibyte_survives(
    fake_server: FakeDeepInfra, client: httpx.Client
) -> None:
    text = "naïve\u2028line — 💡 日本語\r\nend"
    fake_server.add_fault(text=text)
    events, body = stream(client)
    assert "\u2028" in body  # sent raw, not escaped
    assert content_of(events) == text


def test_split_utf8_splits_a_character_across_http_chunks(
    fake_server: FakeDeepInfra, client: httpx.Client
) -> None:
    text = "héllo wörld ✓"
    fake_server.add_fault(text=text, split_utf8=True)
    pieces = []
    with client.stream("POST", CHAT, json=chat_body(stream=True)) as response:
        pieces = list(response.iter_raw())
    split = 0
    for piece in pieces:
        try:
            piece.decode()
        except UnicodeDecodeError:
            split += 1
    assert split >= 2  # the piece ending mid-character and the one starting mid-character
    assert content_of(sse_data(b"".join(pieces).decode())) == text


def test_comments_are_interleaved(fake_server: FakeDeepInfra, client: httpx.Client) -> None:
    fake_server.add_fault(comments=True)
    events, body = stream(client)
    assert body.count(": keep-alive\n\n") == len(events)
    assert content_of(events) == content_of(stream(client)[0])


def test_multi_data_splits_one_event_over_two_data_lines(
    fake_server: FakeDeepInfra, client: httpx.Client
) -> None:
    fake_server.add_fault(multi_data=True)
    events, body = stream(client)
    split_events = [data for data in events if "\n" in data]
    assert len(split_events) == 1
    assert json.loads(split_events[0])["choices"][0]["delta"]["content"]
    assert re.search(r"data: [^\n]*,\ndata: ", body)
    assert content_of(events) == content_of(stream(client)[0])


def test_crlf_line_endings(fake_server: FakeDeepInfra, client: httpx.Client) -> None:
    fake_server.add_fault(crlf=True)
    events, body = stream(client)
    assert body.endswith("data: [DONE]\r\n\r\n")
    assert re.search(r"(?<!\r)\n", body) is None
    assert content_of(events) == content_of(stream(client)[0])


def test_fault_token_delay_is_accepted(fake_server: FakeDeepInfra, client: httpx.Client) -> None:
    fake_server.add_fault(token_delay=0.001)
    events, _ = stream(client)
    assert events[-1] == "[DONE]"


# ---- concurrency ----------------------------------------------------------------------------


def test_max_concurrent_gives_429_and_records_peak(fake_server: FakeDeepInfra) -> None:
    fake_server.max_concurrent = 8
    fake_server.add_fault(times=None, first_byte_delay=120)  # hold admitted requests

    async def run() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=20)
        async with httpx.AsyncClient(
            base_url=fake_server.url, headers=AUTH, limits=limits, timeout=150
        ) as http_client:
            tasks = {
                asyncio.create_task(http_client.post(CHAT, json=chat_body())) for _ in range(12)
            }
            finished: list[httpx.Response] = []
            while len(finished) < 4:
                done, tasks = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                finished += [task.result() for task in done]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            return finished

    rejected = asyncio.run(run())
    assert len(rejected) == 4
    for response in rejected:
        assert response.status_code == 429  # S15's body, no Retry-After (S6)
        assert response.json()["error"]["message"] == "Model busy, retry later"
        assert "retry-after" not in response.headers
    assert fake_server.wait_streams_closed(timeout=30)
    assert fake_server.peak_concurrency == 8
    assert fake_server.count(CHAT) == 12


# ---- images ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("style", "mime"), list(IMAGE_STYLE_MIME.items()))
def test_image_styles_decode_to_valid_images(
    fake_server: FakeDeepInfra, client: httpx.Client, style: str, mime: str
) -> None:
    fake_server.image_style = style  # type: ignore[assignment]
    response = client.post(IMAGE_PATH, json={"prompt": "a red fox", "seed": 42})
    assert response.status_code == 200
    body = response.json()
    assert body["seed"] == 42 and body["nsfw_content_detected"] == [False]
    assert body["request_id"] is None and body["inference_status"]["status"] == "unknown"  # S3
    assert isinstance(body["inference_status"]["runtime_ms"], int)
    assert body["inference_status"]["cost"] == pytest.approx(0.0005)
    ref = {
        "images": lambda: body["images"][0],
        "images_single": lambda: body["images"],
        "output": lambda: body["output"][0],
        "image_url": lambda: body["image_url"],
        "url": lambda: body["images"][0],
        "jpeg": lambda: body["images"][0],
        "webp": lambda: body["images"][0],
    }[style]()
    assert isinstance(ref, str)
    if style == "url":
        assert ref.startswith(f"{fake_server.url}/files/") and ref.endswith(".png")
    served_mime, data = image_bytes(client, ref)
    assert served_mime == mime
    if mime == "image/png":
        assert png_size(data) == (64, 64)
    elif mime == "image/jpeg":
        assert data.startswith(JPEG_MAGIC) and data.endswith(b"\xff\xd9")
    else:
        assert data[:4] == b"RIFF" and data[8:12] == b"WEBP"


def generate(client: httpx.Client, **body: Any) -> tuple[dict[str, Any], bytes]:
    response = client.post(IMAGE_PATH, json={"prompt": "a red fox", **body})
    assert response.status_code == 200
    json_body: dict[str, Any] = response.json()
    return json_body, image_bytes(client, json_body["images"][0])[1]


def test_images_depend_on_prompt_and_seed(client: httpx.Client) -> None:
    _, fox = generate(client, seed=1)
    assert generate(client, seed=1)[1] == fox
    assert generate(client, seed=2)[1] != fox
    assert generate(client, seed=1, prompt="a blue whale")[1] != fox
    body, _ = generate(client)
    assert isinstance(body["seed"], int)


def test_image_size_small_by_default_and_full_on_request(
    fake_server: FakeDeepInfra, client: httpx.Client
) -> None:
    assert png_size(generate(client, width=1024, height=768)[1]) == (64, 48)
    fake_server.image_size = "full"
    assert png_size(generate(client, width=100, height=80)[1]) == (100, 80)


def test_num_images_gives_several_images(client: httpx.Client) -> None:
    body, _ = generate(client, num_images=3, seed=5)
    assert len(body["images"]) == 3 and len(set(body["images"])) == 3


def test_image_request_errors(fake_server: FakeDeepInfra, client: httpx.Client) -> None:
    response = client.post(f"/v1/inference/{TEXT_MODEL}", json={"prompt": "x"})
    assert response.status_code == 422
    assert response.json() == {"detail": f"Model {TEXT_MODEL} is not a text-to-image model"}
    response = client.post("/v1/inference/nobody/nothing", json={"prompt": "x"})
    assert response.status_code == 404
    assert response.json() == {"error": "Model not found"}  # S7 DeepError
    response = client.post(IMAGE_PATH, json={"width": 64})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "prompt"]
    assert httpx.post(f"{fake_server.url}{IMAGE_PATH}", json={"prompt": "x"}).status_code == 403


def test_image_fault_invalid_base64(fake_server: FakeDeepInfra, client: httpx.Client) -> None:
    fake_server.add_fault(path="/v1/inference/*", image_fault="invalid_base64")
    ref = client.post(IMAGE_PATH, json={"prompt": "x"}).json()["images"][0]
    assert ref.startswith("data:image/png;base64,")
    with pytest.raises(binascii.Error):
        base64.b64decode(ref.partition(",")[2], validate=True)


def test_image_fault_unknown_mime(fake_server: FakeDeepInfra, client: httpx.Client) -> None:
    fake_server.add_fault(path="/v1/inference/*", image_fault="unknown_mime")
    ref = client.post(IMAGE_PATH, json={"prompt": "x"}).json()["images"][0]
    mime, data = image_bytes(client, ref)
    assert mime == "image/x-unknown" and data.startswith(PNG_MAGIC)


def test_image_fault_zero_images(fake_server: FakeDeepInfra, client: httpx.Client) -> None:
    fake_server.add_fault(path="/v1/inference/*", image_fault="zero_images")
    assert client.post(IMAGE_PATH, json={"prompt": "x"}).json()["images"] == []


def test_image_fault_big(fake_server: FakeDeepInfra, client: httpx.Client) -> None:
    fake_server.add_fault(path="/v1/inference/*", image_fault="big")
    _, data = image_bytes(client, client.post(IMAGE_PATH, json={"prompt": "x"}).json()["images"][0])
    assert len(data) > 19_000_000
    assert png_size(data) == (2580, 2580)


def test_image_fault_url_404(fake_server: FakeDeepInfra, client: httpx.Client) -> None:
    fake_server.add_fault(path="/v1/inference/*", image_fault="url_404")
    ref = client.post(IMAGE_PATH, json={"prompt": "x"}).json()["images"][0]
    assert ref.startswith(f"{fake_server.url}/files/")
    assert client.get(ref).status_code == 404


def test_image_delay_by_seed_lets_requests_finish_out_of_order(
    fake_server: FakeDeepInfra,
) -> None:
    fake_server.image_delay_by_seed = {1: 120.0}

    async def run() -> tuple[bool, int]:
        async with httpx.AsyncClient(base_url=fake_server.url, headers=AUTH, timeout=150) as http:
            slow = asyncio.create_task(http.post(IMAGE_PATH, json={"prompt": "x", "seed": 1}))
            fast = await http.post(IMAGE_PATH, json={"prompt": "x", "seed": 2})
            slow_finished_first = slow.done()
            slow.cancel()
            await asyncio.gather(slow, return_exceptions=True)
            return slow_finished_first, fast.json()["seed"]

    assert asyncio.run(run()) == (False, 2)
    assert fake_server.wait_streams_closed(timeout=30)


# ---- observability and control ------------------------------------------------------------------


def test_request_log_and_count(fake_server: FakeDeepInfra, client: httpx.Client) -> None:
    client.post(CHAT, json=chat_body("logged"), headers={"X-Custom": "yes"})
    client.get("/models/featured")
    client.get("/_fake/log")
    [chat, catalog] = fake_server.requests
    assert chat.method == "POST" and chat.path == CHAT
    assert (
        chat.headers["x-custom"] == "yes" and chat.headers["authorization"] == AUTH["Authorization"]
    )
    assert chat.json["messages"][0]["content"] == "logged"
    assert catalog.json is None
    assert fake_server.count("/v1/*") == 1
    assert fake_server.count("*", method="get") == 1
    assert fake_server.count("/_fake/*") == 0


def test_keep_alive_reuses_the_connection(fake_server: FakeDeepInfra) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", int(fake_server.url.rsplit(":", 1)[1]))
    try:
        body = json.dumps(chat_body(stream=True))
        headers = {**AUTH, "Content-Type": "application/json"}
        for _ in range(2):
            connection.request("POST", CHAT, body=body, headers=headers)
            first_socket = connection.sock
            response = connection.getresponse()
            assert response.status == 200 and not response.will_close
            assert response.read().endswith(b"data: [DONE]\n\n")
        connection.request("GET", "/models/featured")
        assert connection.sock is first_socket
        connection.getresponse().read()
    finally:
        connection.close()


def test_http_control_endpoints(fake_server: FakeDeepInfra, client: httpx.Client) -> None:
    assert client.post(
        "/_fake/config", json={"reply_tokens": 3, "valid_keys": [CANARY_KEY]}
    ).json() == {"ok": True}
    assert fake_server.valid_keys == {CANARY_KEY}
    assert len(chunks(stream(client)[0])) == 1 + 3 + 1
    client.post("/_fake/fault", json={"status": 500, "body_style": "text"}).raise_for_status()
    assert client.post(CHAT, json=chat_body()).status_code == 500
    client.post("/_fake/script", json={"text": "Scripted!"}).raise_for_status()
    assert content_of(stream(client)[0]) == "Scripted!"
    assert client.post("/_fake/wait_for_disconnect", json={"timeout": 0}).json() == {"ok": False}
    assert client.post("/_fake/wait_streams_closed", json={"timeout": 30}).json() == {"ok": True}
    log = client.get("/_fake/log").json()
    assert [record["path"] for record in log["requests"]] == [CHAT] * 3
    assert log["disconnects"] == [] and log["peak_concurrency"] == 1
    assert client.post("/_fake/config", json={"nonsense": 1}).status_code == 400
    assert client.post("/_fake/fault", json={"body_style": "nonsense"}).status_code == 400
    assert client.get("/_fake/nothing").status_code == 404
    client.post("/_fake/reset").raise_for_status()
    assert fake_server.requests == [] and fake_server.reply_tokens is None


def test_reset_restores_creation_config_and_clears_state(fake_server: FakeDeepInfra) -> None:
    with FakeDeepInfra(reply_tokens=4) as server:
        server.configure(reply_tokens=9, valid_keys=["k"])
        server.valid_keys.add("k2")
        server.add_fault(status=500)
        server.script_reply("x")
        server.reset()
        assert server.reply_tokens == 4 and server.valid_keys == set()
        events = sse_data(
            httpx.post(f"{server.url}{CHAT}", json=chat_body(stream=True), headers=AUTH).text
        )
        assert len(chunks(events)) == 1 + 4 + 1
        assert server.count(CHAT) == 1


def test_every_config_field_is_a_server_attribute(fake_server: FakeDeepInfra) -> None:
    for config_field in dataclasses.fields(ServerConfig):
        assert getattr(fake_server, config_field.name) == getattr(
            fake_server.config, config_field.name
        )
    fake_server.max_concurrent = 3
    assert fake_server.config.max_concurrent == 3
    with pytest.raises(ValueError, match="image_style"):
        fake_server.configure(image_style="gif")


def test_make_png_is_valid_and_checks_its_input() -> None:
    pixels = bytes(range(3 * 2 * 3))
    png = make_png(3, 2, pixels)
    assert png_size(png) == (3, 2)
    assert zlib.decompress(png[png.index(b"IDAT") + 4 :])[:10] == b"\x00" + pixels[:9]
    assert png_size(make_png(2, 2, (255, 0, 0))) == (2, 2)
    with pytest.raises(ValueError):
        make_png(3, 3, pixels)


# ---- out of process -------------------------------------------------------------------------


def test_subprocess_server_streams_20000_events() -> None:
    url, process = start_subprocess_server(reply_tokens=20000, valid_keys={CANARY_KEY})
    try:
        assert url.startswith("http://127.0.0.1:")
        with httpx.Client(base_url=url, headers=AUTH, timeout=60) as http_client:
            count, last = 0, ""
            with http_client.stream("POST", CHAT, json=chat_body(stream=True)) as response:
                for line in response.iter_lines():
                    if line.startswith("data: "):
                        count, last = count + 1, line
            assert count == 20000 + 3 and last == "data: [DONE]"
            assert len(http_client.get("/_fake/log").json()["requests"]) == 1
    finally:
        process.terminate()
        assert process.wait(timeout=30) == 0


def test_command_line_prints_exactly_one_url_line() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.fake_deepinfra",
            "--port",
            "0",
            "--token-delay",
            "0",
            "--reply-tokens",
            "2",
        ],
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith(URL_LINE_PREFIX) and line.endswith("\n")
        url = line.strip().removeprefix(URL_LINE_PREFIX)
        events = sse_data(
            httpx.post(f"{url}{CHAT}", json=chat_body(stream=True), headers=AUTH).text
        )
        assert len(chunks(events)) == 1 + 2 + 1
    finally:
        process.terminate()
        remaining, _ = process.communicate(timeout=30)
    assert remaining == "" and process.returncode == 0


# ---- shapes from DeepInfra's own material (see the ids in tests/fake_deepinfra/) ---------------


def test_finish_error_fault_ends_with_finish_reason_error(
    fake_server: FakeDeepInfra, client: httpx.Client
) -> None:
    fake_server.add_fault(finish_error=True)
    events, _ = stream(client)
    assert chunks(events)[-1]["choices"][0]["finish_reason"] == "error"  # S20


def test_seed_as_string_and_nsfw_flags(fake_server: FakeDeepInfra, client: httpx.Client) -> None:
    fake_server.seed_as_string = True
    fake_server.nsfw_seeds = {8}
    body = client.post(IMAGE_PATH, json={"prompt": "x", "seed": 7, "num_images": 2}).json()
    assert body["seed"] == "7"  # S8: seed typed as str
    assert body["nsfw_content_detected"] == [False, True]  # S3


def test_cog_model_wants_input_and_answers_output(client: httpx.Client) -> None:
    path = "/v1/inference/stability-ai/sdxl"
    refused = client.post(path, json={"prompt": "a red fox"})
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"] == ["body", "input"]  # S9, S17
    body = client.post(path, json={"input": {"prompt": "a red fox"}}).json()
    assert body["status"] == "succeeded" and body["error"] is None  # S9 cog/response.ts
    assert body["output"][0].startswith("data:image/png;base64,")


def test_sd35_takes_aspect_ratio_and_costs_a_flat_price(
    fake_server: FakeDeepInfra, client: httpx.Client
) -> None:
    fake_server.image_size = "full"
    path = "/v1/inference/stabilityai/sd3.5"
    body = client.post(path, json={"prompt": "x", "aspect_ratio": "16:9", "width": 64}).json()
    _, data = image_bytes(client, body["images"][0])
    width, height = struct.unpack(">II", data[16:24])
    assert width > height and width != 64  # S4: aspect_ratio, width ignored
    assert body["inference_status"]["cost"] == pytest.approx(0.06)  # S4: "$0.06 / img"


def test_image_cost_counts_iterations(client: httpx.Client) -> None:
    path = "/v1/inference/black-forest-labs/FLUX-1-dev"
    default = client.post(path, json={"prompt": "x"}).json()["inference_status"]["cost"]
    double = client.post(path, json={"prompt": "x", "num_inference_steps": 50}).json()
    assert double["inference_status"]["cost"] == pytest.approx(2 * default)  # S3's "x iters"


def test_openai_images_endpoint_sends_raw_base64_jpeg(client: httpx.Client) -> None:
    response = client.post(
        "/v1/openai/images/generations", json={"model": IMAGE_MODEL, "prompt": "x", "n": 2}
    )
    body = response.json()  # S3, S7 OpenAIImagesOut
    assert isinstance(body["created"], int) and len(body["data"]) == 2
    assert base64.b64decode(body["data"][0]["b64_json"]).startswith(JPEG_MAGIC)  # S3, S10
