"""Sync and async transports on httpx: the only module that imports httpx (and httpcore).

They move bytes and nothing more: retries with backoff before any body is read,
timeouts, mapping network failures to our errors, and (beneath the clients, so
everything above works unchanged) record and replay of whole exchanges.

The API key goes straight into the httpx client's headers, whose repr masks it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import socket
import ssl
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Callable, Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

import httpcore
import httpx

from ._config import RetryPolicy, Secret, Timeouts, missing_key_error
from ._flows import Sleep, arun_steps, run_steps
from ._protocol import (
    LOADING_STATUS,
    RECORDED_AT_HEADER,
    REPLAY_HEADER,
    ApiRequest,
    RawResponse,
)
from ._pyodide import IN_BROWSER
from ._status import error_from_response, parse_retry_after
from ._text import redact
from ._version import __version__
from .errors import (
    KEYS_URL,
    APIConnectionError,
    APITimeoutError,
    ConfigurationError,
    DeepInfraError,
)
from .recording import ChunkText, Exchange, Record, Recording, RecordingMode, Replay

__all__ = ["USER_AGENT", "AsyncTransport", "StreamBody", "SyncTransport"]

USER_AGENT = f"deepinfra-magic/{__version__} (+https://pypi.org/project/deepinfra-magic/)"

_EXTERNAL = "deepinfra_magic.external"
"""Request extension marking a hosted file's absolute URL (see ``ApiRequest.is_external``)."""


C = TypeVar("C", Iterator[bytes], AsyncIterator[bytes])


@dataclass
class StreamBody(Generic[C]):
    """An open streaming answer: its headers and an iterator of raw chunks (async for the
    async transport). Read the chunks inside the ``with`` block: a network failure there
    becomes our error as it leaves the block."""

    headers: Mapping[str, str]
    chunks: C

    @property
    def replayed_from(self) -> str | None:
        """The recording file the stream comes from (None when live)."""
        return self.headers.get(REPLAY_HEADER)


# --- shared decisions ------------------------------------------------------------------


def _timeout(timeouts: Timeouts) -> httpx.Timeout:
    return httpx.Timeout(
        connect=timeouts.connect, read=timeouts.read, write=timeouts.write, pool=timeouts.pool
    )


def _headers(api_key: Secret | None, recording: bool) -> dict[str, str]:
    headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    if api_key:
        _check_key_characters(api_key)
        headers["Authorization"] = f"Bearer {api_key.reveal()}"
    if recording:
        headers["Accept-Encoding"] = "identity"  # keep recordings readable, not gzip
    return headers


def _check_key_characters(api_key: Secret) -> None:
    """Refuse, with a remedy, a key an HTTP header cannot carry.

    httpx would fail later with an encoding error or "Illegal header value" that quotes
    the header and leaves it in traceback locals; this error names no character.
    """
    if not all(33 <= ord(char) <= 126 for char in api_key.reveal()):
        raise ConfigurationError(
            "The API key contains a space, line break or non-ASCII character, which an HTTP "
            f"header cannot carry: copy it again from {KEYS_URL}."
        )


def _network_error(
    exc: Exception, base_url: str, timeouts: Timeouts, *, mid_reply: bool = False
) -> DeepInfraError:
    """A one-line error with a remedy for an httpx failure (never including headers).

    ``mid_reply``: the failure cut a streamed answer short. The message then only says
    what happened, because the stream wraps it in a StreamError that adds how much text
    is kept and what to do.
    """
    if isinstance(exc, (FetchBlocked, FetchNeedsJspi)):  # in a browser: says what to do
        return APIConnectionError(str(exc))
    if mid_reply:
        cause = redact(str(exc)) or type(exc).__name__
        if isinstance(exc, httpx.TimeoutException):
            return APITimeoutError(
                f"No data from {base_url} for {timeouts.read:g} s in the middle of the reply "
                "(read timeout; a larger timeout may help)"
            )
        return APIConnectionError(f"The connection to {base_url} broke mid-reply: {cause}")
    if isinstance(exc, (httpx.ConnectTimeout, httpx.PoolTimeout)):
        return APITimeoutError(
            f"Could not connect to {base_url} within {timeouts.connect:g} s. "
            "Check the network or DEEPINFRA_BASE_URL, then run again."
        )
    if isinstance(exc, httpx.TimeoutException):
        return APITimeoutError(
            f"No data from {base_url} for {timeouts.read:g} s (read timeout). The model may be "
            "busy: run again, or raise the timeout (timeout=... or "
            "%config DeepInfraMagics.timeout)."
        )
    if isinstance(exc, httpx.ConnectError):
        return APIConnectionError(
            f"Could not connect to {base_url} ({redact(str(exc)) or type(exc).__name__}). "
            "Check the network or DEEPINFRA_BASE_URL, then run again."
        )
    return APIConnectionError(
        f"The connection to {base_url} broke ({redact(str(exc)) or type(exc).__name__}). Run again."
    )


