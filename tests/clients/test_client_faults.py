"""What users see when things go wrong: every fault the fake server can inject, over HTTP.

Each error must be the right type, one line, say what to do, and lose nothing that arrived.
At the end: Ctrl-C and early closes hang up the connection, and a workshop's worth of
clients share a rate-limited server without anyone failing.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from deepinfra_magic.client import AsyncDeepInfraClient, DeepInfraClient
from deepinfra_magic.errors import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    DeepInfraError,
    InsufficientCreditError,
    InvalidRequestError,
    InvalidResponseError,
    ModelNotFoundError,
    RateLimitError,
    ServerError,
    StreamError,
)
from deepinfra_magic.images import ImageArrived
from deepinfra_magic.types import ChatResult, ContentDelta
from tests.fake_deepinfra import (
    CANARY_KEY,
    CHAT_PATH,
    INFERENCE_PREFIX,
    FakeDeepInfra,
    default_reply,
    filler_reply,
    tokenize,
)

pytestmark = pytest.mark.usefixtures("library_env")

MakeClient = Callable[..., DeepInfraClient]
MODEL = "meta-llama/Llama-3.3-70B-Instruct-Turbo"
IMAGE_MODEL = "black-forest-labs/FLUX-1-schnell"
IMAGE_PATH = INFERENCE_PREFIX + IMAGE_MODEL
PROMPT = "Tell me something"
MESSAGES = [{"role": "user", "content": PROMPT}]
REPLY = default_reply(MODEL, PROMPT)
TOKENS = tokenize(REPLY)


def one_line(error: BaseException) -> str:
    """The error's message, checked to be a single non-empty line without HTML or the key."""
    message = str(error)
    assert message and "\n" not in message and "\r" not in message, message
    assert "<html" not in message.lower() and CANARY_KEY not in message
    return message


def run_chat(client: DeepInfraClient, stream: bool, **kwargs: Any) -> ChatResult:
    """One chat request, streamed or not; the final result."""
    if not stream:
        return client.chat(MESSAGES, stream=False, **kwargs)
    chat = client.chat(MESSAGES, **kwargs)
    *_, result = chat
    assert isinstance(result, ChatResult)
    return result


# ---- HTTP error answers -------------------------------------------------------------------------

# (id, fault, model, error type, phrases the one-line message must contain)
STATUS_CASES: list[tuple[str, dict[str, Any], str, type[DeepInfraError], list[str]]] = [
    ("401", {"status": 401}, MODEL, AuthenticationError,
     ["401", "DEEPINFRA_API_KEY", "%deepinfra_login"]),
    ("402", {"status": 402}, MODEL, InsufficientCreditError, ["402", "Add credit"]),
    ("403", {"status": 403}, MODEL, AuthenticationError, ["403", "lack access"]),
    ("404", {}, "meta-llama/Llama-3.3-70B", ModelNotFoundError,
     [f"Did you mean: {MODEL}", "%deepinfra_models"]),
    ("422", {"status": 422, "body_style": "detail_list", "message": "value is not a valid float"},
     MODEL, InvalidRequestError, ["422", "body.messages: value is not a valid float", "Fix that"]),
    ("400-openai-style", {"status": 400, "body_style": "error_obj", "message": "bad stop"},
     MODEL, InvalidRequestError, ["400: bad stop"]),
    ("html-page", {"status": 502, "body_style": "html"}, MODEL, ServerError,
     ["502", "an HTML page '502 Bad Gateway' instead of JSON", "Try again"]),
    ("non-json", {"status": 500, "body_style": "text", "message": "upstream\ncrashed"}, MODEL,
     ServerError, ["500", "non-JSON body: upstream crashed"]),
    ("empty-body", {"status": 503, "body_style": "empty"}, MODEL, ServerError,
     ["503", "empty response body"]),
]  # fmt: skip


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "no-stream"])
@pytest.mark.parametrize(
    ("fault", "model", "kind", "says"),
    [case[1:] for case in STATUS_CASES],
    ids=[case[0] for case in STATUS_CASES],
)
def test_error_answers(
    make_client: MakeClient,
    fake_server: FakeDeepInfra,
    stream: bool,
    fault: dict[str, Any],
    model: str,
    kind: type[DeepInfraError],
    says: list[str],
) -> None:
    if fault:
        fake_server.add_fault(**fault)
    with pytest.raises(kind) as caught:
        run_chat(make_client(max_retries=0), stream, model=model)
    assert type(caught.value) is kind
    message = one_line(caught.value)
    for phrase in says:
        assert phrase in message
    assert fake_server.count(CHAT_PATH) == 1


