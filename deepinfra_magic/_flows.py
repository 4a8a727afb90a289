"""Flows and the one trampoline that runs them: every operation that takes more than one
step is a generator, written once for both clients.

A flow yields the step it needs next, a :class:`ApiRequest` to send or a :class:`Sleep`,
and is sent the :class:`RawResponse` back (``None`` after a sleep), or has the step's
exception thrown into it: the shape of httpx's ``Auth.auth_flow``. :func:`run_steps` and
:func:`arun_steps` are the one trampoline of the package, one blocking and one awaiting;
they run these flows (through :func:`run_flow`/:func:`arun_flow`) and the transport's
retry loop alike. Rules it keeps: a flow does no I/O and writes no process globals (what
it learns, such as a model that wants Cog-shaped input, goes into state its caller hands
in); any exception a step raises, Ctrl-C included, is thrown into the flow, so its
``finally`` clauses run. The two clients still write their public methods twice (each
with its signature, one calling and one awaiting), and what truly differs: ``with``/``for``
against ``async with``/``async for``, threads against tasks (``_fanout``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable, Generator
from typing import Any, Generic, TypeVar

from ._protocol import (
    ApiRequest,
    ImageAnswer,
    RawResponse,
    as_cog_request,
    catalog_request,
    fetched_image_ref,
    file_request,
    key_check_request,
    parse_catalog,
    parse_chat_completion,
    parse_image_answer,
    parse_json,
    wants_cog_input,
)
from ._routes import Routes
from ._text import shorten
from .catalog import Fetched
from .errors import (
    AuthenticationError,
    DeepInfraError,
    InvalidRequestError,
    InvalidResponseError,
    MissingAPIKeyError,
    ReplayError,
)
from .images import GeneratedImage, ImageResult
from .types import ChatResult

__all__ = [
    "Flow",
    "Sleep",
    "arun_flow",
    "arun_steps",
    "catalog_flow",
    "completion_flow",
    "completion_result",
    "file_error",
    "image_flow",
    "image_parts",
    "key_check_flow",
    "run_flow",
    "run_steps",
]

T = TypeVar("T")
S = TypeVar("S")


@dataclasses.dataclass(frozen=True)
class Sleep:
    """A step that waits ``seconds`` before the flow goes on (a batch poll, a retry)."""

    seconds: float


Flow = Generator[ApiRequest | Sleep, RawResponse, T]
"""Yields requests to send (or sleeps); is sent each request's answer."""


@dataclasses.dataclass(frozen=True)
class _Done(Generic[T]):
    value: T


def _advance(flow: Generator[S, Any, T], value: Any, error: BaseException | None) -> S | _Done[T]:
    """Start the flow, or give it the result of its last step (or the step's exception)."""
    try:
        if error is not None:
            return flow.throw(error)
        return flow.send(value)
    except StopIteration as done:
        return _Done(done.value)


def run_steps(flow: Generator[S, Any, T], perform: Callable[[S], Any]) -> T:
    """Run ``flow`` to its result, doing each step it yields with ``perform``."""
    step = _advance(flow, None, None)
    while not isinstance(step, _Done):
        try:
            value, error = perform(step), None
        except BaseException as exc:  # Ctrl-C too: the flow's ``finally`` must run
            value, error = None, exc
        step = _advance(flow, value, error)
    return step.value


async def arun_steps(flow: Generator[S, Any, T], perform: Callable[[S], Awaitable[Any]]) -> T:
    """:func:`run_steps` for an awaiting ``perform``: the one line the clients cannot share."""
    step = _advance(flow, None, None)
    while not isinstance(step, _Done):
        try:
            value, error = await perform(step), None
        except BaseException as exc:  # cancellation too, as in run_steps
            value, error = None, exc
        step = _advance(flow, value, error)
    return step.value


def run_flow(flow: Flow[T], send: Callable[[ApiRequest], RawResponse]) -> T:
    """Run ``flow``, sending each request with ``send`` and sleeping where it says."""

    def perform(step: ApiRequest | Sleep) -> RawResponse | None:
        if isinstance(step, Sleep):
            time.sleep(step.seconds)
            return None
        return send(step)

    return run_steps(flow, perform)


async def arun_flow(flow: Flow[T], send: Callable[[ApiRequest], Awaitable[RawResponse]]) -> T:
    """:func:`run_flow` for an awaiting ``send``."""

    async def perform(step: ApiRequest | Sleep) -> RawResponse | None:
        if isinstance(step, Sleep):
            await asyncio.sleep(step.seconds)
            return None
        return await send(step)

    return await arun_steps(flow, perform)


def completion_flow(
    request: ApiRequest, model: str, price: Callable[[ChatResult, str], None]
) -> Flow[ChatResult]:
    """A whole (non-streamed) chat completion, priced by ``price`` if the API did not."""
    started = time.perf_counter()
    raw = yield request
    result = completion_result(raw, model, started)
    price(result, model)
    return result