# Failures before the request went out: safe to repeat whatever the request.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# A chat request may also be repeated when the connection broke before any reply byte
# (``send`` returns once the status line and headers are in, so these come before them).
_NO_REPLY = (*_NOT_SENT, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)

Notice = Callable[[str], None]
"""Receives one-line progress notes, such as "the model is loading" (may run in a thread)."""


class _Attempts:
    """Counts attempts and decides, per failure, whether to wait and retry or give up."""

    def __init__(
        self,
        policy: RetryPolicy,
        base_url: str,
        timeouts: Timeouts,
        req: ApiRequest,
        server: str | None = None,
        notice: Notice | None = None,
    ):
        self.policy = policy
        self.base_url = base_url
        self.timeouts = timeouts
        self.req = req
        self.url = req.path if req.is_external else base_url + req.path
        self.server = server  # a server other than DeepInfra, named in its errors
        self.notice = notice
        self.count = 0
        self.retries = 0  # retries counted against max_retries (a loading model's are not)
        self.loading_polls = 0
        self.loading_started: float | None = None

    def next(self) -> None:
        """Start an attempt."""
        self.count += 1

    def after_exception(self, exc: Exception) -> float:
        """Seconds to wait before retrying a failed connection, or raise the mapped error."""
        error = _network_error(exc, self.base_url, self.timeouts)
        repeatable = _NO_REPLY if self.req.kind == "chat" else _NOT_SENT
        delay = None
        if isinstance(exc, repeatable):
            self.retries += 1
            delay = self.policy.delay(self.retries)
        if delay is None:
            raise error from None
        return delay

    def after_status(self, response: RawResponse) -> float:
        """Seconds to wait before retrying an error status, or raise the typed error."""
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        if response.status == LOADING_STATUS:
            return self._loading(response, retry_after)
        delay = None
        # Another server's 500 is its own verdict (llama.cpp answers a bad parameter so),
        # which a retry would only repeat.
        generic_500 = self.server is not None and response.status == 500
        kind = self.req.kind
        if not generic_500 and self.policy.should_retry_status(
            response.status, kind, response.body
        ):
            self.retries += 1
            delay = self.policy.delay(self.retries, retry_after=retry_after)
        if delay is None:
            raise self._error(response)
        return delay

    def _error(self, response: RawResponse, waited: float = 0.0) -> DeepInfraError:
        """The typed error for an answer not worth another attempt."""
        return error_from_response(
            response.status, response.body, headers=response.headers, model=self.req.model,
            attempts=self.count, waited=waited, server=self.server, url=self.url,
        )  # fmt: skip

    def _loading(self, response: RawResponse, retry_after: float | None) -> float:
        """Wait for a model that is being deployed, saying so once; bounded in time."""
        delay = self.policy.loading_wait(self.loading_polls, retry_after=retry_after)
        if self.loading_started is None:
            self.loading_started = time.monotonic()
        if delay is None:
            raise self._error(response, waited=time.monotonic() - self.loading_started)
        if self.loading_polls == 0 and self.notice is not None:
            model = self.req.model or "The model"
            self.notice(
                f"⏳ {model} is loading on the server (HTTP 423); waiting up to "
                f"{self.policy.loading_timeout:g} s…"
            )
        self.loading_polls += 1
        return delay


def _unencoded(response: httpx.Response) -> bool:
    """True when the body is sent as is (no gzip): its raw chunks are the bytes."""
    encoding = str(response.headers.get("content-encoding", "identity"))
    return encoding.lower() == "identity"


# A streamed reply is one HTTP chunk per token: each layer a chunk passes through costs
# about 5% of a long stream's client time. An unencoded body is read from the response's
# byte stream itself, skipping httpx's decoding and re-chunking layers (which would pass
# every chunk through unchanged); httpx still maps network errors on the way.