@pytest.mark.parametrize("status", [502, 503, 504])
@pytest.mark.parametrize("stream", [True, False], ids=["stream", "no-stream"])
def test_server_errors_are_retried_a_bounded_number_of_times(
    make_client: MakeClient, fake_server: FakeDeepInfra, status: int, stream: bool
) -> None:
    # Retry-After: 0 keeps the test quick; the backoff without it is tested below.
    fake_server.add_fault(status=status, times=None, headers={"Retry-After": "0"})
    with pytest.raises(ServerError) as caught:
        run_chat(make_client(max_retries=2), stream)
    message = one_line(caught.value)
    assert f"server error after 3 attempts ({status}: " in message
    assert "Try again in a minute or pick another model" in message
    assert fake_server.count(CHAT_PATH) == 3


def test_a_transient_server_error_is_retried_after_a_backoff_then_succeeds(
    make_client: MakeClient, fake_server: FakeDeepInfra
) -> None:
    fake_server.add_fault(status=502, body_style="html")
    assert run_chat(make_client(max_retries=1), True).text == REPLY
    first, second = fake_server.requests
    assert second.time - first.time >= 0.5 * 0.75  # the first backoff, less its jitter


def test_rate_limit_honours_retry_after_then_succeeds(
    make_client: MakeClient, fake_server: FakeDeepInfra
) -> None:
    fake_server.add_fault(status=429, headers={"Retry-After": "1"})
    result = run_chat(make_client(max_retries=2), True)
    assert result.text == REPLY and result.complete
    first, second = fake_server.requests
    assert second.time - first.time >= 1.0


def test_persistent_rate_limit_names_the_wait(
    make_client: MakeClient, fake_server: FakeDeepInfra
) -> None:
    fake_server.add_fault(status=429, times=None, headers={"Retry-After": "1"})
    with pytest.raises(RateLimitError) as caught:
        run_chat(make_client(max_retries=1), False)
    error = caught.value
    assert error.retry_after == 1.0 and error.status_code == 429
    message = one_line(error)
    assert "Rate limited by DeepInfra after 2 attempts" in message
    assert "Wait 1 s and run again" in message
    first, second = fake_server.requests
    assert second.time - first.time >= 1.0


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "no-stream"])
def test_async_client_error_answers_and_retries(fake_server: FakeDeepInfra, stream: bool) -> None:
    fake_server.add_fault(status=503, times=2, headers={"Retry-After": "0"})

    async def run() -> tuple[str, BaseException]:
        async with AsyncDeepInfraClient(
            CANARY_KEY, base_url=fake_server.api_url, max_retries=2
        ) as client:

            async def once() -> ChatResult:
                if not stream:
                    return await client.chat(MESSAGES, stream=False)
                events = [event async for event in await client.chat(MESSAGES)]
                assert isinstance(events[-1], ChatResult)
                return events[-1]

            text = (await once()).text  # two 503s, then the answer
            fake_server.add_fault(status=402)
            with pytest.raises(InsufficientCreditError) as caught:
                await once()
            return text, caught.value

    text, error = asyncio.run(run())
    assert text == REPLY
    assert "Add credit" in one_line(error)
    assert fake_server.count(CHAT_PATH) == 4


