"""Sans-I/O flows: each operation that takes more than one request, written once.

A flow is a generator that yields the :class:`ApiRequest` it needs next and is sent the
:class:`RawResponse` back, or has the request's :class:`DeepInfraError` thrown into it
(the shape of httpx's ``Auth.auth_flow``). It does no I/O: ``run_flow`` and
``arun_flow`` move the bytes, one blocking and one awaiting, and are the only code the
sync and async clients do not share.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Awaitable, Callable, Generator
from typing import Generic, TypeVar

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
from .usage import SESSION_USAGE

__all__ = [
    "COG_MODELS",
    "Flow",
    "arun_flow",
    "catalog_flow",
    "completion_flow",
    "file_error",
    "image_flow",
    "image_parts",
    "key_check_flow",
    "run_flow",
]

T = TypeVar("T")
Flow = Generator[ApiRequest, RawResponse, T]
COG_MODELS: set[str] = set()
"""Image models that answered ``body.input: field required``: sent ``{"input": {...}}``."""


@dataclasses.dataclass(frozen=True)
class _Done(Generic[T]):
    value: T


def _advance(flow: Flow[T], outcome: RawResponse | DeepInfraError | None) -> ApiRequest | _Done[T]:
    """Start the flow, or pass it the answer (or the error) to the request it yielded."""
    try:
        if outcome is None:
            return next(flow)
        if isinstance(outcome, DeepInfraError):
            return flow.throw(outcome)
        return flow.send(outcome)
    except StopIteration as done:
        return _Done(done.value)


def run_flow(flow: Flow[T], send: Callable[[ApiRequest], RawResponse]) -> T:
    """Run ``flow`` to its result, sending each request it yields with ``send``."""
    step = _advance(flow, None)
    while isinstance(step, ApiRequest):
        outcome: RawResponse | DeepInfraError
        try:
            outcome = send(step)
        except DeepInfraError as exc:
            outcome = exc
        step = _advance(flow, outcome)
    return step.value


async def arun_flow(flow: Flow[T], send: Callable[[ApiRequest], Awaitable[RawResponse]]) -> T:
    """:func:`run_flow` for an awaiting ``send``: the one line the clients cannot share."""
    step = _advance(flow, None)
    while isinstance(step, ApiRequest):
        outcome: RawResponse | DeepInfraError
        try:
            outcome = await send(step)
        except DeepInfraError as exc:
            outcome = exc
        step = _advance(flow, outcome)
    return step.value


def completion_flow(
    request: ApiRequest, model: str, price: Callable[[ChatResult, str], None]
) -> Flow[ChatResult]:
    """A whole (non-streamed) chat completion, priced by ``price`` if the API did not."""
    started = time.perf_counter()
    raw = yield request
    text, reasoning, finish, usage, answered = parse_chat_completion(parse_json(raw, "chat"), model)
    elapsed = time.perf_counter() - started
    result = ChatResult(
        text, answered, reasoning, finish, usage, replayed_from=raw.replayed_from,
        time_to_first_token=elapsed, duration=elapsed,
    )  # fmt: skip
    price(result, model)
    return result


def image_flow(request: ApiRequest, prompt: str, model: str) -> Flow[ImageResult]:
    """One image request (sent again Cog-shaped if the model asks for ``input``), then
    one download per image the answer only links to."""
    try:
        raw = yield request
    except InvalidRequestError as exc:
        cog = _cog_retry(request, exc)
        if cog is None:
            raise
        raw = yield cog
    answer = parse_image_answer(parse_json(raw, "image"), raw.body)
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
    COG_MODELS.add(request.model)
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
    SESSION_USAGE.record("images", model, images=len(answer.refs), cost=answer.cost)
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
