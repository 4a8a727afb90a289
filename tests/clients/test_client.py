"""The sync and async clients against the fake DeepInfra server, over real HTTP; every
test that takes ``make_client`` runs once per client (tests/both_clients.py).

Chat (streamed and not), what goes on the wire, where the key and base URL come from,
images in every answer style, saving them, the model catalog and its caches, and keys.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from deepinfra_magic import __version__
from deepinfra_magic.catalog import CATALOG_CACHE, DiskCache, ModelCatalog
from deepinfra_magic.client import AsyncDeepInfraClient, DeepInfraClient
from deepinfra_magic.errors import (
    AuthenticationError,
    MissingAPIKeyError,
    ModelNotFoundError,
    ServerError,
)
from deepinfra_magic.images import ImageArrived, ImageResult
from deepinfra_magic.types import ChatResult, ContentDelta, ReasoningDelta, Usage
from tests.fake_deepinfra import (
    CANARY_KEY,
    CHAT_PATH,
    DEFAULT_CATALOG,
    FEATURED_PATH,
    IMAGE_STYLE_MIME,
    INFERENCE_PREFIX,
    TINY_JPEG,
    TINY_WEBP,
    FakeDeepInfra,
    default_reasoning,
    default_reply,
    render_image,
    tokenize,
    usage_block,
)

pytestmark = pytest.mark.usefixtures("library_env")

MakeClient = Callable[..., DeepInfraClient]
DEFAULT_MODEL = "meta-llama/Llama-3.3-70B-Instruct-Turbo"
SMALL_MODEL = "meta-llama/Meta-Llama-3.1-8B-Instruct"
REASONER = "deepseek-ai/DeepSeek-R1"
IMAGE_MODEL = "black-forest-labs/FLUX-1-schnell"
IMAGE_PATH = INFERENCE_PREFIX + IMAGE_MODEL
PROMPT = "Hello there"
MESSAGES = [{"role": "user", "content": PROMPT}]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CLOSED_URL = "http://127.0.0.1:9"  # the discard port: nothing listens there

TEXT_MODELS = {m.name for m in DEFAULT_CATALOG if m.is_text}
IMAGE_MODELS = {m.name for m in DEFAULT_CATALOG if m.is_image}


def expected_usage(
    server: FakeDeepInfra, model: str, prompt: str, reasoning: str = "", *, priced: bool = True
) -> Usage:
    """The usage the fake reports; a stream reports no cost (``priced=False``): the client
    prices it from the catalog once that is loaded."""
    completion = len(tokenize(default_reply(model, prompt))) + len(tokenize(reasoning))
    block = usage_block(math.ceil(len(prompt) / 4), completion, server.config.model(model))
    usage = Usage.from_json(block)
    return usage if priced else dataclasses.replace(usage, estimated_cost=None)


def chat_requests(server: FakeDeepInfra) -> list[dict[str, Any]]:
    return [r.json for r in server.requests if r.path == CHAT_PATH]


def png_size(data: bytes) -> tuple[int, int]:
    assert data.startswith(PNG_MAGIC)
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


# ---- chat ---------------------------------------------------------------------------------------


def test_streamed_chat_yields_deltas_then_the_result(
    make_client: MakeClient, fake_server: FakeDeepInfra
) -> None:
    fake_server.token_delay = 0.001
    stream = make_client().chat(MESSAGES)
    events = list(stream)

    *deltas, result = events
    assert deltas and all(isinstance(event, ContentDelta) for event in deltas)
    assert isinstance(result, ChatResult) and result is stream.result
    expected = default_reply(DEFAULT_MODEL, PROMPT)
    assert "".join(d.text for d in deltas) == expected == result.text == stream.text
    assert [d.text for d in deltas] == tokenize(expected)  # one delta per streamed token
    assert result.model == DEFAULT_MODEL and result.finish_reason == "stop"
    assert result.usage == expected_usage(fake_server, DEFAULT_MODEL, PROMPT, priced=False)
    assert result.complete and not result.replayed
    assert result.time_to_first_token is not None and result.duration is not None
    assert 0 < result.time_to_first_token <= result.duration


def test_reasoning_is_streamed_apart_and_before_the_answer(make_client: MakeClient) -> None:
    events = list(make_client().chat(MESSAGES, REASONER))
    kinds = [type(event) for event in events]
    first_content = kinds.index(ContentDelta)
    assert set(kinds[:first_content]) == {ReasoningDelta}
    assert set(kinds[first_content:-1]) == {ContentDelta} and kinds[-1] is ChatResult
    result = events[-1]
    assert isinstance(result, ChatResult)
    assert result.reasoning == default_reasoning(PROMPT)
    assert result.text == default_reply(REASONER, PROMPT)


def test_max_tokens_cuts_the_reply_with_finish_reason_length(make_client: MakeClient) -> None:
    stream = make_client().chat(MESSAGES, max_tokens=3)
    *_, result = stream
    assert isinstance(result, ChatResult)
    assert result.text == "".join(tokenize(default_reply(DEFAULT_MODEL, PROMPT))[:3])
    assert result.finish_reason == "length" and result.complete


def test_chat_without_streaming_returns_the_result(
    make_client: MakeClient, fake_server: FakeDeepInfra
) -> None:
    result = make_client().chat(MESSAGES, REASONER, stream=False)
    assert isinstance(result, ChatResult)
    assert result.text == default_reply(REASONER, PROMPT)
    assert result.reasoning == default_reasoning(PROMPT)
    assert result.finish_reason == "stop"
    assert result.usage == expected_usage(fake_server, REASONER, PROMPT, default_reasoning(PROMPT))
    [body] = chat_requests(fake_server)
    assert body["stream"] is False and "stream_options" not in body


def test_parameters_reach_the_server_unchanged(
    make_client: MakeClient, fake_server: FakeDeepInfra
) -> None:
    extra = {
        "top_p": 0.9,
        "stop": ["\n\n"],
        "seed": 7,
        "response_format": {"type": "json_object"},
    }
    list(make_client().chat(MESSAGES, SMALL_MODEL, temperature=0.1, max_tokens=50, **extra))
    [body] = chat_requests(fake_server)
    assert body == {
        "model": SMALL_MODEL,
        "messages": MESSAGES,
        "temperature": 0.1,
        "max_tokens": 50,
        **extra,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def test_requests_carry_an_honest_user_agent_and_only_the_bearer_key(
    make_client: MakeClient, fake_server: FakeDeepInfra
) -> None:
    client = make_client()
    list(client.chat(MESSAGES))
    client.chat(MESSAGES, stream=False)
    client.generate_image("a lighthouse")
    allowed = {
        "host",
        "accept",
        "accept-encoding",
        "connection",
        "user-agent",
        "authorization",
        "content-length",
        "content-type",
    }
    for record in fake_server.requests:
        headers = record.headers
        assert set(headers) <= allowed, f"unexpected headers {set(headers) - allowed}"
        assert headers["user-agent"].startswith(f"deepinfra-magic/{__version__} ")
        assert headers["authorization"] == f"Bearer {CANARY_KEY}"
    stream_request = fake_server.requests[0]
    assert stream_request.headers["accept"] == "text/event-stream"


# ---- where the base URL and key come from ---------------------------------------------------


def test_key_and_base_url_from_the_environment(
    library_env: Path, fake_server: FakeDeepInfra, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The OpenAI-compatible root that people paste is normalised to the API root.
    monkeypatch.setenv("DEEPINFRA_BASE_URL", fake_server.url + "/v1/openai/")
    monkeypatch.setenv("DEEPINFRA_API_TOKEN", "token-key")
    with DeepInfraClient() as client:
        assert client.base_url == fake_server.url
        assert client.chat(MESSAGES, stream=False).text
    monkeypatch.setenv("DEEPINFRA_API_KEY", "api-key")  # beats the token
    with DeepInfraClient() as client:
        client.chat(MESSAGES, stream=False)
    with DeepInfraClient("argument-key") as client:  # the argument beats both
        client.chat(MESSAGES, stream=False)
    assert [r.headers["authorization"] for r in fake_server.requests] == [
        "Bearer token-key",
        "Bearer api-key",
        "Bearer argument-key",
    ]
    assert [r.path for r in fake_server.requests] == [CHAT_PATH] * 3


def test_base_url_argument_beats_the_environment(
    library_env: Path, fake_server: FakeDeepInfra, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEEPINFRA_BASE_URL", CLOSED_URL)
    with DeepInfraClient(CANARY_KEY, base_url=fake_server.api_url) as client:
        assert client.chat(MESSAGES, stream=False).text
    assert fake_server.count(CHAT_PATH) == 1


@pytest.mark.parametrize(
    "call",
    [
        lambda c: list(c.chat(MESSAGES)),
        lambda c: c.chat(MESSAGES, stream=False),
        lambda c: c.generate_image("a cat"),
        lambda c: c.validate_key(),
    ],
    ids=["stream", "no-stream", "image", "validate_key"],
)
def test_missing_key_is_reported_before_any_request(
    make_client: MakeClient, fake_server: FakeDeepInfra, call: Callable[[DeepInfraClient], Any]
) -> None:
    client = make_client(api_key=None)
    assert not client.has_key
    with pytest.raises(MissingAPIKeyError) as caught:
        call(client)
    message = str(caught.value)
    assert "\n" not in message
    for name in ("DEEPINFRA_API_KEY", "DEEPINFRA_API_TOKEN", "%deepinfra_login"):
        assert name in message
    assert fake_server.count("*") == 0


def test_the_public_catalog_needs_no_key(make_client: MakeClient) -> None:
    assert make_client(api_key=None).models().text_models


# ---- images -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("style", "mime"), list(IMAGE_STYLE_MIME.items()))
def test_image_answer_styles(
    make_client: MakeClient, fake_server: FakeDeepInfra, style: Any, mime: str
) -> None:
    fake_server.image_style = style
    result = make_client().generate_image("a red fox", width=256, height=128, seed=42)
    [image] = result.images
    assert image.mime_type == mime and image.seed == 42 and image.prompt == "a red fox"
    if mime == "image/png":
        assert image.data == render_image("a red fox", 42, 64, 32)  # scaled to fit 64 px
        assert image.size == (64, 32)
    else:
        assert image.data == {"image/jpeg": TINY_JPEG, "image/webp": TINY_WEBP}[mime]
        assert image.size == (8, 8)
    assert result.model == IMAGE_MODEL and result.cost is not None and result.cost > 0
    assert [r.json for r in fake_server.requests if r.path == IMAGE_PATH] == [
        {"prompt": "a red fox", "width": 256, "height": 128, "seed": 42}
    ]


def test_hosted_images_are_fetched_without_our_key(
    make_client: MakeClient, fake_server: FakeDeepInfra
) -> None:
    fake_server.image_style = "url"
    result = make_client().generate_image("a boat", n=2, seed=1)
    files = [r for r in fake_server.requests if r.path.startswith("/files/")]
    assert len(files) == 2
    for record in files:
        assert "authorization" not in record.headers
    for record in fake_server.requests:
        if record.path == IMAGE_PATH:
            assert record.headers["authorization"] == f"Bearer {CANARY_KEY}"
    assert [image.data for image in result.images] == [
        render_image("a boat", seed, 64, 64) for seed in (1, 2)
    ]
    assert sorted(image.url or "" for image in result.images) == sorted(
        fake_server.url + record.path for record in files
    )


def test_concurrent_images_arrive_as_they_finish_and_merge_in_request_order(
    make_client: MakeClient, fake_server: FakeDeepInfra
) -> None:
    # The first request is the slowest, the last the quickest.
    fake_server.image_delay_by_seed = {10: 0.4, 11: 0.2, 12: 0.0}
    client = make_client()
    events = list(client.iter_images("three birds", n=3, seed=10))
    assert all(isinstance(event, ImageArrived) for event in events)
    arrived = [event for event in events if isinstance(event, ImageArrived)]
    assert [event.result.seed for event in arrived] == [12, 11, 10]
    assert [(event.done, event.total) for event in arrived] == [(1, 3), (2, 3), (3, 3)]
    assert sorted(r.json["seed"] for r in fake_server.requests) == [10, 11, 12]

    merged = client.generate_image("three birds", n=3, seed=10)
    assert [image.seed for image in merged.images] == [10, 11, 12]
    assert [image.data for image in merged.images] == [
        render_image("three birds", seed, 64, 64) for seed in (10, 11, 12)
    ]
    # The merge of parts collected in arrival order (what a notebook shows) is ordered too.
    assert [i.seed for i in ImageResult.merge(e.result for e in arrived)] == [10, 11, 12]


def test_saving_images_names_files_and_overwrites_nothing(
    make_client: MakeClient, fake_server: FakeDeepInfra, tmp_path: Path
) -> None:
    client = make_client()
    one = client.generate_image("A Red Fox, at dawn!", seed=3)
    [to_file] = one.save(tmp_path / "fox.png")
    assert to_file == tmp_path / "fox.png" and to_file.read_bytes() == one.images[0].data
    [no_suffix] = one.save(tmp_path / "fox2")
    assert no_suffix == tmp_path / "fox2.png"

    folder = tmp_path / "out"
    folder.mkdir()
    [first] = one.save(folder)
    [second] = one.save(folder)
    assert first == folder / "a-red-fox-at-dawn-3.png"
    assert second == folder / "a-red-fox-at-dawn-3-2.png"
    assert first.read_bytes() == second.read_bytes() == one.images[0].data

    fake_server.image_style = "jpeg"
    several = client.generate_image("birds", n=3, seed=5)
    paths = several.save(tmp_path / "new" / "birds")
    assert [p.name for p in paths] == ["birds-5.jpg", "birds-6.jpg", "birds-7.jpg"]
    assert all(p.parent == tmp_path / "new" / "birds" for p in paths)


# ---- the model catalog --------------------------------------------------------------------------


def test_catalog_splits_text_and_image_models(make_client: MakeClient) -> None:
    catalog = make_client().models()
    assert catalog.source == "network" and catalog.warning is None
    assert {m.name for m in catalog.text_models} == TEXT_MODELS
    assert {m.name for m in catalog.image_models} == IMAGE_MODELS
    listed = {m.name for m in catalog.filter()}
    assert "BAAI/bge-large-en-v1.5" not in listed and "openai/whisper-large-v3" not in listed
    llama = catalog.get(DEFAULT_MODEL)
    assert llama is not None and llama.context_length == 131072
    assert llama.price_text() == "$0.23 in / $0.40 out per 1M tok"
    assert catalog.is_image_model(IMAGE_MODEL) and not catalog.is_image_model(DEFAULT_MODEL)


def test_many_threads_share_one_catalog_request(
    make_sync_client: MakeClient, fake_server: FakeDeepInfra
) -> None:
    # A slow answer, so that every thread asks while the one request is in flight.
    fake_server.add_fault(FEATURED_PATH, first_byte_delay=0.2)
    clients = [make_sync_client() for _ in range(10)]
    barrier = threading.Barrier(len(clients))
    results: list[ModelCatalog] = []
    errors: list[BaseException] = []

    def ask(client: DeepInfraClient) -> None:
        try:
            barrier.wait()
            results.append(client.models())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=ask, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(results) == 10 and all(result is results[0] for result in results)
    assert fake_server.count(FEATURED_PATH) == 1


def test_refresh_fetches_again(make_client: MakeClient, fake_server: FakeDeepInfra) -> None:
    client = make_client()
    first = client.models()
    assert client.models() is first
    fresh = client.models(refresh=True)
    assert fresh is not first and client.models() is fresh
    assert fake_server.count(FEATURED_PATH) == 2


def test_catalog_is_cached_per_base_url(
    make_client: MakeClient, fake_server: FakeDeepInfra
) -> None:
    make_client().models()
    make_client(base_url=fake_server.api_url + "/").models()  # the same API root
    assert fake_server.count(FEATURED_PATH) == 1
    other_root = fake_server.api_url.replace("127.0.0.1", "localhost")
    make_client(base_url=other_root).models()
    assert fake_server.count(FEATURED_PATH) == 2


def test_disk_cache_spares_the_request_until_its_ttl(
    make_client: MakeClient, fake_server: FakeDeepInfra, library_env: Path
) -> None:
    first = make_client().models()
    assert list(library_env.rglob("catalog-*.json")), "the catalog was written to the cache"
    CATALOG_CACHE.clear()  # a new kernel

    cached = make_client().models()
    assert cached.source == "disk cache" and cached.warning is None
    assert [m.name for m in cached.models] == [m.name for m in first.models]
    assert fake_server.count(FEATURED_PATH) == 1

    CATALOG_CACHE.clear()
    refetched = make_client(catalog_ttl=0).models()  # the copy is too old
    assert refetched.source == "network"
    assert fake_server.count(FEATURED_PATH) == 2


def test_stale_disk_cache_stands_in_when_the_network_fails(
    make_client: MakeClient, fake_server: FakeDeepInfra
) -> None:
    make_client().models()
    CATALOG_CACHE.clear()
    fake_server.add_fault(FEATURED_PATH, times=None, status=503)
    catalog = make_client(catalog_ttl=0, max_retries=0).models()
    assert catalog.source == "stale cache"
    assert {m.name for m in catalog.text_models} == TEXT_MODELS
    assert catalog.warning is not None and "\n" not in catalog.warning
    assert "Could not refresh the model list" in catalog.warning
    assert "503" in catalog.warning and "cached 0 s ago" in catalog.warning


def test_stale_disk_cache_stands_in_when_the_api_is_unreachable(
    make_client: MakeClient, library_env: Path
) -> None:
    # A copy left by an earlier session, three days ago, for an API that is now unreachable.
    three_days_ago = time.time() - 3 * 86400
    DiskCache().save(CLOSED_URL, [m.to_json() for m in DEFAULT_CATALOG], three_days_ago)
    catalog = make_client(base_url=CLOSED_URL + "/v1/openai", max_retries=0).models()
    assert catalog.source == "stale cache" and catalog.fetched_at == three_days_ago
    assert {m.name for m in catalog.image_models} == IMAGE_MODELS
    assert catalog.warning is not None
    assert "Could not connect to http://127.0.0.1:9" in catalog.warning
    assert catalog.warning.endswith("using the copy cached 3 days ago.")


def test_catalog_failure_without_any_copy_is_raised(
    make_client: MakeClient, fake_server: FakeDeepInfra
) -> None:
    fake_server.add_fault(FEATURED_PATH, status=503)
    with pytest.raises(ServerError, match="503"):
        make_client(max_retries=0).models()


def test_catalog_without_disk_cache_writes_nothing(
    make_client: MakeClient, library_env: Path
) -> None:
    make_client(catalog_disk_cache=False).models()
    assert not library_env.exists()


# ---- unknown models and keys --------------------------------------------------------------------


@pytest.mark.parametrize("stream", [True, False])
def test_unknown_chat_model_suggests_close_matches(make_client: MakeClient, stream: bool) -> None:
    client = make_client()
    with pytest.raises(ModelNotFoundError) as caught:
        if stream:
            list(client.chat(MESSAGES, "meta-llama/Llama-3.3-70B-Instruct"))
        else:
            client.chat(MESSAGES, "meta-llama/Llama-3.3-70B-Instruct", stream=False)
    error = caught.value
    assert error.close_matches[0] == DEFAULT_MODEL
    assert error.model == "meta-llama/Llama-3.3-70B-Instruct"
    message = str(error)
    assert "\n" not in message
    assert f"Did you mean: {DEFAULT_MODEL}" in message and "%deepinfra_models" in message


def test_unknown_image_model_suggests_close_matches(make_client: MakeClient) -> None:
    with pytest.raises(ModelNotFoundError) as caught:
        make_client().generate_image("a cat", "black-forest-labs/FLUX-1-schnel")
    assert caught.value.close_matches[0] == IMAGE_MODEL
    assert f"Did you mean: {IMAGE_MODEL}" in str(caught.value)


def test_validate_key(make_client: MakeClient, fake_server: FakeDeepInfra) -> None:
    fake_server.valid_keys = {CANARY_KEY}
    assert make_client().validate_key() is True
    with pytest.raises(AuthenticationError, match="rejected the API key"):
        make_client(api_key="sk-wrong-key-123456").validate_key()
    fake_server.add_fault("/v1/me/rate_limit", status=404)
    assert make_client().validate_key() is None  # this server cannot tell
    # The check asks an endpoint that requires the key, never /v1/openai/models, which
    # answers whatever the key (see tests/fake_deepinfra/).
    assert {r.path for r in fake_server.requests} == {"/v1/me/rate_limit"}


def test_results_render_their_text(make_client: MakeClient) -> None:
    result = make_client().chat(MESSAGES, stream=False)
    assert str(result) == result.text
    assert json.loads(json.dumps(result.metadata()))["model"] == DEFAULT_MODEL


def test_with_options_keeps_the_key_and_changes_only_what_is_asked(
    make_client: MakeClient, fake_server: FakeDeepInfra
) -> None:
    client = make_client(max_retries=0)
    copy = client.with_options(timeout=5.0)
    try:
        assert copy.timeouts.read == 5.0 and copy.retry.max_retries == 0
        assert copy.has_key and copy.validate_key() is True
        assert fake_server.requests[-1].headers["authorization"] == f"Bearer {CANARY_KEY}"
        assert not client.with_options(api_key=None).has_key
    finally:
        copy.close()


def test_concurrent_async_clients_share_one_catalog_request(fake_server: FakeDeepInfra) -> None:
    async def both() -> list[ModelCatalog]:
        clients = [AsyncDeepInfraClient(CANARY_KEY, base_url=fake_server.api_url) for _ in range(3)]
        try:
            return await asyncio.gather(*(client.models() for client in clients))
        finally:
            await asyncio.gather(*(client.aclose() for client in clients))

    fake_server.configure(first_byte_delay=0.2)  # all three ask while the first is waiting
    catalogs = asyncio.run(both())
    assert catalogs[0] is catalogs[1] is catalogs[2]
    assert fake_server.count(FEATURED_PATH) == 1
