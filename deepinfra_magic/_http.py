"""Sync and async transports on httpx: the only module that imports httpx.

They move bytes and nothing more: retries with backoff before any body is read,
timeouts, mapping network failures to our errors, and (beneath the clients, so
everything above works unchanged) record and replay of whole exchanges.

The API key goes straight into the httpx client's headers, whose repr masks it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from ._config import Secret, Timeouts, missing_key_error
from ._protocol import REPLAY_HEADER, ApiRequest, RawResponse, RetryPolicy
from ._version import __version__
from .errors import (
    APIConnectionError,
    APITimeoutError,
    DeepInfraError,
    error_from_response,
    parse_retry_after,
    redact,
)
from .recording import ChunkText, Exchange, Recording, RecordingMode

__all__ = ["USER_AGENT", "AsyncTransport", "StreamBody", "SyncTransport"]

USER_AGENT = f"deepinfra-magic/{__version__} (+https://pypi.org/project/deepinfra-magic/)"


@dataclass
class StreamBody:
    """An open streaming answer: its headers and an iterator of raw chunks."""

    headers: Mapping[str, str]
    chunks: Iterator[bytes]

    @property
    def replayed(self) -> bool:
        """True when the stream comes from a recording."""
        return REPLAY_HEADER in self.headers


@dataclass
class AsyncStreamBody:
    """The async twin of :class:`StreamBody`."""

    headers: Mapping[str, str]
    chunks: AsyncIterator[bytes]

    @property
    def replayed(self) -> bool:
        """True when the stream comes from a recording."""
        return REPLAY_HEADER in self.headers


# --- shared decisions ------------------------------------------------------------------


def _timeout(timeouts: Timeouts) -> httpx.Timeout:
    return httpx.Timeout(
        connect=timeouts.connect, read=timeouts.read, write=timeouts.write, pool=timeouts.pool
    )


def _headers(api_key: Secret | None, recording: bool) -> dict[str, str]:
    headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key.reveal()}"
    if recording:
        headers["Accept-Encoding"] = "identity"  # keep recordings readable, not gzip
    return headers


def _network_error(exc: Exception, base_url: str, timeouts: Timeouts) -> DeepInfraError:
    """A one-line error with a remedy for an httpx failure (never including headers)."""
    if isinstance(exc, (httpx.ConnectTimeout, httpx.PoolTimeout)):
        return APITimeoutError(
            f"Could not connect to {base_url} within {timeouts.connect:g} s. "
            "Check the network or DEEPINFRA_BASE_URL, then run again."
        )
    if isinstance(exc, httpx.TimeoutException):
        return APITimeoutError(
            f"No data from {base_url} for {timeouts.read:g} s (read timeout). The model may be "
            "busy: run again, or raise %config DeepInfraMagics.timeout."
        )
    if isinstance(exc, httpx.ConnectError):
        return APIConnectionError(
            f"Could not connect to {base_url} ({redact(str(exc)) or type(exc).__name__}). "
            "Check the network or DEEPINFRA_BASE_URL, then run again."
        )
    return APIConnectionError(
        f"The connection to {base_url} broke ({redact(str(exc)) or type(exc).__name__}). Run again."
    )


_RETRYABLE_EXCEPTIONS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


class _Attempts:
    """Counts attempts and decides, per failure, whether to wait and retry or give up."""

    def __init__(self, policy: RetryPolicy, base_url: str, timeouts: Timeouts, model: str | None):
        self.policy = policy
        self.base_url = base_url
        self.timeouts = timeouts
        self.model = model
        self.count = 0

    def next(self) -> None:
        """Start an attempt."""
        self.count += 1

    def after_exception(self, exc: Exception) -> float:
        """Seconds to wait before retrying a failed connection, or raise the mapped error."""
        error = _network_error(exc, self.base_url, self.timeouts)
        delay = self.policy.delay(self.count) if isinstance(exc, _RETRYABLE_EXCEPTIONS) else None
        if delay is None:
            raise error from None
        return delay

    def after_status(self, response: RawResponse) -> float:
        """Seconds to wait before retrying an error status, or raise the typed error."""
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        delay = None
        if self.policy.should_retry_status(response.status):
            delay = self.policy.delay(self.count, retry_after=retry_after)
        if delay is None:
            raise error_from_response(
                response.status,
                response.body,
                headers=response.headers,
                model=self.model,
                attempts=self.count,
            )
        return delay


def _raw(response: httpx.Response, body: bytes | None = None) -> RawResponse:
    return RawResponse(
        status=response.status_code,
        headers={k.lower(): v for k, v in response.headers.items()},
        body=response.content if body is None else body,
    )


class _TransportBase:
    """What both transports share: configuration, the key check and request building."""

    _client: httpx.Client | httpx.AsyncClient

    def __init__(
        self,
        base_url: str,
        timeouts: Timeouts,
        retry: RetryPolicy,
        recording: RecordingMode | None,
    ) -> None:
        self.base_url = base_url
        self.timeouts = timeouts
        self.retry = retry
        self.recording = recording

    @property
    def has_key(self) -> bool:
        """True when requests carry an Authorization header."""
        return "authorization" in self._client.headers

    @property
    def replaying(self) -> bool:
        """True when answers come from a recording (no key or network needed)."""
        return self.recording is not None and self.recording.mode == "replay"

    def key(self) -> Secret | None:
        """The key this transport sends, still wrapped (to build a sibling transport)."""
        header = self._client.headers.get("authorization", "")
        return Secret(header.partition(" ")[2]) if header else None

    def _check_key(self, req: ApiRequest) -> None:
        if req.needs_key and not self.has_key and not self.replaying:
            raise missing_key_error()

    def _build(self, req: ApiRequest) -> httpx.Request:
        headers = {"Accept": "text/event-stream"} if req.stream else None
        request = self._client.build_request(req.method, req.path, json=req.json, headers=headers)
        if req.is_external:  # hosted files live elsewhere: never send them our key
            request.headers.pop("authorization", None)
        return request

    def __repr__(self) -> str:
        mode = f", {self.recording.describe()}" if self.recording else ""
        return f"{type(self).__name__}({self.base_url!r}{mode})"


class SyncTransport(_TransportBase):
    """Blocking transport on ``httpx.Client``: what the magics use on the main thread."""

    _client: httpx.Client

    def __init__(
        self,
        base_url: str,
        api_key: Secret | None,
        *,
        timeouts: Timeouts,
        retry: RetryPolicy,
        recording: RecordingMode | None = None,
        http_transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, timeouts, retry, recording)
        inner: httpx.BaseTransport = http_transport or httpx.HTTPTransport()
        if recording is not None:
            inner = _recording_layer(recording, base_url, sync_inner=inner)
        self._client = httpx.Client(
            base_url=base_url,
            headers=_headers(api_key, recording is not None and recording.mode == "record"),
            timeout=_timeout(timeouts),
            transport=inner,
        )

    def send(self, req: ApiRequest) -> RawResponse:
        """Send and read a whole answer, retrying transient failures; raise typed errors."""
        self._check_key(req)
        attempts = _Attempts(self.retry, self.base_url, self.timeouts, req.model)
        while True:
            attempts.next()
            try:
                response = _raw(self._client.send(self._build(req)))
            except httpx.HTTPError as exc:
                time.sleep(attempts.after_exception(exc))
                continue
            if response.status < 400:
                return response
            time.sleep(attempts.after_status(response))

    @contextlib.contextmanager
    def stream(self, req: ApiRequest) -> Iterator[StreamBody]:
        """Open a streaming answer; retries happen only before its body is read.

        The response is closed in ``finally``: on normal end, error, or Ctrl-C.
        """
        self._check_key(req)
        attempts = _Attempts(self.retry, self.base_url, self.timeouts, req.model)
        while True:
            attempts.next()
            try:
                response = self._client.send(self._build(req), stream=True)
            except httpx.HTTPError as exc:
                time.sleep(attempts.after_exception(exc))
                continue
            if response.status_code < 400:
                break
            try:
                body = response.read()
            except httpx.HTTPError:
                body = b""  # an error answer whose body broke: the status says enough
            finally:
                response.close()
            time.sleep(attempts.after_status(_raw(response, body)))
        try:
            headers = {k.lower(): v for k, v in response.headers.items()}
            yield StreamBody(headers, self._chunks(response))
        finally:
            response.close()

    def _chunks(self, response: httpx.Response) -> Iterator[bytes]:
        try:
            yield from response.iter_bytes()
        except httpx.HTTPError as exc:
            raise _network_error(exc, self.base_url, self.timeouts) from None

    def close(self) -> None:
        """Close pooled connections."""
        self._client.close()


class AsyncTransport(_TransportBase):
    """Non-blocking transport on ``httpx.AsyncClient``, for library users who ``await``."""

    _client: httpx.AsyncClient

    def __init__(
        self,
        base_url: str,
        api_key: Secret | None,
        *,
        timeouts: Timeouts,
        retry: RetryPolicy,
        recording: RecordingMode | None = None,
        http_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, timeouts, retry, recording)
        inner: httpx.AsyncBaseTransport = http_transport or httpx.AsyncHTTPTransport()
        if recording is not None:
            inner = _recording_layer(recording, base_url, async_inner=inner)
        self._client = httpx.AsyncClient(
            base_url=base_url,
            headers=_headers(api_key, recording is not None and recording.mode == "record"),
            timeout=_timeout(timeouts),
            transport=inner,
        )

    async def send(self, req: ApiRequest) -> RawResponse:
        """Send and read a whole answer, retrying transient failures; raise typed errors."""
        self._check_key(req)
        attempts = _Attempts(self.retry, self.base_url, self.timeouts, req.model)
        while True:
            attempts.next()
            try:
                response = _raw(await self._client.send(self._build(req)))
            except httpx.HTTPError as exc:
                await asyncio.sleep(attempts.after_exception(exc))
                continue
            if response.status < 400:
                return response
            await asyncio.sleep(attempts.after_status(response))

    @contextlib.asynccontextmanager
    async def stream(self, req: ApiRequest) -> AsyncIterator[AsyncStreamBody]:
        """Open a streaming answer; retries happen only before its body is read."""
        self._check_key(req)
        attempts = _Attempts(self.retry, self.base_url, self.timeouts, req.model)
        while True:
            attempts.next()
            try:
                response = await self._client.send(self._build(req), stream=True)
            except httpx.HTTPError as exc:
                await asyncio.sleep(attempts.after_exception(exc))
                continue
            if response.status_code < 400:
                break
            try:
                body = await response.aread()
            except httpx.HTTPError:
                body = b""  # an error answer whose body broke: the status says enough
            finally:
                await response.aclose()
            await asyncio.sleep(attempts.after_status(_raw(response, body)))
        try:
            headers = {k.lower(): v for k, v in response.headers.items()}
            yield AsyncStreamBody(headers, self._chunks(response))
        finally:
            await response.aclose()

    async def _chunks(self, response: httpx.Response) -> AsyncIterator[bytes]:
        try:
            async for chunk in response.aiter_bytes():
                yield chunk
        except httpx.HTTPError as exc:
            raise _network_error(exc, self.base_url, self.timeouts) from None

    async def aclose(self) -> None:
        """Close pooled connections."""
        await self._client.aclose()


# --- record and replay, as httpx transports --------------------------------------------


def _recording_layer(
    mode: RecordingMode,
    base_url: str,
    *,
    sync_inner: httpx.BaseTransport | None = None,
    async_inner: httpx.AsyncBaseTransport | None = None,
) -> Any:
    """The httpx transport for a recording mode, wrapping the real one when recording."""
    if mode.mode == "replay":
        return ReplayTransport(Recording.load(mode.path), base_url, mode.speed)
    recording = Recording.open_for_recording(mode.path)
    return RecordingTransport(recording, base_url, sync_inner, async_inner)


def _relative(url: httpx.URL, base_url: str) -> str:
    """The API path of a URL under the base URL, or the absolute URL for other hosts."""
    text = str(url)
    return text[len(base_url) :] if text.startswith(base_url + "/") else text


def _json_body(request: httpx.Request) -> Any:
    content = request.content
    if not content:
        return None
    try:
        return json.loads(content)
    except ValueError:
        return content.decode("utf-8", errors="replace")


def _pace(delay: float, speed: float) -> float:
    return 0.0 if speed <= 0 else delay / speed


class _ReplayStream(httpx.SyncByteStream, httpx.AsyncByteStream):
    """Recorded chunks, released at the recorded pace scaled by the speed factor."""

    def __init__(self, chunks: list[tuple[float, bytes]], speed: float) -> None:
        self._chunks = chunks
        self._speed = speed

    def __iter__(self) -> Iterator[bytes]:
        for delay, chunk in self._chunks:
            wait = _pace(delay, self._speed)
            if wait:
                time.sleep(wait)
            yield chunk

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for delay, chunk in self._chunks:
            wait = _pace(delay, self._speed)
            if wait:
                await asyncio.sleep(wait)
            yield chunk


class ReplayTransport(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """Answers every request from a recording: no key, no network, visibly labelled."""

    def __init__(self, recording: Recording, base_url: str, speed: float = 1.0) -> None:
        self.recording = recording
        self.base_url = base_url
        self.speed = speed

    def _answer(self, request: httpx.Request) -> tuple[httpx.Response, float]:
        exchange = self.recording.find(
            request.method, _relative(request.url, self.base_url), _json_body(request)
        )
        headers = {"content-type": exchange.content_type, REPLAY_HEADER: self.recording.path.name}
        if exchange.chunks is not None:
            chunks = [(delay, text.encode()) for delay, text in exchange.chunks]
            stream = _ReplayStream(chunks, self.speed)
            return httpx.Response(exchange.status, headers=headers, stream=stream), 0.0
        response = httpx.Response(exchange.status, headers=headers, content=exchange.body_bytes())
        return response, _pace(exchange.latency, self.speed)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response, wait = self._answer(request)
        if wait:
            time.sleep(wait)
        return response

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response, wait = self._answer(request)
        if wait:
            await asyncio.sleep(wait)
        return response


class _RecordedStream(httpx.SyncByteStream, httpx.AsyncByteStream):
    """Passes a real answer through while noting each chunk and the delay before it."""

    def __init__(
        self,
        inner: httpx.SyncByteStream | httpx.AsyncByteStream,
        started: float,
        finish: Callable[[list[tuple[float, bytes]], bool], None],
    ) -> None:
        self._inner = inner
        self._last = started
        self._chunks: list[tuple[float, bytes]] = []
        self._finish = finish
        self._complete = False

    def _note(self, chunk: bytes) -> None:
        now = time.monotonic()
        self._chunks.append((now - self._last, chunk))
        self._last = now

    def __iter__(self) -> Iterator[bytes]:
        assert isinstance(self._inner, httpx.SyncByteStream)
        for chunk in self._inner:
            self._note(chunk)
            yield chunk
        self._complete = True

    async def __aiter__(self) -> AsyncIterator[bytes]:
        assert isinstance(self._inner, httpx.AsyncByteStream)
        async for chunk in self._inner:
            self._note(chunk)
            yield chunk
        self._complete = True

    def close(self) -> None:
        assert isinstance(self._inner, httpx.SyncByteStream)
        self._inner.close()
        self._finish(self._chunks, self._complete)

    async def aclose(self) -> None:
        assert isinstance(self._inner, httpx.AsyncByteStream)
        await self._inner.aclose()
        self._finish(self._chunks, self._complete)


class RecordingTransport(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """Sends requests for real and appends each complete exchange to the recording.

    Headers are never written; the key value is scrubbed from anything that is.
    An answer cut short (Ctrl-C, broken connection) is not recorded.
    """

    def __init__(
        self,
        recording: Recording,
        base_url: str,
        sync_inner: httpx.BaseTransport | None,
        async_inner: httpx.AsyncBaseTransport | None,
    ) -> None:
        self.recording = recording
        self.base_url = base_url
        self._sync = sync_inner
        self._async = async_inner

    def _wrap(
        self, request: httpx.Request, response: httpx.Response, started: float
    ) -> httpx.Response:
        latency = time.monotonic() - started
        secret = request.headers.get("authorization", "").partition(" ")[2]
        content_type = response.headers.get("content-type", "application/json")
        streaming = content_type.startswith("text/event-stream")

        def finish(chunks: list[tuple[float, bytes]], complete: bool) -> None:
            if not complete:
                return
            exchange = Exchange(
                method=request.method,
                path=_relative(request.url, self.base_url),
                body=_json_body(request),
                status=response.status_code,
                content_type=content_type,
                latency=latency,
            )
            body = b"".join(chunk for _, chunk in chunks)
            if streaming:
                decode = ChunkText()
                exchange.chunks = [(delay, decode(chunk)) for delay, chunk in chunks]
            elif content_type.startswith(("application/json", "text/")):
                exchange.text = body.decode("utf-8", errors="replace")
            else:
                exchange.binary = body
            self.recording.append(exchange, secret)

        # Chunk delays count from the request, so the first one is the time to first byte.
        stream = _RecordedStream(response.stream, started, finish)
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=stream,
            extensions=response.extensions,
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        assert self._sync is not None
        started = time.monotonic()
        return self._wrap(request, self._sync.handle_request(request), started)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert self._async is not None
        started = time.monotonic()
        return self._wrap(request, await self._async.handle_async_request(request), started)

    def close(self) -> None:
        if self._sync is not None:
            self._sync.close()

    async def aclose(self) -> None:
        if self._async is not None:
            await self._async.aclose()