def _sync_chunks(response: httpx.Response) -> Iterator[bytes]:
    stream = response.stream
    if _unencoded(response) and isinstance(stream, httpx.SyncByteStream):
        return iter(stream)
    return response.iter_bytes()


def _async_chunks(response: httpx.Response) -> AsyncIterator[bytes]:
    stream = response.stream
    if _unencoded(response) and isinstance(stream, httpx.AsyncByteStream):
        return aiter(stream)
    return response.aiter_bytes()


def _policy(retry: RetryPolicy, req: ApiRequest) -> RetryPolicy:
    """The transport's retry policy, unless the request brings its own retry count."""
    if req.max_retries is None:
        return retry
    return dataclasses.replace(retry, max_retries=req.max_retries)


def _without_key(body: bytes, key: Secret | None) -> bytes:
    """An error body with the key (and look-alikes) masked.

    Some servers and proxies echo the Authorization header in their error pages; the body
    then lives on in traceback locals, which IPython's verbose mode prints.
    """
    text = body.decode("utf-8", errors="replace")
    clean = redact(text, key.reveal() if key else "")
    return body if clean == text else clean.encode()


def _raw(response: httpx.Response, key: Secret | None, body: bytes | None = None) -> RawResponse:
    """The answer as plain data; error bodies lose any echo of the key."""
    content = response.content if body is None else body
    return RawResponse(
        status=response.status_code,
        headers={k.lower(): v for k, v in response.headers.items()},
        body=_without_key(content, key) if response.status_code >= 400 else content,
    )


@dataclass(frozen=True)
class _Io:
    """One piece of I/O the retry loop needs besides a :class:`Sleep`: send a request, or
    read or close a response. ``_flows.run_steps``/``arun_steps`` run the loop."""

    kind: Literal["send", "read", "close"]
    arg: Any


class _TransportBase:
    """What both transports share: configuration, the key check and request building."""

    _client: httpx.Client | httpx.AsyncClient
    _client_type: type[httpx.Client] | type[httpx.AsyncClient]

    def __init__(
        self,
        base_url: str,
        api_key: Secret | None,
        *,
        timeouts: Timeouts,
        retry: RetryPolicy,
        recording: RecordingMode | None = None,
        http_transport: httpx.BaseTransport | httpx.AsyncBaseTransport | None = None,
        proxy: str | None = None,
        server: str | None = None,
    ) -> None:
        self.base_url = base_url
        self.timeouts = timeouts
        self.retry = retry
        self.recording = recording
        self.server = server
        self.notice: Notice | None = None  # set by the client: where progress notes go
        inner = http_transport or self._network(proxy_for(base_url, proxy))
        if isinstance(recording, Replay):
            inner = ReplayTransport(Recording.load(*recording.paths), base_url, recording.speed)
        elif recording is not None:  # sends for real through ``inner``, of this side's kind
            pair = (inner, None) if self._client_type is httpx.Client else (None, inner)
            file = Recording.open_for_recording(recording.path)
            inner = RecordingTransport(file, base_url, *pair)
        self._client = self._client_type(
            base_url=base_url,
            headers=_headers(api_key, isinstance(recording, Record)),
            timeout=_timeout(timeouts),
            transport=inner,  # type: ignore[arg-type]  # the subclass's own kind
        )

    def _network(self, proxy: str | None) -> Any:
        """The httpx transport that reaches the network (each subclass has its own)."""
        raise NotImplementedError

    @property
    def has_key(self) -> bool:
        """True when requests carry an Authorization header."""
        return "authorization" in self._client.headers

    @property
    def replaying(self) -> bool:
        """True when answers come from a recording (no key or network needed)."""
        return isinstance(self.recording, Replay)

    def key(self) -> Secret | None:
        """The key this transport sends, still wrapped (to build a sibling transport)."""
        header = self._client.headers.get("authorization", "")
        return Secret(header.partition(" ")[2]) if header else None

    def check_key(self, req: ApiRequest) -> None:
        """Fail before any network call when ``req`` needs a key that is not there."""
        if req.needs_key and not self.has_key and not self.replaying:
            raise missing_key_error()

    def _build(self, req: ApiRequest) -> httpx.Request:
        headers = {"Accept": "text/event-stream"} if req.stream else None
        if req.content is not None:
            headers = {"Content-Type": req.content_type or "application/octet-stream"}
            request = self._client.build_request(
                req.method, req.path, content=req.content, headers=headers
            )
        else:
            request = self._client.build_request(
                req.method, req.path, json=req.json, headers=headers
            )
        if req.is_external:  # hosted files live elsewhere: never send them our key
            request.headers.pop("authorization", None)
            request.extensions[_EXTERNAL] = True
        return request

    def _exchange(self, req: ApiRequest, whole: bool) -> Generator[_Io | Sleep, Any, Any]:
        """The retry loop of ``send`` (``whole``: the answer read to its end) and ``stream``
        (the response left open once it succeeds), written once for both transports. It
        yields the I/O to do and is sent each result, or has the failure thrown in; the one
        trampoline, ``_flows.run_steps``/``arun_steps``, drives it with ``_io``. Retries
        happen only before an answer's body is read; a failure while reading a whole answer
        is never repeated."""
        self.check_key(req)
        attempts = _Attempts(
            _policy(self.retry, req), self.base_url, self.timeouts, req, self.server, self.notice
        )
        while True:
            attempts.next()
            try:
                response = yield _Io("send", self._build(req))
            except httpx.HTTPError as exc:
                yield Sleep(attempts.after_exception(exc))
                continue
            if not whole and response.status_code < 400:
                return response
            try:
                body = yield _Io("read", response)
            except httpx.HTTPError as exc:
                if whole:  # the reply has begun: a failure now is never repeated
                    raise _network_error(exc, self.base_url, self.timeouts) from None
                body = b""  # an error answer whose body broke: the status says enough
            finally:  # also on Ctrl-C, which the drivers throw in
                yield _Io("close", response)
            answer = _raw(response, self.key(), body)
            if whole and answer.status < 400:
                return answer
            yield Sleep(attempts.after_status(answer))

    def __repr__(self) -> str:
        mode = f", {self.recording.describe()}" if self.recording else ""
        return f"{type(self).__name__}({self.base_url!r}{mode})"