def test_an_unreachable_server_is_a_connection_error_that_names_it(
    make_client: MakeClient,
) -> None:
    with pytest.raises(APIConnectionError) as caught:
        run_chat(make_client(base_url="http://127.0.0.1:9", max_retries=0), True)
    message = one_line(caught.value)
    assert "Could not connect to http://127.0.0.1:9" in message
    assert "DEEPINFRA_BASE_URL" in message


# ---- broken streams -------------------------------------------------------------------------


def test_disconnect_mid_stream_keeps_the_text_and_is_not_retried(
    make_client: MakeClient, fake_server: FakeDeepInfra
) -> None:
    fake_server.add_fault(disconnect_after=5)
    client = make_client(max_retries=3)
    chat = client.chat(MESSAGES)
    received: list[str] = []
    with pytest.raises(StreamError) as caught:
        for event in chat:
            if isinstance(event, ContentDelta):
                received.append(event.text)
    error = caught.value
    expected = "".join(TOKENS[:5])
    assert "".join(received) == expected == error.partial_text == chat.text
    message = one_line(error)
    assert "broke mid-reply" in message
    assert f"the {len(expected)} characters received are kept" in message
    assert "Run the cell again" in message
    assert fake_server.count(CHAT_PATH) == 1  # no retry once the answer has begun
    partial = chat.partial(error=error.message)
    assert partial.text == expected and not partial.complete


@pytest.mark.parametrize(
    ("fault", "says"),
    [
        ({"malformed_after": 4}, "malformed data '{not json'"),
        ({"error_event_after": 4}, "The model stopped with an error: Internal error while"),
    ],
    ids=["malformed-json", "error-event"],
)
def test_bad_data_mid_stream_keeps_the_text(
    make_client: MakeClient, fake_server: FakeDeepInfra, fault: dict[str, Any], says: str
) -> None:
    fake_server.add_fault(**fault)
    chat = make_client().chat(MESSAGES)
    with pytest.raises(StreamError) as caught:
        list(chat)
    assert caught.value.partial_text == "".join(TOKENS[:4]) == chat.text
    assert says in one_line(caught.value)
    assert fake_server.count(CHAT_PATH) == 1


def test_text_read_together_with_an_error_event_is_yielded_before_the_error(
    make_client: MakeClient, fake_server: FakeDeepInfra
) -> None:
    fake_server.add_fault(error_event_after=3, one_write=True)
    chat = make_client().chat(MESSAGES)
    shown: list[str] = []
    with pytest.raises(StreamError) as caught:
        for event in chat:
            if isinstance(event, ContentDelta):
                shown.append(event.text)
    assert "".join(shown) == "".join(TOKENS[:3]) == caught.value.partial_text == chat.text


def test_async_stream_errors_keep_the_text(fake_server: FakeDeepInfra) -> None:
    fake_server.add_fault(disconnect_after=3)
    fake_server.add_fault(error_event_after=2)

    async def run() -> list[StreamError]:
        errors = []
        async with AsyncDeepInfraClient(CANARY_KEY, base_url=fake_server.api_url) as client:
            for _ in range(2):
                chat = await client.chat(MESSAGES)
                try:
                    [event async for event in chat]
                except StreamError as exc:
                    assert exc.partial_text == chat.text
                    errors.append(exc)
        return errors

    broken, failed = asyncio.run(run())
    assert broken.partial_text == "".join(TOKENS[:3]) and "broke mid-reply" in one_line(broken)
    assert failed.partial_text == "".join(TOKENS[:2]) and "Internal error" in one_line(failed)


@pytest.mark.parametrize(
    "shape",
    [
        {"no_done": True},
        {"crlf": True},
        {"comments": True},
        {"multi_data": True},
        {"split_utf8": True},
        {"split_utf8": True, "crlf": True, "comments": True, "no_done": True},
    ],
    ids=["no-done", "crlf", "comments", "multi-data", "split-utf8", "all-at-once"],
)
def test_unusual_but_valid_streams_arrive_intact(
    make_client: MakeClient, fake_server: FakeDeepInfra, shape: dict[str, Any]
) -> None:
    text = "Line\u2028separators\u2029and naïve 日本語 🎉 survive.\n\nNext paragraph…"
    fake_server.add_fault(text=text, **shape)
    result = run_chat(make_client(), True)
    assert result.text == text and result.finish_reason == "stop" and result.complete


