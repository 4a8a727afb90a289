"""The g4f-compatible provider: its docstring examples run as written, and an image
model passed to the chat call produces an image, as gpt4free's DeepInfra does."""

from __future__ import annotations

import asyncio
import doctest
from collections.abc import Iterator
from pathlib import Path

import pytest

from deepinfra_magic import provider
from deepinfra_magic.images import ImageResult
from deepinfra_magic.provider import DeepInfra
from tests.fake_server import CANARY_KEY, FakeDeepInfra


@pytest.fixture
def env(
    fake_server: FakeDeepInfra, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[FakeDeepInfra]:
    """The provider pointed at the fake server through the environment, with a fresh cache."""
    monkeypatch.setenv("DEEPINFRA_BASE_URL", fake_server.api_url)
    monkeypatch.setenv("DEEPINFRA_API_KEY", CANARY_KEY)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(DeepInfra, "models", [])
    monkeypatch.setattr(DeepInfra, "image_models", [])
    from deepinfra_magic.catalog import CATALOG_CACHE

    CATALOG_CACHE.clear()
    yield fake_server
    CATALOG_CACHE.clear()


def test_docstring_examples_work_as_written(env: FakeDeepInfra) -> None:
    failures, attempted = doctest.testmod(provider, optionflags=doctest.ELLIPSIS)
    assert attempted >= 6
    assert failures == 0


def test_catalog_is_fetched_once_and_split_like_g4f(env: FakeDeepInfra) -> None:
    models = DeepInfra.get_models()
    images = DeepInfra.get_image_models()
    assert "meta-llama/Llama-3.3-70B-Instruct-Turbo" in models
    assert set(images) <= set(models)  # image models are usable with the chat call too
    assert "black-forest-labs/FLUX-1-schnell" in images
    assert not any("embed" in name.lower() for name in models)
    DeepInfra.get_models()
    assert env.count("/models/featured") == 1


def test_image_model_in_chat_call_yields_one_image(env: FakeDeepInfra) -> None:
    async def run() -> list[object]:
        messages = [{"role": "user", "content": "a lighthouse at dusk"}]
        return [
            item async for item in DeepInfra.create_async_generator("stabilityai/sd3.5", messages)
        ]

    items = asyncio.run(run())
    assert len(items) == 1
    image = items[0]
    assert isinstance(image, ImageResult)
    assert image.prompt == "a lighthouse at dusk"
    assert image.images[0].data.startswith(b"\x89PNG")
    assert env.requests[-1].json == {"prompt": "a lighthouse at dusk"}


def test_create_async_image_sends_extra_data_and_honest_headers(env: FakeDeepInfra) -> None:
    image = asyncio.run(
        DeepInfra.create_async_image(
            "a cat", "black-forest-labs/FLUX-1-schnell", extra_data={"width": 512, "seed": 3}
        )
    )
    assert image.seed == 3
    request = env.requests[-1]
    assert request.path == "/v1/inference/black-forest-labs/FLUX-1-schnell"
    assert request.json == {"prompt": "a cat", "width": 512, "seed": 3}
    assert request.headers["user-agent"].startswith("deepinfra-magic/")
    assert not any(
        name.startswith("sec-") or name == "x-deepinfra-source" for name in request.headers
    )


def test_text_chunks_and_parameters_pass_through(env: FakeDeepInfra) -> None:
    env.script_reply("Hello there, friend.")

    async def run() -> str:
        messages = [{"role": "user", "content": "hi"}]
        parts = [
            chunk
            async for chunk in DeepInfra.create_async_generator(
                "meta-llama/Meta-Llama-3.1-8B-Instruct", messages, temperature=0.2, top_p=0.5
            )
        ]
        assert all(isinstance(part, str) for part in parts)
        return "".join(str(part) for part in parts)

    assert asyncio.run(run()) == "Hello there, friend."
    body = env.requests[-1].json
    assert body["temperature"] == 0.2 and body["top_p"] == 0.5 and body["max_tokens"] == 1028