# --- cutting blocked reads from another thread (sync image requests on Ctrl-C) ----------


class _Aborts:
    """Which worker thread reads or writes which socket, so another thread can cut it.

    A thread blocked in ``recv`` cannot be woken by closing its socket, nor by Python
    (Ctrl-C only reaches the main thread); ``shutdown`` wakes it, and the server sees the
    hang-up and stops working (and billing) for nobody. Threads opt in with ``joined``.
    """

    wired = False  # True once a network backend reports to this (see _abortable_transport)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._groups: dict[int, threading.Event] = {}  # thread -> the stop event it obeys
        self._busy: dict[int, httpcore.NetworkStream] = {}  # thread -> stream in use

    @contextlib.contextmanager
    def joined(self, stop: threading.Event) -> Iterator[None]:
        ident = threading.get_ident()
        with self._lock:
            self._groups[ident] = stop
        try:
            yield
        finally:
            with self._lock:
                self._groups.pop(ident, None)

    def watches_this_thread(self) -> bool:
        """True when the current thread joined a stop group (only image worker threads do).

        A plain dict membership test, without the lock: only this thread adds or removes
        its own entry, so the answer cannot change under it.
        """
        return threading.get_ident() in self._groups

    def abort(self, stop: threading.Event) -> None:
        """Set ``stop`` and cut the connections its threads are using right now."""
        stop.set()
        with self._lock:
            for ident, group in self._groups.items():
                stream = self._busy.get(ident)
                if group is stop and stream is not None:
                    _shutdown(stream)

    @contextlib.contextmanager
    def using(self, stream: httpcore.NetworkStream) -> Iterator[None]:
        """Around each read and write: refuse once stopped, else be cuttable meanwhile."""
        ident = threading.get_ident()
        with self._lock:
            group = self._groups.get(ident)
            if group is not None and group.is_set():
                _shutdown(stream)
                raise httpcore.ReadError("the request was stopped")
            self._busy[ident] = stream
        try:
            yield
        finally:
            with self._lock:
                self._busy.pop(ident, None)


def _shutdown(stream: httpcore.NetworkStream) -> None:
    sock = stream.get_extra_info("socket")
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