def test_one_megabyte_in_a_single_event(
    make_client: MakeClient, fake_server: FakeDeepInfra
) -> None:
    fake_server.add_fault(huge_chunk_bytes=1_000_000)
    result = run_chat(make_client(), True)
    assert len(result.text.encode()) == 1_000_000
    assert result.text.startswith(REPLY) and result.complete


def test_chunk_boundaries_inside_crlf_and_characters_through_the_client(
    make_sync_client: MakeClient,
) -> None:
    # MockTransport: only a scripted byte stream can cut the body at exact offsets (between
    # CR and LF, inside a 4-byte character) through the whole client.
    body = (
        'data: {"choices":[{"delta":{"content":"a🎉\u2028b"}}]}\r\n\r\n'
        'data: {"choices":[{"delta":{},"finish_reason":"stop"}]}\r\n\r\ndata: [DONE]\r\n\r\n'
    ).encode()
    emoji = body.index("🎉".encode())
    cuts = [0, emoji + 1, emoji + 3, body.index(b"\r\n") + 1, body.index(b"\r\n\r\n") + 3]
    cuts += [len(body)]
    chunks = [body[a:b] for a, b in itertools.pairwise(cuts)]

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            headers={"content-type": "text/event-stream"},
            stream=_Chunks(chunks),
        )

    client = make_sync_client(http_transport=httpx.MockTransport(handler))
    assert run_chat(client, True).text == "a🎉\u2028b"


class _Chunks(httpx.SyncByteStream):
    """Scripted body chunks, optionally followed by a network failure."""

    def __init__(self, chunks: list[bytes], then: Exception | None = None) -> None:
        self._chunks = chunks
        self._then = then

    def __iter__(self) -> Iterator[bytes]:
        yield from self._chunks
        if self._then is not None:
            raise self._then


def test_a_connection_reset_after_done_does_not_spoil_a_whole_reply(
    make_sync_client: MakeClient,
) -> None:
    # MockTransport: the fake server cannot fail after [DONE]; a scripted stream can.
    body = (
        b'data: {"choices":[{"delta":{"content":"Complete."},"finish_reason":"stop"}]}\n\n'
        b"data: [DONE]\n\n"
    )

    def handler(request: httpx.Request) -> httpx.Response:
        reset = httpx.ReadError("connection reset by peer")
        return httpx.Response(
            200, headers={"content-type": "text/event-stream"}, stream=_Chunks([body], reset)
        )

    client = make_sync_client(http_transport=httpx.MockTransport(handler))
    result = run_chat(client, True)
    assert result.text == "Complete." and result.complete


# ---- timeouts -----------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "no-stream"])
def test_slow_first_byte_is_a_timeout_with_a_clear_message(
    make_client: MakeClient, fake_server: FakeDeepInfra, stream: bool
) -> None:
    fake_server.add_fault(first_byte_delay=30)
    with pytest.raises(APITimeoutError) as caught:
        run_chat(make_client(timeout=0.3, max_retries=3), stream)
    message = one_line(caught.value)
    assert f"No data from {fake_server.url} for 0.3 s (read timeout)" in message
    assert "run again, or raise the timeout (timeout=" in message
    assert fake_server.wait_for_disconnect(timeout=10)  # we hung up: the server saw it
    assert fake_server.count(CHAT_PATH) == 1  # a read timeout is not retried


def test_a_stall_mid_stream_is_a_stream_error_that_keeps_the_text(
    make_client: MakeClient, fake_server: FakeDeepInfra
) -> None:
    fake_server.add_fault(token_delay=30, text="never seen")
    chat = make_client(timeout=0.3).chat(MESSAGES)
    with pytest.raises(StreamError) as caught:
        list(chat)
    assert "(read timeout" in one_line(caught.value)
    assert fake_server.wait_for_disconnect(timeout=10)


