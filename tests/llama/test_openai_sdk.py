"""Decoded text equals what the openai SDK decodes from the same server with the same seed."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepinfra_magic import ContentDelta, DeepInfraClient
from tests.llama.server import MODEL, LlamaServer

MESSAGES = [{"role": "user", "content": "Write a long answer about rivers."}]


@pytest.mark.parametrize("stream", [True, False])
def test_the_same_text_as_the_openai_sdk(
    llama: LlamaServer, no_key_env: Path, stream: bool
) -> None:
    import openai

    options = {"max_tokens": 200, "temperature": 0.9, "seed": 1234}
    sdk = openai.OpenAI(base_url=llama.url, api_key="sk-no-key-required")
    try:
        if stream:
            chunks = sdk.chat.completions.create(
                model=MODEL,
                messages=MESSAGES,
                stream=True,
                **options,  # type: ignore[arg-type]
            )
            expected = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        else:
            answer = sdk.chat.completions.create(
                model=MODEL,
                messages=MESSAGES,
                **options,  # type: ignore[arg-type]
            )
            expected = answer.choices[0].message.content or ""
    finally:
        sdk.close()
    with DeepInfraClient() as client:
        if stream:
            with client.chat(MESSAGES, MODEL, **options) as reply:
                text = "".join(e.text for e in reply if isinstance(e, ContentDelta))
        else:
            text = client.chat(MESSAGES, MODEL, stream=False, **options).text
    assert len(expected.split()) > 100  # a real, sampled reply, not an empty one
    assert text == expected