class _AbortableStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream, aborts: _Aborts) -> None:
        self._inner = inner
        self._aborts = aborts

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        if not self._aborts.watches_this_thread():  # a chat stream's hot path: no overhead
            return self._inner.read(max_bytes, timeout)
        with self._aborts.using(self._inner):
            return self._inner.read(max_bytes, timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not self._aborts.watches_this_thread():
            self._inner.write(buffer, timeout)
            return
        with self._aborts.using(self._inner):
            self._inner.write(buffer, timeout)

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        inner = self._inner.start_tls(ssl_context, server_hostname, timeout)
        return _AbortableStream(inner, self._aborts)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _AbortableBackend(httpcore.NetworkBackend):
    def __init__(self, inner: httpcore.NetworkBackend, aborts: _Aborts) -> None:
        self._inner = inner
        self._aborts = aborts

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return _AbortableStream(stream, self._aborts)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        stream = self._inner.connect_unix_socket(path, timeout, socket_options)
        return _AbortableStream(stream, self._aborts)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def proxy_for(base_url: str, proxy: str | None) -> str | None:
    """The proxy to use: an explicit one, else the environment's (``HTTPS_PROXY``…,
    honouring ``NO_PROXY``). httpx only reads these itself when it builds the transport,
    and ours is built here."""
    if proxy:
        return proxy
    parts = urllib.parse.urlsplit(base_url)
    if parts.hostname and urllib.request.proxy_bypass(parts.hostname):
        return None
    proxies = urllib.request.getproxies()
    return proxies.get(parts.scheme) or proxies.get("all")


class _CoalescingStream(httpcore.AsyncNetworkStream):
    """Holds what httpcore writes until it reads, so a request (headers, then body) goes
    out in one write: one wake-up of the server instead of two, which saves a short call
    a measurable part of its time on a busy machine."""

    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner
        self._pending = bytearray()

    async def _flush(self, timeout: float | None) -> None:
        if self._pending:
            data = bytes(self._pending)
            self._pending.clear()
            await self._inner.write(data, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._pending += buffer

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        await self._flush(timeout)
        return await self._inner.read(max_bytes, timeout)

    async def aclose(self) -> None:
        self._pending.clear()
        await self._inner.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        await self._flush(timeout)
        return _CoalescingStream(await self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _CoalescingBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, inner: httpcore.AsyncNetworkBackend) -> None:
        self._inner = inner

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return _CoalescingStream(stream)

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._inner.connect_unix_socket(path, timeout, socket_options)
        return _CoalescingStream(stream)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def _coalescing_transport(proxy: str | None) -> httpx.AsyncHTTPTransport:
    """httpx's async transport, each request sent in one write (see _CoalescingStream).

    As for the sync transport, this reaches into httpx's pool; should that change,
    requests still work, in two writes."""
    transport = httpx.AsyncHTTPTransport(proxy=proxy, verify=shared_ssl_context())
    pool = getattr(transport, "_pool", None)
    backend = getattr(pool, "_network_backend", None)
    if isinstance(backend, httpcore.AsyncNetworkBackend):
        pool._network_backend = _CoalescingBackend(backend)  # type: ignore[union-attr]
    return transport


@functools.cache
def shared_ssl_context() -> ssl.SSLContext:
    """One verifying SSL context for every client of the process.

    Loading the CA bundle takes about 15 ms; httpx would do it for each new client (even
    one that only speaks http://), which made a fresh client per call slow.
    """
    return httpx.create_ssl_context()


def _abortable_transport(aborts: _Aborts, proxy: str | None) -> httpx.HTTPTransport:
    """httpx's own transport, its connections made cuttable by ``aborts``.

    httpx offers no public hook for httpcore's network backend, so this reaches into its
    pool; should that ever change, requests still work, only without being cut.
    """
    transport = httpx.HTTPTransport(proxy=proxy, verify=shared_ssl_context())
    pool = getattr(transport, "_pool", None)
    backend = getattr(pool, "_network_backend", None)
    if isinstance(backend, httpcore.NetworkBackend):
        pool._network_backend = _AbortableBackend(backend, aborts)  # type: ignore[union-attr]
        aborts.wired = True
    return transport


class SyncTransport(_TransportBase):
    """Blocking transport on ``httpx.Client``: what the magics use on the main thread."""

    _client: httpx.Client
    _client_type = httpx.Client

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._aborts = _Aborts()  # before the network transport, which reports to it
        super().__init__(*args, **kwargs)

    def _network(self, proxy: str | None) -> httpx.BaseTransport:
        if IN_BROWSER:
            return FetchTransport()
        return _abortable_transport(self._aborts, proxy)

    def send(self, req: ApiRequest) -> RawResponse:
        """Send and read a whole answer, retrying transient failures; raise typed errors."""
        answer: RawResponse = run_steps(self._exchange(req, whole=True), self._io)
        return answer

    def _io(self, io: _Io | Sleep) -> Any:
        if isinstance(io, Sleep):
            return time.sleep(io.seconds)
        if io.kind == "send":
            return self._client.send(io.arg, stream=True)
        if io.kind == "read":
            return io.arg.read()
        return io.arg.close()

    @contextlib.contextmanager
    def stream(self, req: ApiRequest) -> Iterator[StreamBody[Iterator[bytes]]]:
        """Open a streaming answer; retries happen only before its body is read.

        The response is closed in ``finally``: on normal end, error, or Ctrl-C.
        """
        response: httpx.Response = run_steps(self._exchange(req, whole=False), self._io)
        try:
            headers = {k.lower(): v for k, v in response.headers.items()}
            yield StreamBody(headers, _sync_chunks(response))
        except httpx.HTTPError as exc:  # raised where the chunks are read, in the with-block
            raise _network_error(exc, self.base_url, self.timeouts, mid_reply=True) from None
        finally:
            response.close()

    def abortable(self, stop: threading.Event) -> contextlib.AbstractContextManager[None]:
        """Send from this (worker) thread so that ``abort(stop)`` can cut its requests."""
        return self._aborts.joined(stop)

    def abort(self, stop: threading.Event) -> None:
        """Stop the requests of the threads that joined with ``stop``, hanging up on the
        server mid-request; the threads then fail with APIConnectionError."""
        self._aborts.abort(stop)

    def close(self) -> None:
        """Close pooled connections."""
        self._client.close()


class AsyncTransport(_TransportBase):
    """Non-blocking transport on ``httpx.AsyncClient``, for library users who ``await``."""

    _client: httpx.AsyncClient
    _client_type = httpx.AsyncClient

    def _network(self, proxy: str | None) -> httpx.AsyncBaseTransport:
        if IN_BROWSER:
            return FetchTransport()
        return _coalescing_transport(proxy)

    async def send(self, req: ApiRequest) -> RawResponse:
        """Send and read a whole answer, retrying transient failures; raise typed errors."""
        answer: RawResponse = await arun_steps(self._exchange(req, whole=True), self._io)
        return answer

    async def _io(self, io: _Io | Sleep) -> Any:
        if isinstance(io, Sleep):
            return await asyncio.sleep(io.seconds)
        if io.kind == "send":
            return await self._client.send(io.arg, stream=True)
        if io.kind == "read":
            return await io.arg.aread()
        return await io.arg.aclose()

    @contextlib.asynccontextmanager
    async def stream(self, req: ApiRequest) -> AsyncIterator[StreamBody[AsyncIterator[bytes]]]:
        """Open a streaming answer; retries happen only before its body is read."""
        response: httpx.Response = await arun_steps(self._exchange(req, whole=False), self._io)
        try:
            headers = {k.lower(): v for k, v in response.headers.items()}
            yield StreamBody(headers, _async_chunks(response))
        except httpx.HTTPError as exc:  # raised where the chunks are read, in the with-block
            raise _network_error(exc, self.base_url, self.timeouts, mid_reply=True) from None
        finally:
            await response.aclose()

    async def aclose(self) -> None:
        """Close pooled connections."""
        await self._client.aclose()


# --- record and replay, as httpx transports --------------------------------------------


def _relative(request: httpx.Request, base_url: str) -> str:
    """The API path of a request under the base URL, or its absolute URL.

    Hosted files keep their absolute URL even when they live under the base URL: a replay
    may run against another base URL, yet its recorded answers still name the original.
    """
    text = str(request.url)
    if request.extensions.get(_EXTERNAL):
        return text
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
            request.method, _relative(request, self.base_url), _json_body(request)
        )
        source = exchange.source or self.recording.path.name
        headers = {"content-type": exchange.content_type, REPLAY_HEADER: source}
        if exchange.recorded_at is not None:
            headers[RECORDED_AT_HEADER] = repr(exchange.recorded_at)
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
        secret = Secret(request.headers.get("authorization", "").partition(" ")[2])
        content_type = response.headers.get("content-type", "application/json")
        streaming = content_type.startswith("text/event-stream")

        def finish(chunks: list[tuple[float, bytes]], complete: bool) -> None:
            if not complete:
                return
            exchange = Exchange(
                method=request.method,
                path=_relative(request, self.base_url),
                body=_json_body(request),
                status=response.status_code,
                content_type=content_type,
                latency=latency,
                recorded_at=time.time(),
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


# --- the browser's fetch: the network of a kernel in a web page (Pyodide, JupyterLite) ----
# Pyodide's sockets cannot reach a server, so under Pyodide the network transport is this
# one, built on the page's JS ``fetch`` with the body read as it streams. It is an ordinary
# httpx transport (replay and record wrap it like any other); httpx itself is not patched.
# ``pyodide`` and ``js`` exist only there and are imported only when a request is sent.

# Headers the browser sets itself (fetch refuses or ignores them), and those of a body
# that fetch has already decoded.
_FETCH_OWN_HEADERS = frozenset(
    {"host", "content-length", "accept-encoding", "user-agent", "connection"}
)
_FETCH_DECODED_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})