# ---- images -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image_fault", "says"),
    [
        ("invalid_base64", ["invalid base64 data ('@@ this is not base64 @@')", "run the cell"]),
        ("zero_images", ["The answer held no images: {", '"images": []', "Try another prompt"]),
        ("url_404", ["could not be downloaded from http://127.0.0.1:", "(HTTP 404)"]),
    ],
)
def test_unusable_image_answers(
    make_client: MakeClient, fake_server: FakeDeepInfra, image_fault: str, says: list[str]
) -> None:
    fake_server.add_fault(IMAGE_PATH, image_fault=image_fault)
    with pytest.raises(InvalidResponseError) as caught:
        make_client().generate_image("a cat")
    message = one_line(caught.value)
    for phrase in says:
        assert phrase in message
    assert len(message) < 400  # the body is quoted shortened, never dumped


def test_an_image_labelled_with_an_unknown_type_is_read_from_its_bytes(
    make_client: MakeClient, fake_server: FakeDeepInfra
) -> None:
    fake_server.add_fault(IMAGE_PATH, image_fault="unknown_mime")
    [image] = make_client().generate_image("a cat", seed=1).images
    assert image.mime_type == "image/png" and image.size == (64, 64)


def test_a_twenty_megabyte_image_is_decoded(
    make_client: MakeClient, fake_server: FakeDeepInfra
) -> None:
    fake_server.add_fault(IMAGE_PATH, image_fault="big")
    [image] = make_client().generate_image("a big one").images
    assert image.mime_type == "image/png" and image.size == (2580, 2580)
    assert len(image.data) > 19_000_000


def test_one_failed_image_of_several_lets_the_others_arrive(
    make_client: MakeClient, fake_server: FakeDeepInfra
) -> None:
    fake_server.add_fault(IMAGE_PATH, image_fault="zero_images")
    arrived: list[ImageArrived] = []
    with pytest.raises(InvalidResponseError, match="held no images"):
        for event in make_client().iter_images("birds", n=3, seed=1):
            assert isinstance(event, ImageArrived)
            arrived.append(event)
    assert len(arrived) == 2 and all(len(event.result.images) == 1 for event in arrived)


def test_image_rate_limit_is_retried(make_client: MakeClient, fake_server: FakeDeepInfra) -> None:
    fake_server.add_fault(IMAGE_PATH, status=429, headers={"Retry-After": "0"})
    assert len(make_client().generate_image("a cat").images) == 1
    assert fake_server.count(IMAGE_PATH) == 2


# ---- Ctrl-C and early closes hang up ----------------------------------------------------------


def test_requests_can_be_cut_mid_flight_with_this_httpx(make_sync_client: MakeClient) -> None:
    # Cutting a worker's request relies on httpx's pool exposing its network backend
    # (_http._abortable_transport). If an httpx upgrade moves it, this says why the
    # hang-up test below fails.
    transport = make_sync_client()._transport
    assert transport._aborts.wired, "httpx.HTTPTransport._pool._network_backend is gone"


@pytest.mark.parametrize("how", ["close", "ctrl-c"])
def test_stopping_images_early_hangs_up_on_the_requests_still_running(
    make_sync_client: MakeClient, fake_server: FakeDeepInfra, how: str
) -> None:
    # The first image takes half a second (by then all three requests have been sent), the
    # other two would take a minute each.
    fake_server.image_delay_by_seed = {1: 0.5, 2: 60.0, 3: 60.0}
    events = make_sync_client().iter_images("owls", n=3, seed=1)
    first = next(events)
    assert isinstance(first, ImageArrived) and first.result.seed == 1
    if how == "close":
        events.close()
    else:  # Ctrl-C lands where the main thread waits: inside the generator
        with pytest.raises(KeyboardInterrupt):
            events.throw(KeyboardInterrupt)
    # The server sees both hang-ups long before the minute is over: no image is made (and
    # billed) for nobody.
    assert fake_server.wait_for_disconnect(timeout=10, count=2)
    assert fake_server.wait_streams_closed(timeout=10)
    assert {record.path for record in fake_server.disconnect_log} == {IMAGE_PATH}


