"""Any OpenAI-compatible server: the flavour decision, its routes, errors that name the
server, context overflow, key redaction for short keys, and model choice.

The real llama.cpp server is in tests/llama; here the fake DeepInfra server stands in for a
server that lacks routes, and the sans-I/O parts are tested directly.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable

import httpx
import pytest

from deepinfra_magic import DeepInfraClient
from deepinfra_magic._protocol import ChatStreamDecoder, parse_image_answer
from deepinfra_magic._routes import Routes, decide_flavour, fit_max_tokens
from deepinfra_magic._status import error_from_response
from deepinfra_magic._text import redact
from deepinfra_magic.errors import (
    AuthenticationError,
    ContextLengthError,
    InvalidArgumentError,
    ModelNotFoundError,
    RouteNotFoundError,
    ServerError,
)
from tests.fake_deepinfra import (
    CANARY_KEY,
    CHAT_PATH,
    DEFAULT_CATALOG,
    FEATURED_PATH,
    TEXT_GENERATION,
    CatalogModel,
    FakeDeepInfra,
    make_png,
)

MakeClient = Callable[..., DeepInfraClient]
MESSAGES = [{"role": "user", "content": "Hello"}]


@pytest.mark.parametrize(
    ("url", "flavour", "root", "chat"),
    [
        ("https://api.deepinfra.com", "deepinfra", "https://api.deepinfra.com", CHAT_PATH),
        (
            "https://api.deepinfra.com/v1/openai",
            "deepinfra",
            "https://api.deepinfra.com",
            CHAT_PATH,
        ),
        ("https://api.deepinfra.com/v1", "deepinfra", "https://api.deepinfra.com", CHAT_PATH),
        ("http://proxy.corp/v1/openai", "deepinfra", "http://proxy.corp", CHAT_PATH),
        ("http://127.0.0.1:8000/v1", "generic", "http://127.0.0.1:8000/v1", "/chat/completions"),
        ("http://localhost:11434/v1", "generic", "http://localhost:11434/v1", "/chat/completions"),
        ("http://litellm.corp:4000", "generic", "http://litellm.corp:4000", "/chat/completions"),
    ],
)
def test_the_flavour_and_routes_follow_the_base_url(
    url: str, flavour: str, root: str, chat: str
) -> None:
    routes = Routes.for_url(url)
    assert (routes.flavour, routes.root, routes.chat) == (flavour, root, chat)


def test_a_setting_forces_the_flavour(monkeypatch: pytest.MonkeyPatch) -> None:
    assert decide_flavour("http://127.0.0.1:8000/v1", "deepinfra") == "deepinfra"
    monkeypatch.setenv("DEEPINFRA_FLAVOUR", "generic")
    with DeepInfraClient(base_url="https://api.deepinfra.com/v1/openai") as client:
        assert client.routes.generic and client.base_url == "https://api.deepinfra.com/v1/openai"
        assert "OpenAI-compatible" in repr(client)
    monkeypatch.setenv("DEEPINFRA_FLAVOUR", "vllm")
    with pytest.raises(Exception, match="DEEPINFRA_FLAVOUR must be one of auto, deepinfra"):
        DeepInfraClient(base_url="http://127.0.0.1:8000/v1")


def test_a_generic_server_needs_no_key_and_gets_none(
    make_client: MakeClient, fake_server: FakeDeepInfra
) -> None:
    client = make_client(api_key=None, base_url=fake_server.url + "/v1", max_retries=0)
    with pytest.raises(RouteNotFoundError):
        client.chat(MESSAGES, "some-model", stream=False)
    (request,) = fake_server.requests
    assert request.path == "/v1/chat/completions" and "authorization" not in request.headers


def test_a_missing_route_names_the_url_and_not_deepinfra(
    make_client: MakeClient, fake_server: FakeDeepInfra
) -> None:
    client = make_client(base_url=fake_server.url + "/v1", max_retries=0)
    with pytest.raises(RouteNotFoundError) as caught:
        client.chat(MESSAGES, "tiny", stream=False)
    message = caught.value.message
    assert f"{fake_server.url}/v1/chat/completions does not exist on the server at" in message
    assert "DeepInfra has" not in message and "Model 'tiny' was not found" not in message
    assert "http://127.0.0.1:8000/v1" in message  # what a right base URL looks like


def test_a_failed_model_list_is_asked_for_once_per_session(
    make_client: MakeClient, fake_server: FakeDeepInfra
) -> None:
    client = make_client(base_url=fake_server.url + "/v1", max_retries=0)
    for _ in range(3):
        with pytest.raises(RouteNotFoundError, match="/v1/models does not exist"):
            client.models()
    assert [r.path for r in fake_server.requests] == ["/v1/models"]


def test_no_model_on_a_server_without_a_list_asks_for_one(
    make_client: MakeClient, fake_server: FakeDeepInfra
) -> None:
    client = make_client(base_url=fake_server.url + "/v1", max_retries=0)
    with pytest.raises(InvalidArgumentError) as caught:
        client.chat(MESSAGES)
    assert "does not have the default 'meta-llama/Llama-3.3-70B-Instruct-Turbo'" in str(
        caught.value
    )
    assert "name one with -m/--model" in str(caught.value)
    assert [r.path for r in fake_server.requests] == ["/v1/models"]  # no chat was sent


def test_a_refused_model_list_is_named_as_such_and_asked_again_with_a_new_key(
    make_client: MakeClient, fake_server: FakeDeepInfra
) -> None:
    # A server started with a key (vLLM's --api-key, LiteLLM's proxy) refuses its list
    # to a client without one; the user then gets a key.
    fake_server.configure(models_need_key=True, valid_keys={CANARY_KEY})
    options = {"base_url": fake_server.api_url, "flavour": "generic", "max_retries": 0}
    keyless = make_client(api_key=None, **options)
    for _ in range(2):
        with pytest.raises(AuthenticationError, match=r"refused the key \(403"):
            keyless.models()
    with pytest.raises(AuthenticationError, match=r"refused the key \(403"):
        keyless.chat(MESSAGES, stream=False)  # no model named: the refusal says why
    assert [r.path for r in fake_server.requests] == ["/v1/openai/models"]  # asked once

    keyed = make_client(**options)  # the same server, now with a key: a new try
    names = [model.name for model in keyed.models().models]
    assert names and [r.path for r in fake_server.requests][1:] == ["/v1/openai/models"]
    assert keyed.chat(MESSAGES, stream=False).model == names[0]
    assert fake_server.requests[-1].headers["authorization"] == f"Bearer {CANARY_KEY}"


def test_deepinfra_still_finds_missing_models_with_close_matches(make_client: MakeClient) -> None:
    with pytest.raises(ModelNotFoundError, match="Did you mean"):
        make_client().chat(MESSAGES, "meta-llama/Llama-3.3-70B", stream=False)


def test_a_litellm_unknown_model_400_gets_close_matches(
    make_client: MakeClient, fake_server: FakeDeepInfra
) -> None:
    # LiteLLM's proxy answers a model it does not route so (BerriAI/litellm#3142).
    refusal = "400: {'error': 'Invalid model name passed in model=meta-llama/Llama-3.3-70B'}"
    fake_server.add_fault(path=CHAT_PATH, status=400, body_style="error_obj", message=refusal)
    with pytest.raises(ModelNotFoundError) as caught:
        make_client(max_retries=0).chat(MESSAGES, "meta-llama/Llama-3.3-70B", stream=False)
    message = caught.value.message
    assert message.startswith("Model 'meta-llama/Llama-3.3-70B' was not found (400: ")
    assert "Did you mean: meta-llama/Llama-3.3-70B-Instruct-Turbo" in message
    assert "Fix that parameter" not in message


def test_max_tokens_is_capped_by_a_known_context_length(
    make_client: MakeClient, fake_server: FakeDeepInfra
) -> None:
    small = CatalogModel("small/ctx-100", TEXT_GENERATION, "A small context.", 100)
    fake_server.configure(catalog=(*DEFAULT_CATALOG, small))
    client = make_client()
    client.models()
    client.chat(MESSAGES * 10, small.name, stream=False, max_tokens=4096)
    client.chat(MESSAGES, DEFAULT_CATALOG[0].name, stream=False, max_tokens=4096)
    sent = [r.json["max_tokens"] for r in fake_server.requests if r.path == CHAT_PATH]
    # Ten short messages are about 50 tokens by the estimate; the big model keeps its 4096.
    assert sent == [50, 4096]


def test_fit_max_tokens_leaves_an_overfull_prompt_to_the_server() -> None:
    assert fit_max_tokens(1000, None, MESSAGES) == 1000
    assert fit_max_tokens(1000, 8, [{"role": "user", "content": "x" * 400}]) == 8


def test_a_vllm_context_overflow_is_one_line_with_remedies_and_not_retried(
    make_client: MakeClient, fake_server: FakeDeepInfra
) -> None:
    # vLLM's wording (reference: openai-compatible-servers.md, "What it sends").
    detail = (
        "This model's maximum context length is 2048 tokens. However, you requested 4096 "
        "tokens (3000 in the messages, 1096 in the completion)."
    )
    fake_server.add_fault(status=400, message=detail, times=None)
    with pytest.raises(ContextLengthError) as caught:
        make_client().chat(MESSAGES, DEFAULT_CATALOG[0].name, stream=False)
    message = caught.value.message
    assert "\n" not in message and "maximum context length is 2048" in message
    assert "--new" in message and "--max-tokens" in message and "max_history" in message
    assert "run the cell again" not in message.lower()
    assert fake_server.count(CHAT_PATH) == 1


def test_an_empty_unfinished_stream_from_another_server_is_a_context_overflow() -> None:
    # llama.cpp: a prompt over n_ctx gets a 200 stream with no text and no finish_reason.
    decoder = ChatStreamDecoder("tiny", empty_is_overflow=True)
    assert decoder.feed(b'data: {"model": "tiny", "choices": [{"delta": {"role": "x"}}]}\n\n') == []
    with pytest.raises(ContextLengthError, match="longer than 'tiny' can take"):
        decoder.close()
    # On DeepInfra the same ending stays a broken stream.
    with pytest.raises(Exception, match="ended before the reply finished"):
        ChatStreamDecoder("m").close()


def test_errors_from_another_server_do_not_send_the_user_to_deepinfra() -> None:
    server = "the server at http://127.0.0.1:8000/v1"
    body = b'{"detail": "top_p: Input should be less than or equal to 1"}'
    error = error_from_response(500, body, model="tiny", attempts=1, server=server, url="u")
    assert isinstance(error, ServerError)
    assert error.message.startswith("The server at http://127.0.0.1:8000/v1 failed (500: top_p")
    assert "DeepInfra" not in error.message and "pick another model" not in error.message
    missing = error_from_response(
        404, b'{"message": "The model `x` does not exist."}', model="x", server=server, url="u"
    )
    assert isinstance(missing, ModelNotFoundError) and "DeepInfra" not in missing.message
    refused = error_from_response(401, b"", server=server, url="u")
    assert "deepinfra.com" not in refused.message


@pytest.mark.parametrize("key", ["x", "EMPTY", "e", "sk-no-key-required"])
def test_short_placeholder_keys_do_not_mangle_error_text(key: str) -> None:
    text = "Input should be less than or equal to 1 (EMPTY value, type=less_than_equal)"
    assert redact(text, key) == text


def test_a_real_key_never_appears(make_client: MakeClient, fake_server: FakeDeepInfra) -> None:
    assert CANARY_KEY not in redact(f"echo: {CANARY_KEY} and {CANARY_KEY[:-1]}x", CANARY_KEY)
    fake_server.add_fault(path=FEATURED_PATH, status=500, message=f"saw {CANARY_KEY}", times=None)
    with pytest.raises(ServerError) as caught:
        make_client(max_retries=0).models()
    assert CANARY_KEY not in caught.value.message and "[redacted]" in caught.value.message


def test_images_on_another_server_use_the_openai_shape_with_base64() -> None:
    routes = Routes.for_url("http://127.0.0.1:8000/v1")
    request = routes.image_request("a fox", "sdxl", {"width": 512, "height": 256, "seed": 3})
    assert request.path == "/images/generations" and not request.needs_key
    assert request.json == {
        "model": "sdxl", "prompt": "a fox", "size": "512x256", "seed": 3,
    }  # fmt: skip
    png = make_png(8, 8, (200, 10, 10))
    body = json.dumps({"created": 1, "data": [{"b64_json": base64.b64encode(png).decode()}]})
    answer = parse_image_answer(json.loads(body), body.encode())
    assert [(ref.data, ref.mime_type) for ref in answer.refs] == [(png, "image/png")]


def _answers_as(model: str) -> httpx.MockTransport:
    """httpx's own mock transport: an OpenAI-style server whose replies name ``model``
    (OpenAI and some proxies answer with the model that actually ran)."""

    def handle(request: httpx.Request) -> httpx.Response:
        if json.loads(request.content).get("stream"):
            chunks = [
                {"model": model, "choices": [{"delta": {"content": "Hi"}, "finish_reason": None}]},
                {"model": model, "choices": [{"delta": {}, "finish_reason": "stop"}]},
            ]
            body = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
            return httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})
        message = {"role": "assistant", "content": "Hi"}
        return httpx.Response(
            200, json={"model": model, "choices": [{"message": message, "finish_reason": "stop"}]}
        )

    return httpx.MockTransport(handle)


def test_the_result_names_the_model_the_server_says_answered(library_env: object) -> None:
    transport = _answers_as("gpt-4o-2024-08-06")
    with DeepInfraClient(base_url="http://openai.test/v1", http_transport=transport) as client:
        with client.chat(MESSAGES, "gpt-4o") as stream:
            list(stream)
        whole = client.chat(MESSAGES, "gpt-4o", stream=False)
    assert stream.result is not None and stream.result.model == "gpt-4o-2024-08-06"
    assert whole.model == "gpt-4o-2024-08-06" and whole.text == "Hi"
