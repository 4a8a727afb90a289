"""The library and the magics against llama.cpp's native ``llama-server`` (a server nobody
here wrote, the one Ollama and LM Studio wrap), with no key: chat streamed and not, the
model list with its context, and the answers it gives that need our words."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from deepinfra_magic import ContentDelta, DeepInfraClient
from deepinfra_magic.errors import ContextLengthError, RouteNotFoundError
from tests.llama.server import MODEL, NATIVE_CONTEXT, LlamaServer

MESSAGES = [{"role": "user", "content": "Tell me a story"}]
# A prompt of more tokens than the server's one slot holds (one made-up word each).
OVERLONG = [{"role": "user", "content": "bada " * (2 * NATIVE_CONTEXT)}]
CONTEXT_ADVICE = ("--new", "--max-tokens", "max_history")


def test_streamed_and_not_streamed_chat(native_llama: LlamaServer, native_env: Path) -> None:
    with DeepInfraClient() as client:
        assert not client.has_key and client.routes.generic
        with client.chat(MESSAGES, max_tokens=12, temperature=0) as stream:
            pieces = [event.text for event in stream if isinstance(event, ContentDelta)]
        whole = client.chat(MESSAGES, MODEL, stream=False, max_tokens=12, temperature=0)
    streamed = stream.result
    assert streamed is not None and streamed.text == "".join(pieces) and pieces
    assert streamed.finish_reason == "length" and streamed.model == MODEL
    assert whole.text == streamed.text and whole.model == MODEL
    assert whole.usage is not None and whole.usage.completion_tokens == 12


def test_the_model_list_gives_the_servers_context_and_max_tokens_fits_it(
    native_llama: LlamaServer, native_env: Path
) -> None:
    recording = native_env / "sent.json"
    with DeepInfraClient(record=str(recording)) as client:
        (model,) = client.models().text_models
        assert (model.name, model.context_length) == (MODEL, NATIVE_CONTEXT)  # meta.n_ctx
        result = client.chat(MESSAGES, MODEL, stream=False, max_tokens=100_000)
    assert result.text
    sent = [e["request"]["json"] for e in json.loads(recording.read_text())["exchanges"]]
    (chat,) = [body for body in sent if body and "messages" in body]
    assert 0 < chat["max_tokens"] < NATIVE_CONTEXT  # fitted: prompt plus reply fit the slot


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "no-stream"])
@pytest.mark.parametrize("env", ["native_env", "litellm_env"], ids=["direct", "via-litellm"])
def test_a_prompt_longer_than_the_context_gets_the_context_advice(
    request: pytest.FixtureRequest, env: str, stream: bool
) -> None:
    request.getfixturevalue(env)  # the server itself, or LiteLLM's proxy in front of it
    with DeepInfraClient() as client, pytest.raises(ContextLengthError) as caught:
        if stream:
            with client.chat(OVERLONG, MODEL, max_tokens=10) as reply:
                list(reply)
        else:
            client.chat(OVERLONG, MODEL, stream=False, max_tokens=10)
    message = caught.value.message
    assert message.startswith(f"The conversation is longer than '{MODEL}' can take (400: ")
    assert f"exceeds the available context size ({NATIVE_CONTEXT} tokens)" in message
    assert all(advice in message for advice in CONTEXT_ADVICE)
    assert "Fix that parameter" not in message


@pytest.mark.parametrize(
    ("server", "env"), [("native_llama", "native_env"), ("litellm", "litellm_env")],
    ids=["direct", "via-litellm"],
)  # fmt: skip
def test_an_image_request_says_the_server_has_no_image_endpoint(
    request: pytest.FixtureRequest, server: str, env: str
) -> None:
    url = request.getfixturevalue(server).url
    request.getfixturevalue(env)
    with DeepInfraClient() as client, pytest.raises(RouteNotFoundError) as caught:
        client.generate_image("a fox", MODEL)
    message = caught.value.message
    # Through LiteLLM too: the proxy passed the request on (no response_format for it to
    # refuse), and its wrapped 404 is read by llama-server's answer inside it.
    assert message.startswith(f"The server at {url} has no image endpoint (")
    assert "File Not Found" in message and "no model" not in message
    assert "deepinfra.com" not in message


def test_the_magics_show_the_context_and_its_advice(
    ip: InteractiveShell, native_env: Path, native_llama: LlamaServer
) -> None:
    with capture_output() as listed:
        ip.run_line_magic("deepinfra_models", "")
    table = "\n".join(str(o.data.get("text/markdown", "")) for o in listed.outputs)
    assert f"OpenAI-compatible server at {native_llama.url}" in table
    (row,) = [line for line in table.splitlines() if line.startswith(f"| `{MODEL}` |")]
    assert "512" in row  # the Context column, from meta.n_ctx

    with capture_output() as replied:
        result = ip.run_cell(f"%%deepinfra -m {MODEL} --max-tokens 8\nTell me a story")
    assert result.error_in_exec is None
    assert replied.outputs, "the reply is shown"

    with capture_output() as refused:
        result = ip.run_cell(f"%%deepinfra -m {MODEL} --new\n" + "bada " * (2 * NATIVE_CONTEXT))
    assert isinstance(result.error_in_exec, ContextLengthError)
    assert "ContextLengthError: The conversation is longer than" in refused.stdout
    assert all(advice in refused.stdout for advice in CONTEXT_ADVICE)