def test_async_images_stopped_early_hang_up(fake_server: FakeDeepInfra) -> None:
    fake_server.image_delay_by_seed = {1: 0.5, 2: 60.0, 3: 60.0}

    async def run() -> None:
        async with AsyncDeepInfraClient(CANARY_KEY, base_url=fake_server.api_url) as client:
            events = client.iter_images("owls", n=3, seed=1)
            async for event in events:
                assert isinstance(event, ImageArrived) and event.result.seed == 1
                break
            await events.aclose()

    asyncio.run(run())
    assert fake_server.wait_for_disconnect(timeout=10, count=2)


class _InterruptAfter(httpx.SyncByteStream):
    """A real response body that raises KeyboardInterrupt while waiting for chunk k+1."""

    def __init__(self, inner: httpx.SyncByteStream, chunks: int) -> None:
        self._inner = inner
        self._chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        pieces = iter(self._inner)
        for _ in range(self._chunks):
            piece = next(pieces, None)
            if piece is None:
                return
            yield piece
        raise KeyboardInterrupt

    def close(self) -> None:
        self._inner.close()


class InterruptingTransport(httpx.BaseTransport):
    """Real HTTP to the fake server, with Ctrl-C "pressed" after ``chunks`` body chunks.

    A precise, deterministic interrupt inside the stream (where a real Ctrl-C lands while
    the kernel waits for tokens); the connection underneath is real, so the fake server
    sees whether we hang up.
    """

    def __init__(self, chunks: int) -> None:
        self._inner = httpx.HTTPTransport()
        self._chunks = chunks
        self.requests = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        response = self._inner.handle_request(request)
        assert isinstance(response.stream, httpx.SyncByteStream)
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=_InterruptAfter(response.stream, self._chunks),
            extensions=response.extensions,
        )

    def close(self) -> None:
        self._inner.close()


@pytest.fixture
def long_reply(fake_server: FakeDeepInfra) -> str:
    """A reply that takes seconds to stream, so the server is still writing when we stop."""
    fake_server.configure(reply_tokens=300, token_delay=0.01)
    return filler_reply(300)


def test_ctrl_c_mid_stream_closes_the_connection_and_keeps_the_text(
    make_sync_client: MakeClient, fake_server: FakeDeepInfra, long_reply: str
) -> None:
    client = make_sync_client(http_transport=InterruptingTransport(chunks=6))
    chat = client.chat(MESSAGES)
    received: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        for event in chat:
            if isinstance(event, ContentDelta):
                received.append(event.text)
    assert received and chat.text == "".join(received)
    assert long_reply.startswith(chat.text) and chat.text != long_reply
    assert fake_server.wait_for_disconnect(timeout=10)
    [gone] = fake_server.disconnect_log
    assert gone.path == CHAT_PATH and gone.events_sent < 300
    interrupted = chat.partial(interrupted=True)
    assert interrupted.text == chat.text and interrupted.interrupted
    assert fake_server.count(CHAT_PATH) == 1


def test_ctrl_c_while_reading_an_error_answer_is_not_retried(
    make_sync_client: MakeClient, fake_server: FakeDeepInfra
) -> None:
    fake_server.add_fault(status=503, times=None, headers={"Retry-After": "0"})
    transport = InterruptingTransport(chunks=0)
    for stream in (True, False):
        with pytest.raises(KeyboardInterrupt):
            run_chat(make_sync_client(max_retries=5, http_transport=transport), stream)
    assert transport.requests == 2 and fake_server.count(CHAT_PATH) == 2


