"""Behaviour on DeepInfra's real answer shapes (see tests/fake_deepinfra/ for the sources):
retries that never repeat a billed request, a loading model, n>1, and the small fixes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from deepinfra_magic import DeepInfraClient
from deepinfra_magic._protocol import parse_image_answer
from deepinfra_magic.catalog import ModelInfo
from deepinfra_magic.errors import (
    APIConnectionError,
    AuthenticationError,
    ContextLengthError,
    InvalidArgumentError,
    ModelLoadingError,
    ServerError,
    StreamError,
)
from deepinfra_magic.types import ChatResult, ContentDelta
from tests.fake_deepinfra import (
    CHAT_PATH,
    INFERENCE_PREFIX,
    TINY_JPEG,
    FakeDeepInfra,
    openai_images_response,
)
from tests.kernel_helpers import MARKDOWN, PLAIN, all_text, notebook_view

MakeClient = Any
FLUX = "black-forest-labs/FLUX-1-schnell"
FLUX_PATH = INFERENCE_PREFIX + FLUX
COG = "stability-ai/sdxl"
OLD_MODEL = "Austism/chronos-hermes-13b-v2"
MESSAGES = [{"role": "user", "content": "Hello"}]


def chat(client: DeepInfraClient, stream: bool, **kwargs: Any) -> ChatResult:
    if not stream:
        return client.chat(MESSAGES, stream=False, **kwargs)
    *_, result = client.chat(MESSAGES, **kwargs)
    assert isinstance(result, ChatResult)
    return result


# ---- retries: never repeat a request that may have been billed ------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_an_image_post_is_not_repeated_after_a_server_error(
    make_client: MakeClient, fake_server: FakeDeepInfra, status: int
) -> None:
    fake_server.add_fault(path=FLUX_PATH, status=status, times=None)
    with pytest.raises(ServerError) as caught:
        make_client(max_retries=2).generate_image("a fox", FLUX)
    assert fake_server.count(FLUX_PATH) == 1  # the image may have been made and billed
    assert "\n" not in str(caught.value) and "after" not in str(caught.value)


def test_an_image_post_is_repeated_after_a_429(
    make_client: MakeClient, fake_server: FakeDeepInfra
) -> None:
    fake_server.add_fault(
        path=FLUX_PATH, status=429, body_style="error_obj", message="Model busy, retry later",
        headers={"Retry-After": "0"},
    )  # fmt: skip
    result = make_client(max_retries=2).generate_image("a fox", FLUX)
    assert len(result.images) == 1 and fake_server.count(FLUX_PATH) == 2


def test_an_image_post_whose_connection_broke_after_sending_is_not_repeated(
    make_client: MakeClient, fake_server: FakeDeepInfra
) -> None:
    fake_server.add_fault(path=FLUX_PATH, hang_up=True)
    with pytest.raises(APIConnectionError, match="broke"):
        make_client(max_retries=2).generate_image("a fox", FLUX)
    assert fake_server.count(FLUX_PATH) == 1  # the server had the request: maybe billed


def test_a_plain_chat_whose_reply_broke_off_is_not_repeated(
    make_client: MakeClient, fake_server: FakeDeepInfra
) -> None:
    fake_server.add_fault(cut_body=True)
    with pytest.raises(APIConnectionError):
        chat(make_client(max_retries=2), False)
    assert fake_server.count(CHAT_PATH) == 1  # the reply had begun: it was generated


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "no-stream"])
def test_chat_is_repeated_when_the_connection_broke_before_any_reply_byte(
    make_client: MakeClient, fake_server: FakeDeepInfra, stream: bool
) -> None:
    fake_server.add_fault(hang_up=True)
    assert chat(make_client(max_retries=2), stream).complete
    assert fake_server.count(CHAT_PATH) == 2


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "no-stream"])
def test_chat_is_not_repeated_after_a_plain_500(
    make_client: MakeClient, fake_server: FakeDeepInfra, stream: bool
) -> None:
    fake_server.add_fault(status=500, times=None)
    with pytest.raises(ServerError):
        chat(make_client(max_retries=2), stream)
    assert fake_server.count(CHAT_PATH) == 1


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "no-stream"])
def test_chat_429_is_retried_then_answers(
    make_client: MakeClient, fake_server: FakeDeepInfra, stream: bool
) -> None:
    fake_server.add_fault(status=429, body_style="error_obj", headers={"Retry-After": "0"})
    assert chat(make_client(max_retries=2), stream).complete
    assert fake_server.count(CHAT_PATH) == 2


def test_input_too_long_is_not_retried_and_says_to_shorten(
    make_client: MakeClient, fake_server: FakeDeepInfra
) -> None:
    long_prompt = [{"role": "user", "content": "x" * 20000}]
    with pytest.raises(ContextLengthError) as caught:
        make_client(max_retries=2).chat(long_prompt, OLD_MODEL, stream=False)
    message = str(caught.value)
    assert fake_server.count(CHAT_PATH) == 1
    assert "(500: Requested input length 5000 exceeds maximum input length 4096)" in message
    assert "Start over with --new" in message and "Try again in a minute" not in message


def test_a_500_naming_its_cause_on_a_get_is_not_retried(
    make_client: MakeClient, fake_server: FakeDeepInfra
) -> None:
    fake_server.add_fault(
        path="/models/featured", status=500, body_style="error_obj", message="Bad catalog",
        times=None,
    )  # fmt: skip
    with pytest.raises(ServerError, match="would fail the same way"):
        make_client(max_retries=2, catalog_disk_cache=False).models()
    assert fake_server.count("/models/featured") == 1


# ---- a model that is still loading (423) ------------------------------------------------------


def test_a_loading_model_is_waited_for_with_a_note(
    make_client: MakeClient, fake_server: FakeDeepInfra
) -> None:
    fake_server.add_fault(
        path=FLUX_PATH, status=423, body_style="deep_error", message="Model is being deployed",
        times=2, headers={"Retry-After": "0"},
    )  # fmt: skip
    notes: list[str] = []
    result = make_client(max_retries=0, on_notice=notes.append).generate_image("a fox", FLUX)
    assert len(result.images) == 1 and fake_server.count(FLUX_PATH) == 3
    assert notes == [
        f"⏳ {FLUX} is loading on the server (HTTP 423); waiting up to 120 s…"
    ]  # said once, however many polls


def test_a_model_that_stays_loading_ends_in_one_line(
    make_client: MakeClient, fake_server: FakeDeepInfra
) -> None:
    fake_server.add_fault(
        path=FLUX_PATH, status=423, body_style="deep_error", message="Model is being deployed",
        times=None, headers={"Retry-After": "0"},
    )  # fmt: skip
    with pytest.raises(ModelLoadingError) as caught:
        make_client(on_notice=lambda note: None).generate_image("a fox", FLUX)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"Model '{FLUX}' is still loading on DeepInfra")
    assert "(423: Model is being deployed)" in message and "Run again in a minute" in message
    assert fake_server.count(FLUX_PATH) == 1 + 24  # bounded: 120 s, a poll counting 5 s at least


def test_the_magic_shows_the_loading_note(ip: InteractiveShell, fake_server: FakeDeepInfra) -> None:
    fake_server.add_fault(
        path=FLUX_PATH, status=423, body_style="deep_error", headers={"Retry-After": "0"},
    )  # fmt: skip
    with capture_output() as captured:
        ip.run_line_magic("deepinfra_image", "a fox")
    assert f"⏳ {FLUX} is loading on the server (HTTP 423)" in captured.stderr
    assert fake_server.count(FLUX_PATH) == 2


# ---- n > 1 -------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "no-stream"])
def test_n_above_one_is_refused_before_any_request(
    make_client: MakeClient, fake_server: FakeDeepInfra, stream: bool
) -> None:
    with pytest.raises(InvalidArgumentError, match=r"^n=2 asks for several replies at once"):
        chat(make_client(), stream, n=2)
    assert fake_server.requests == []
    assert chat(make_client(), stream, n=1).complete


def test_the_magic_refuses_n_above_one_in_one_line(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    # n is one of the names every magic's -p refuses (RESERVED_PARAMS), before any request.
    with capture_output() as captured:
        result = ip.run_cell("%%deepinfra -p n=3\nTwo colours")
    assert isinstance(result.error_in_exec, UsageError)
    assert "UsageError: -p/--param cannot set n: a cell gets one reply" in captured.stderr
    assert fake_server.count(CHAT_PATH) == 0


# ---- small fixes ---------------------------------------------------------------------------------


def test_finish_reason_error_is_a_stream_error_that_keeps_the_text(
    make_client: MakeClient, fake_server: FakeDeepInfra
) -> None:
    fake_server.add_fault(text="Partial answer", finish_error=True)
    stream = make_client().chat(MESSAGES)
    received = []
    with pytest.raises(StreamError) as caught:
        for event in stream:
            if isinstance(event, ContentDelta):
                received.append(event.text)
    assert "".join(received) == "Partial answer" == caught.value.partial_text
    assert "finish_reason 'error'" in str(caught.value)
    assert "the 14 characters received are kept" in str(caught.value)


def test_the_magic_keeps_text_before_finish_reason_error(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    fake_server.add_fault(text="Partial answer", finish_error=True)
    with capture_output() as captured:
        result = ip.run_cell("%%deepinfra\nHello")
    assert isinstance(result.error_in_exec, StreamError)
    shown = all_text(captured.outputs)
    assert "Partial answer" in shown and "The reply stopped early" in shown


def test_nsfw_flags_show_in_the_caption(ip: InteractiveShell, fake_server: FakeDeepInfra) -> None:
    fake_server.nsfw_seeds = {8}
    with capture_output() as captured:
        ip.run_line_magic("deepinfra_image", "-n 2 --seed 7 a fox")
    caption = notebook_view(captured.outputs)[-1]
    assert "⚠ image 2 filtered by the safety checker" in caption.data[MARKDOWN]
    assert "image 1 filtered" not in caption.data[PLAIN]


def test_a_seed_sent_as_a_string_is_read_as_a_number(
    make_client: MakeClient, fake_server: FakeDeepInfra
) -> None:
    fake_server.seed_as_string = True
    result = make_client().generate_image("a fox", FLUX, seed=7)
    assert result.images[0].seed == 7


def test_deprecated_models_are_marked_in_the_list_and_warned_about_when_used(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    with capture_output() as captured:
        ip.run_line_magic("deepinfra_models", "chronos")
    (output,) = captured.outputs
    assert (
        f"| `{OLD_MODEL}` ⚠ deprecated, use `Gryphe/MythoMax-L2-13b` | text |"
        in output.data[MARKDOWN]
    )
    assert "deprecated, use Gryphe/MythoMax-L2-13b" in output.data[PLAIN]
    with capture_output() as captured:
        ip.run_cell_magic("deepinfra", f"-m {OLD_MODEL}", "Hello")
    (warning,) = captured.stderr.splitlines()
    assert warning == (
        f"⚠ {OLD_MODEL} is deprecated on DeepInfra (since 2024-10-03); "
        "use Gryphe/MythoMax-L2-13b instead."
    )
    with capture_output() as captured:
        ip.run_cell_magic("deepinfra", "", "Hello")
    assert captured.stderr == ""


def test_403_not_authenticated_says_the_key_was_not_accepted(
    make_client: MakeClient, fake_server: FakeDeepInfra
) -> None:
    fake_server.add_fault(status=403, body_style="detail_obj", message="Not authenticated")
    with pytest.raises(AuthenticationError) as caught:
        chat(make_client(), True)
    message = str(caught.value)
    assert message.startswith("DeepInfra did not accept the API key (403: Not authenticated)")
    assert "%deepinfra_login" in message and "lack access" not in message


def test_a_cog_model_is_sent_input_and_this_is_remembered(
    make_client: MakeClient, fake_server: FakeDeepInfra
) -> None:
    client = make_client()
    first = client.generate_image("a red fox", COG, seed=3)
    assert first.images[0].mime_type == "image/png" and first.cost == pytest.approx(0.0025)
    bodies = [r.json for r in fake_server.requests]
    assert bodies == [
        {"prompt": "a red fox", "seed": 3},
        {"input": {"prompt": "a red fox", "seed": 3}},
    ]
    with client.with_options(timeout=30) as derived:  # a client made from it (the magics'
        derived.generate_image("a blue fox", COG)  # rebuild after a settings change)
    assert fake_server.requests[-1].json == {"input": {"prompt": "a blue fox"}}
    assert fake_server.count(INFERENCE_PREFIX + COG) == 3


def test_openai_images_answers_are_read() -> None:
    payload = openai_images_response([TINY_JPEG], "a fox")
    answer = parse_image_answer(payload, json.dumps(payload).encode())
    assert [(ref.mime_type, ref.data) for ref in answer.refs] == [("image/jpeg", TINY_JPEG)]


def test_streamed_usage_without_cost_is_priced_from_the_catalog(
    make_client: MakeClient, fake_server: FakeDeepInfra
) -> None:
    client = make_client()
    client.models()
    result = chat(client, True, model="meta-llama/Llama-3.3-70B-Instruct-Turbo")
    usage = result.usage
    assert usage is not None and usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    expected = (usage.prompt_tokens * 2.3e-05 + usage.completion_tokens * 4e-05) / 100
    assert usage.estimated_cost == pytest.approx(expected)


def test_flat_priced_and_unit_priced_image_models() -> None:
    flat = {"type": "image_units", "cents_per_image_unit": 6.0, "default_price_cents": 6.0}
    units = {"type": "image_units", "cents_per_image_unit": 0.05, "default_price_cents": None}
    entry = {"model_name": "m", "type": "text-to-image"}
    assert ModelInfo.from_entry({**entry, "pricing": flat}).price_text() == "$0.06 / image"
    assert ModelInfo.from_entry({**entry, "pricing": units}).price_text() == "$0.0005 / image"


def test_key_check_never_trusts_the_open_model_list(
    make_client: MakeClient, fake_server: FakeDeepInfra
) -> None:
    fake_server.valid_keys = {"sk-the-right-one-123456"}
    with pytest.raises(AuthenticationError):  # /v1/openai/models would have said 200
        make_client(api_key="definitely-not-a-real-key").validate_key()