class FetchBlocked(httpx.TransportError):
    """The browser refused a request and gave no status: CORS, or no server there."""


class FetchNeedsJspi(httpx.TransportError):
    """A blocking request in a browser without JavaScript Promise Integration."""


def _fetch_blocked(url: httpx.URL) -> FetchBlocked:
    origin = f"{url.scheme}://{url.netloc.decode('ascii')}"
    return FetchBlocked(
        f"The browser blocked the request to {origin}: that server does not allow calls from "
        "this page (or is not reachable). Replay a recording (%deepinfra_replay), or set "
        "DEEPINFRA_BASE_URL to an OpenAI-compatible proxy that allows this page."
    )


async def _browser_fetch(request: httpx.Request, body: bytes) -> Any:
    """``fetch(request)`` in the page; the JS Response once its headers are in."""
    import js  # type: ignore[import-not-found]
    from pyodide.ffi import JsException, to_js  # type: ignore[import-not-found]

    headers = {k: v for k, v in request.headers.items() if k.lower() not in _FETCH_OWN_HEADERS}
    options: dict[str, Any] = {"method": request.method, "headers": headers}
    if body:
        options["body"] = to_js(body)
    init = to_js(options, dict_converter=js.Object.fromEntries)
    try:
        return await js.fetch(str(request.url), init)
    except JsException:  # "TypeError: Failed to fetch": the browser says no more than that
        raise _fetch_blocked(request.url) from None


