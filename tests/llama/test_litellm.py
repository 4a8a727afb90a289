"""The library and the magics through LiteLLM's proxy in front of llama.cpp's native server
(a proxy nobody here wrote, as a user puts it in front of a local model), with its master
key: the same text as the server behind it, and the answers the proxy wraps in its own
words, each given the project's one line (``_status.py`` quotes them). An overlong prompt
and an image request through the proxy are tested beside the direct ones, in
test_native_server.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from deepinfra_magic import ContentDelta, DeepInfraClient
from deepinfra_magic.errors import (
    AuthenticationError,
    ModelNotFoundError,
)
from tests.llama.server import MODEL, LlamaServer

MESSAGES = [{"role": "user", "content": "Tell me a story"}]


def test_chat_through_the_proxy_gives_the_servers_own_text(
    litellm_env: Path, litellm: LlamaServer, native_llama: LlamaServer
) -> None:
    with DeepInfraClient(base_url=native_llama.url) as direct:
        expected = direct.chat(MESSAGES, MODEL, stream=False, max_tokens=12, temperature=0)
    with DeepInfraClient() as client:
        assert client.has_key and client.routes.generic
        with client.chat(MESSAGES, MODEL, max_tokens=12, temperature=0) as stream:
            pieces = [event.text for event in stream if isinstance(event, ContentDelta)]
        whole = client.chat(MESSAGES, MODEL, stream=False, max_tokens=12, temperature=0)
    assert stream.result is not None and stream.result.finish_reason == "length"
    assert "".join(pieces) == whole.text == expected.text != ""
    assert whole.usage is not None and whole.usage.completion_tokens == 12


def test_a_typed_map_through_the_proxy_gives_the_servers_own_table(
    litellm_env: Path, native_llama: LlamaServer
) -> None:
    rows = [{"text": text} for text in ("good", "bad", "fine", "awful")]
    spec = "label: positive|negative, score: float"
    options = {"max_tokens": 60, "temperature": 0, "schema": spec}
    with DeepInfraClient(base_url=native_llama.url) as direct:
        expected = direct.map(rows, "Label: {text}", MODEL, **options).output()
    with DeepInfraClient() as client:
        table = client.map(rows, "Label: {text}", MODEL, **options).output()
    # The proxy passed response_format on: the backend's grammar made the same typed rows.
    assert table.equals(expected) and len(table) == 4 and table.notna().all().all()
    assert str(table["label"].dtype) == "category" and str(table["score"].dtype) == "Float64"


def test_an_unknown_model_is_named_with_the_close_match(litellm_env: Path) -> None:
    with DeepInfraClient() as client, pytest.raises(ModelNotFoundError) as caught:
        client.chat(MESSAGES, "tiyn", stream=False, max_tokens=4)
    message = caught.value.message
    assert message.startswith(f"The server at {client.base_url} has no model 'tiyn' (400: ")
    assert "Did you mean: tiny?" in message and "Fix that parameter" not in message


def test_a_key_the_proxy_does_not_know_is_named_as_the_key(
    litellm_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEEPINFRA_API_KEY", "sk-not-the-master-key")
    with DeepInfraClient() as client, pytest.raises(AuthenticationError) as caught:
        client.chat(MESSAGES, MODEL, stream=False, max_tokens=4)
    message = caught.value.message
    assert "does not know this key (400: No connected db.)" in message
    assert "master key" in message and "sk-not-the-master-key" not in message


def test_the_magics_list_and_ask_through_the_proxy(
    ip: InteractiveShell, litellm_env: Path, litellm: LlamaServer
) -> None:
    with capture_output() as listed:
        ip.run_line_magic("deepinfra_models", "")
    table = "\n".join(str(o.data.get("text/markdown", "")) for o in listed.outputs)
    assert f"OpenAI-compatible server at {litellm.url}" in table
    assert any(line.startswith(f"| `{MODEL}` |") for line in table.splitlines())

    with capture_output() as replied:
        result = ip.run_cell(f"%%deepinfra -m {MODEL} --max-tokens 8\nTell me a story")
    assert result.error_in_exec is None
    shown = "\n".join(str(o.data.get("text/plain", "")) for o in replied.outputs)
    assert f"{MODEL} · " in shown and "8 out tokens" in shown  # the footer, with the usage
