"""The gpt4free provider, through g4f's own ``Client`` and ``AsyncClient`` and called
directly, against the fake server (g4f from the ``g4f`` extra; no internet)."""

from __future__ import annotations

import asyncio
import base64
import doctest
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deepinfra_magic import provider
from deepinfra_magic.errors import AuthenticationError
from deepinfra_magic.images import ImageResult
from deepinfra_magic.provider import DeepInfra
from deepinfra_magic.types import ReasoningDelta
from tests.fake_deepinfra import (
    CANARY_KEY,
    CHAT_PATH,
    FakeDeepInfra,
    default_reasoning,
    default_reply,
)

g4f_client = pytest.importorskip("g4f.client")
g4f_response = pytest.importorskip("g4f.providers.response")

TEXT = "meta-llama/Meta-Llama-3.1-8B-Instruct"
REASONER = "deepseek-ai/DeepSeek-R1"
FLUX = "black-forest-labs/FLUX-1-schnell"
HELLO = [{"role": "user", "content": "hi"}]


@pytest.fixture
def env(
    fake_server: FakeDeepInfra, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[FakeDeepInfra]:
    """The fake server through the environment, a fresh catalog, and g4f's files (usage
    log, downloaded media) kept under tmp_path."""
    import g4f.debug
    from g4f.cookies import CookiesConfig

    from deepinfra_magic.catalog import CATALOG_CACHE

    monkeypatch.setenv("DEEPINFRA_BASE_URL", fake_server.api_url)
    monkeypatch.setenv("DEEPINFRA_API_KEY", CANARY_KEY)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(CookiesConfig, "cookies_dir", str(tmp_path / "g4f"))
    monkeypatch.chdir(tmp_path)  # g4f saves generated media under ./generated_media
    monkeypatch.setattr(g4f.debug, "version_check", False)  # g4f may ask PyPI otherwise
    CATALOG_CACHE.clear()
    yield fake_server
    CATALOG_CACHE.clear()


def chat_bodies(server: FakeDeepInfra) -> list[dict[str, Any]]:
    return [r.json for r in server.requests if r.path == CHAT_PATH]


def client(server: FakeDeepInfra) -> Any:
    return g4f_client.Client(
        provider=DeepInfra, api_key=CANARY_KEY, base_url=f"{server.url}/v1/openai"
    )


# ---- g4f's Client ---------------------------------------------------------------------------


def test_plain_chat_through_g4f_client_sends_only_request_fields(env: FakeDeepInfra) -> None:
    reply = client(env).chat.completions.create(messages=HELLO, model=TEXT, top_p=0.5)
    assert reply.choices[0].message.content == default_reply(TEXT, "hi")
    assert reply.usage.prompt_tokens == 1 and reply.usage.completion_tokens > 0
    (body,) = chat_bodies(env)
    # g4f's provider=, base_url=, api_key= and the like never reach DeepInfra.
    assert body == {"model": TEXT, "messages": HELLO, "top_p": 0.5, "stream": False}
    assert env.requests[-1].headers["authorization"] == f"Bearer {CANARY_KEY}"


def test_streamed_chat_through_g4f_client(env: FakeDeepInfra) -> None:
    chunks = list(client(env).chat.completions.create(messages=HELLO, model=TEXT, stream=True))
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
    assert text == default_reply(TEXT, "hi")
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chat_bodies(env)[0]["stream_options"] == {"include_usage": True}


def test_reasoning_through_g4f_client_is_g4f_reasoning(env: FakeDeepInfra) -> None:
    reply = client(env).chat.completions.create(messages=HELLO, model=REASONER)
    assert reply.choices[0].message.content == default_reply(REASONER, "hi")
    assert "".join(str(part) for part in reply.choices[0].message.reasoning) == (
        default_reasoning("hi")
    )


def test_images_generate_through_g4f_client_keeps_the_image(
    env: FakeDeepInfra, tmp_path: Path
) -> None:
    saved = client(env).images.generate(prompt="a red fox", model=FLUX)
    (image,) = saved.data
    assert image.url.startswith("/media/")
    (file,) = (tmp_path / "generated_media").iterdir()
    assert file.read_bytes().startswith(b"\x89PNG")
    as_url = client(env).images.generate(prompt="a red fox", model=FLUX, response_format="url")
    header, _, data = as_url.data[0].url.partition(",")
    assert header == "data:image/png;base64" and base64.b64decode(data).startswith(b"\x89PNG")
    assert [r.json for r in env.requests if r.method == "POST"] == [{"prompt": "a red fox"}] * 2


def test_an_image_model_through_chat_gives_an_image(env: FakeDeepInfra) -> None:
    reply = client(env).chat.completions.create(
        messages=[{"role": "user", "content": "a fox"}], model=FLUX
    )
    content = reply.choices[0].message.content
    assert isinstance(content, g4f_response.ImageResponse) and content.alt == "a fox"
    assert content.get_list()[0].startswith("data:image/png;base64,")
    assert env.requests[-1].path == f"/v1/inference/{FLUX}"


def test_errors_come_through_g4f_client_as_ours(env: FakeDeepInfra) -> None:
    env.valid_keys = {CANARY_KEY}
    wrong = g4f_client.Client(provider=DeepInfra, api_key="sk-wrong-key-123456")
    with pytest.raises(AuthenticationError, match="rejected the API key"):
        wrong.chat.completions.create(messages=HELLO, model=TEXT)


# ---- g4f's AsyncClient ----------------------------------------------------------------------


def test_plain_and_streamed_chat_and_images_through_g4f_async_client(env: FakeDeepInfra) -> None:
    async def run() -> tuple[str, str, str]:
        async_client = g4f_client.AsyncClient(provider=DeepInfra, api_key=CANARY_KEY)
        plain = await async_client.chat.completions.create(messages=HELLO, model=TEXT)
        parts = [
            chunk.choices[0].delta.content or ""
            async for chunk in async_client.chat.completions.stream(messages=HELLO, model=TEXT)
        ]
        image = await async_client.images.generate(prompt="x", model=FLUX, response_format="url")
        return plain.choices[0].message.content, "".join(parts), image.data[0].url

    plain, streamed, url = asyncio.run(run())
    assert plain == streamed == default_reply(TEXT, "hi")
    assert url.startswith("data:image/png;base64,")


# ---- called directly, g4f-style ------------------------------------------------------------


def collect(**kwargs: Any) -> list[Any]:
    async def run() -> list[Any]:
        return [item async for item in DeepInfra.create_async_generator(**kwargs)]

    return asyncio.run(run())


def test_direct_calls_yield_g4f_types_and_drop_unknown_keywords(env: FakeDeepInfra) -> None:
    items = collect(
        model=REASONER, messages=HELLO, base_url=f"{env.url}/v1/openai", provider=DeepInfra,
        media=None, conversation=None, web_search=False, top_p=0.9,
    )  # fmt: skip
    reasoning = [item for item in items if isinstance(item, g4f_response.Reasoning)]
    text = [item for item in items if isinstance(item, str)]
    assert "".join(str(item) for item in reasoning) == default_reasoning("hi")
    assert "".join(text) == default_reply(REASONER, "hi")
    usage, finish = items[-2:]
    assert isinstance(usage, g4f_response.Usage) and usage.get_dict()["prompt_tokens"] == 1
    assert isinstance(finish, g4f_response.FinishReason) and finish.reason == "stop"
    (body,) = chat_bodies(env)
    assert set(body) == {"model", "messages", "top_p", "stream", "stream_options"}


def test_an_image_model_through_the_chat_call_yields_a_g4f_image(env: FakeDeepInfra) -> None:
    messages = [{"role": "user", "content": "a lighthouse at dusk"}]
    (image,) = collect(model="stabilityai/sd3.5", messages=messages)
    assert isinstance(image, g4f_response.ImageResponse)
    assert image.alt == "a lighthouse at dusk"
    assert image.get_list()[0].startswith("data:image/png;base64,")
    assert env.requests[-1].json == {"prompt": "a lighthouse at dusk"}


def test_without_g4f_the_provider_yields_its_own_types(
    env: FakeDeepInfra, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "g4f.providers", None)  # as if g4f were not installed
    items = collect(model=REASONER, messages=HELLO)
    assert all(isinstance(item, (str, ReasoningDelta)) for item in items)
    assert "".join(i.text for i in items if isinstance(i, ReasoningDelta)) == default_reasoning(
        "hi"
    )
    (image,) = collect(model=FLUX, messages=HELLO)
    assert isinstance(image, ImageResult) and image.images[0].mime_type == "image/png"


def test_one_client_per_base_url_and_key(env: FakeDeepInfra) -> None:
    first = provider.sync_client(base_url=env.url)
    assert provider.sync_client(base_url=f"{env.url}/v1/openai", proxy=None) is first
    assert provider.sync_client(base_url=env.url, api_key="sk-another-key-1234") is not first

    async def run() -> bool:
        one = provider.async_client(api_key=CANARY_KEY)
        return provider.async_client() is one  # the environment's key is the same key

    assert asyncio.run(run())
    assert "sk-" not in repr(provider._sync_clients)  # keys are kept only in the clients


def test_create_async_image_sends_extra_data_and_honest_headers(env: FakeDeepInfra) -> None:
    image = asyncio.run(
        DeepInfra.create_async_image("a cat", FLUX, extra_data={"width": 512, "seed": 3})
    )
    assert image.seed == 3
    request = env.requests[-1]
    assert request.path == f"/v1/inference/{FLUX}"
    assert request.json == {"prompt": "a cat", "width": 512, "seed": 3}
    assert request.headers["user-agent"].startswith("deepinfra-magic/")
    assert not any(
        name.startswith("sec-") or name == "x-deepinfra-source" for name in request.headers
    )


def test_catalog_is_fetched_once_and_split_like_g4f(env: FakeDeepInfra) -> None:
    # A timeout no other test uses: a client of its own, with this test's disk cache.
    models = DeepInfra.get_models(base_url=f"{env.url}/v1/inference", timeout=61)
    images = DeepInfra.get_image_models(base_url=env.url, timeout=61)
    assert "meta-llama/Llama-3.3-70B-Instruct-Turbo" in models
    assert set(images) <= set(models)  # image models are usable with the chat call too
    assert FLUX in images and not any("embed" in name.lower() for name in models)
    assert env.count("/models/featured") == 1


def test_docstring_examples_work_as_written(env: FakeDeepInfra) -> None:
    failures, attempted = doctest.testmod(provider, optionflags=doctest.ELLIPSIS)
    assert attempted >= 2 and failures == 0