class _FetchBody(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A fetch Response's body, chunk by chunk as the browser receives it."""

    def __init__(self, js_response: Any) -> None:
        body = js_response.body
        self._reader = body.getReader() if body is not None else None

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while self._reader is not None:
            chunk = await self._reader.read()
            if chunk.done:
                return
            yield chunk.value.to_bytes()

    def __iter__(self) -> Iterator[bytes]:
        from pyodide.ffi import run_sync

        while self._reader is not None:
            chunk = run_sync(self._reader.read())
            if chunk.done:
                return
            yield chunk.value.to_bytes()

    def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()  # a promise nobody needs to wait for
            self._reader = None

    async def aclose(self) -> None:
        self.close()


def _fetch_response(js_response: Any) -> httpx.Response:
    headers = [
        (str(entry[0]), str(entry[1]))
        for entry in js_response.headers.entries()
        if str(entry[0]).lower() not in _FETCH_DECODED_HEADERS
    ]
    return httpx.Response(int(js_response.status), headers=headers, stream=_FetchBody(js_response))


class FetchTransport(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """httpx over the browser's fetch; the blocking side needs JSPI (``run_sync``)."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        from pyodide.ffi import can_run_sync, run_sync

        if not can_run_sync():
            raise FetchNeedsJspi(
                "Live mode in this browser needs WebAssembly JSPI (a recent Chrome or Edge); "
                "replay works everywhere (%deepinfra_replay)."
            )
        return _fetch_response(run_sync(_browser_fetch(request, request.read())))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return _fetch_response(await _browser_fetch(request, await request.aread()))