def test_closing_a_stream_early_hangs_up(
    make_client: MakeClient, fake_server: FakeDeepInfra, long_reply: str
) -> None:
    chat = make_client().chat(MESSAGES)
    received = []
    for event in chat:
        if isinstance(event, ContentDelta):
            received.append(event.text)
            if len(received) == 3:
                break
    chat.close()
    assert fake_server.wait_for_disconnect(timeout=10)
    assert "".join(received) == "".join(tokenize(long_reply)[:3])
    # The text keeps all that was received (a network read may hold more than was yielded).
    assert chat.text.startswith("".join(received)) and long_reply.startswith(chat.text)
    assert list(chat) == []  # a closed stream yields nothing more


def test_leaving_a_with_block_hangs_up(
    make_client: MakeClient, fake_server: FakeDeepInfra, long_reply: str
) -> None:
    client = make_client()
    with client.chat(MESSAGES) as chat:
        for event in chat:
            if isinstance(event, ContentDelta):
                break
    assert fake_server.wait_for_disconnect(timeout=10)
    with pytest.raises(KeyboardInterrupt), client.chat(MESSAGES) as second:
        for event in second:
            if isinstance(event, ContentDelta):
                raise KeyboardInterrupt  # Ctrl-C in the user's own loop body
    assert fake_server.wait_for_disconnect(timeout=10, count=2)
    assert chat.text and second.text and long_reply.startswith(second.text)


def test_async_stream_closed_early_hangs_up(fake_server: FakeDeepInfra, long_reply: str) -> None:
    async def run() -> str:
        async with AsyncDeepInfraClient(CANARY_KEY, base_url=fake_server.api_url) as client:
            async with await client.chat(MESSAGES) as chat:
                async for event in chat:
                    if isinstance(event, ContentDelta):
                        break
            return chat.text

    text = asyncio.run(run())
    assert text and long_reply.startswith(text)
    assert fake_server.wait_for_disconnect(timeout=10)


# ---- a workshop: 30 people, one rate-limited server ---------------------------------------------

WORKSHOP_SIZE = 30


def test_workshop_load_everyone_gets_an_answer(
    fake_server: FakeDeepInfra, library_env: Path
) -> None:
    # The server admits 8 requests at a time and answers 429 "Model busy" beyond, with no
    # Retry-After (as DeepInfra's docs say), so clients back off: at least 0.375 s (0.5 s
    # less 25% jitter), doubling. A request is refused only while 8 others are in flight,
    # and each takes ~0.2 s, less than the shortest wait: so the 8 in flight at each
    # refusal of one participant are different, successful requests of the 29 others,
    # which bounds the refusals per participant by 29 // 8 = 3. max_retries=10 leaves
    # ample margin for a slow machine.
    fake_server.configure(max_concurrent=8, reply_tokens=20, token_delay=0.01)
    results: dict[int, ChatResult] = {}
    failures: dict[int, BaseException] = {}
    barrier = threading.Barrier(WORKSHOP_SIZE)

    def participant(number: int) -> None:
        try:
            with DeepInfraClient(
                CANARY_KEY, base_url=fake_server.api_url, max_retries=10
            ) as client:
                barrier.wait()
                chat = client.chat([{"role": "user", "content": f"participant {number}"}])
                *_, result = chat
                assert isinstance(result, ChatResult)
                results[number] = result
        except BaseException as exc:  # reported below
            failures[number] = exc

    started = time.perf_counter()
    threads = [threading.Thread(target=participant, args=(n,)) for n in range(WORKSHOP_SIZE)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    print(f"\nworkshop load: {WORKSHOP_SIZE} participants done in {elapsed:.2f} s")

    assert not failures, failures
    assert sorted(results) == list(range(WORKSHOP_SIZE))
    assert all(r.complete and r.text == filler_reply(20) for r in results.values())
    assert fake_server.peak_concurrency <= 8
    requests = fake_server.requests
    assert len(requests) > WORKSHOP_SIZE, "the server was overloaded, so some retried"
    for number in range(WORKSHOP_SIZE):
        times = [
            r.time for r in requests if r.json["messages"][0]["content"] == f"participant {number}"
        ]
        assert all(later - earlier >= 0.375 for earlier, later in itertools.pairwise(times))
