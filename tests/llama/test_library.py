"""The client library against a real llama.cpp server, with no key: sync and async,
streamed and not, its model list, and its errors."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from deepinfra_magic import AsyncDeepInfraClient, ContentDelta, DeepInfraClient
from deepinfra_magic.errors import (
    APIConnectionError,
    ContextLengthError,
    RouteNotFoundError,
    ServerError,
)
from tests.llama.server import MODEL, LlamaServer

MESSAGES = [{"role": "user", "content": "Tell me a story"}]
CHAT_LINE = '"POST /v1/chat/completions HTTP/1.1"'


def overlong() -> list[dict[str, str]]:
    """A prompt of more tokens than the server's context holds (one made-up word each)."""
    return [{"role": "user", "content": "bada " * 33000}]


def test_streamed_chat_needs_no_key_and_names_the_model(
    llama: LlamaServer, no_key_env: Path
) -> None:
    with DeepInfraClient() as client:
        assert not client.has_key and client.routes.generic
        with client.chat(MESSAGES, max_tokens=20, temperature=0) as stream:
            deltas = [event.text for event in stream if isinstance(event, ContentDelta)]
    result = stream.result
    assert result is not None and result.text == "".join(deltas) and len(deltas) == 20
    # No -m: the server's only model was asked for, and the reply names it.
    assert result.model == MODEL and result.finish_reason == "length"


def test_not_streamed_gives_the_same_text_and_usage(llama: LlamaServer, no_key_env: Path) -> None:
    with DeepInfraClient() as client:
        streamed = client.chat(MESSAGES, MODEL, stream=False, max_tokens=12, temperature=0)
        again = client.chat(MESSAGES, MODEL, max_tokens=12, temperature=0)
        text = "".join(e.text for e in again if isinstance(e, ContentDelta))
    assert streamed.text == text and streamed.model == MODEL
    assert streamed.usage is not None and streamed.usage.completion_tokens == 12


def test_async_streamed_and_not(llama: LlamaServer, no_key_env: Path) -> None:
    async def run() -> tuple[str, str, str]:
        async with AsyncDeepInfraClient() as client:
            stream = await client.chat(MESSAGES, max_tokens=10, temperature=0)
            pieces = [e.text async for e in stream if isinstance(e, ContentDelta)]
            whole = await client.chat(MESSAGES, stream=False, max_tokens=10, temperature=0)
            return "".join(pieces), whole.text, whole.model

    streamed, whole, model = asyncio.run(run())
    assert streamed == whole and streamed.strip() and model == MODEL


def test_the_model_list_comes_from_the_server(llama: LlamaServer, no_key_env: Path) -> None:
    with DeepInfraClient() as client:
        catalog = client.models()
        assert [m.name for m in catalog.text_models] == [MODEL]
        assert catalog.source == "network"


def test_a_conversation_longer_than_the_context_is_a_context_error_sent_once(
    llama: LlamaServer, no_key_env: Path
) -> None:
    mark = llama.settled_mark()
    with DeepInfraClient() as client, client.chat(overlong(), MODEL, max_tokens=10) as stream:
        with pytest.raises(ContextLengthError) as caught:
            list(stream)
    message = caught.value.message
    assert "--new" in message and "--max-tokens" in message and "max_history" in message
    assert llama.wait_for_line("exceed context window", after=mark)
    assert sum(CHAT_LINE in line for line in llama.log.splitlines()[mark:]) == 1


def test_a_server_error_names_the_server_and_is_not_retried(
    llama: LlamaServer, no_key_env: Path
) -> None:
    mark = llama.settled_mark()
    with DeepInfraClient("x") as client, pytest.raises(ServerError) as caught:
        client.chat(MESSAGES, MODEL, stream=False, top_p=7)
    message = caught.value.message
    assert message.startswith(f"The server at {llama.url} failed (500: ")
    assert "DeepInfra" not in message and "[redacted]" not in message  # "x" is no secret
    assert llama.wait_for_line("500 Internal Server Error", after=mark)
    assert sum(CHAT_LINE in line for line in llama.log.splitlines()[mark:]) == 1


def test_a_base_url_without_v1_says_which_url_is_missing(
    llama: LlamaServer, no_key_env: Path
) -> None:
    with (
        DeepInfraClient(base_url=llama.root) as client,
        pytest.raises(RouteNotFoundError) as caught,
    ):
        client.chat(MESSAGES, MODEL, stream=False)
    assert f"{llama.root}/chat/completions does not exist" in caught.value.message


def test_an_unreachable_server_is_named(no_key_env: Path) -> None:
    with DeepInfraClient(base_url="http://127.0.0.1:9/v1", max_retries=0) as client:
        with pytest.raises(APIConnectionError) as caught:
            client.chat(MESSAGES, MODEL, stream=False)
    assert "Could not connect to http://127.0.0.1:9/v1 " in caught.value.message