def completion_result(raw: RawResponse, model: str, started: float) -> ChatResult:
    """The ChatResult of a whole chat completion asked for at ``started`` (a chat with
    ``stream=False``, or one row of a map)."""
    text, reasoning, finish, usage, answered = parse_chat_completion(parse_json(raw, "chat"), model)
    elapsed = time.perf_counter() - started
    return ChatResult(
        text, answered, reasoning, finish, usage, replayed_from=raw.replayed_from,
        time_to_first_token=elapsed, duration=elapsed,
    )  # fmt: skip


def image_flow(
    request: ApiRequest,
    prompt: str,
    model: str,
    cog_models: set[str],
    charge: Callable[[int, float | None], None],
) -> Flow[ImageResult]:
    """One image request (sent again Cog-shaped if the model asks for ``input``, which
    ``cog_models``, the caller's memory, then learns), then one download per image the
    answer only links to. ``charge`` hears (images, cost) once the answer is in."""
    try:
        raw = yield request
    except InvalidRequestError as exc:
        cog = _cog_retry(request, exc)
        if cog is None:
            raise
        assert request.model is not None  # _cog_retry answers only for a named model
        cog_models.add(request.model)
        raw = yield cog
    answer = parse_image_answer(parse_json(raw, "image"), raw.body)
    charge(len(answer.refs), answer.cost)
    result, to_fetch = image_parts(answer, prompt, model, raw.replayed_from)
    for position, url in to_fetch:
        try:
            fetched = yield file_request(url)
        except DeepInfraError as exc:
            raise file_error(url, exc) from None
        result.images[position] = _fetched(result.images[position], fetched, url)
    return result


def catalog_flow(routes: Routes) -> Flow[Fetched]:
    """The model list: DeepInfra's featured list or another server's ``/models``."""
    raw = yield routes.adapt(catalog_request())
    payload = parse_json(raw, "model catalog")
    generic = routes.parse_catalog(payload)
    entries = parse_catalog(payload) if generic is None else generic
    return entries, raw.replayed_from is not None, raw.recorded_at


def key_check_flow(routes: Routes) -> Flow[bool | None]:
    """True if the key is accepted, AuthenticationError if refused, None if this server
    cannot tell (another server's model list may answer any key, or none)."""
    if routes.generic:
        return None
    try:
        yield key_check_request()
    except (AuthenticationError, MissingAPIKeyError):
        raise
    except DeepInfraError:
        return None
    return True


def _cog_retry(request: ApiRequest, error: InvalidRequestError) -> ApiRequest | None:
    """The Cog-shaped request to send instead, when a 422 asks for ``input`` (once)."""
    body = request.json or {}
    if request.model is None or "input" in body or not wants_cog_input(error.detail):
        return None
    return as_cog_request(request)


def image_parts(
    answer: ImageAnswer, prompt: str, model: str, replayed_from: str | None
) -> tuple[ImageResult, list[tuple[int, str]]]:
    """An ImageResult with the inline images, plus (position, url) still to fetch."""
    result = ImageResult(
        prompt=prompt,
        model=model,
        cost=answer.cost,
        runtime_ms=answer.runtime_ms,
        replayed_from=replayed_from,
        request_ids=[answer.request_id] if answer.request_id else [],
    )
    to_fetch = []
    for position, ref in enumerate(answer.refs):
        flagged = position < len(answer.nsfw) and answer.nsfw[position]
        if ref.data is not None and ref.mime_type:
            result.images.append(
                GeneratedImage(ref.data, ref.mime_type, prompt, answer.seed, nsfw=flagged)
            )
        elif ref.url:
            to_fetch.append((position, ref.url))
            image = GeneratedImage(b"", "", prompt, answer.seed, ref.url, nsfw=flagged)
            result.images.append(image)
    return result, to_fetch


def _fetched(image: GeneratedImage, raw: RawResponse, url: str) -> GeneratedImage:
    ref = fetched_image_ref(raw.body, raw.headers.get("content-type", ""), url)
    assert ref.data is not None and ref.mime_type is not None
    return dataclasses.replace(image, data=ref.data, mime_type=ref.mime_type, url=url)


def file_error(url: str, error: DeepInfraError) -> DeepInfraError:
    """The error for a hosted image that could not be fetched.

    A replay miss is passed on unchanged: it names what the recording lacks, whereas
    "run the cell again" would only fail the same way.
    """
    if isinstance(error, ReplayError):
        return error
    reason = f"HTTP {error.status_code}" if error.status_code else shorten(error.message, 120)
    return InvalidResponseError(
        f"An image could not be downloaded from {shorten(url, 120)} ({reason}); run the cell again."
    )
