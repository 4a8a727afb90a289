"""One test body for both clients: the async client behind the blocking client's face.

``BlockingAsyncClient`` runs every coroutine and async iterator of an
:class:`AsyncDeepInfraClient` to completion on a private event loop, so a test written
against :class:`DeepInfraClient` drives the async code paths unchanged (the way
openai-python's ``tests/test_streaming.py`` parametrizes one body over ``sync``/``async``).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Iterator
from typing import Any, TypeVar

from deepinfra_magic.client import AsyncChatStream, AsyncDeepInfraClient

T = TypeVar("T")
CLIENT_KINDS = ("sync", "async")  # the fixtures run a test once per kind of client


class _Loop:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()

    def run(self, awaitable: Awaitable[T]) -> T:
        return self.loop.run_until_complete(awaitable)

    def iterate(self, events: AsyncIterator[T]) -> Iterator[T]:
        try:
            while True:
                try:
                    yield self.run(events.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            aclose = getattr(events, "aclose", None)
            if aclose is not None and not self.loop.is_closed():
                self.run(aclose())

    def wrap(self, value: Any) -> Any:
        if inspect.iscoroutinefunction(value):
            return lambda *args, **kwargs: self.wrap_result(self.run(value(*args, **kwargs)))
        if inspect.isasyncgenfunction(value):
            return lambda *args, **kwargs: self.iterate(value(*args, **kwargs))
        return value

    def wrap_result(self, value: Any) -> Any:
        if isinstance(value, AsyncDeepInfraClient):  # with_options: a client on this loop
            return BlockingAsyncClient.around(value, self)
        return BlockingStream(value, self) if isinstance(value, AsyncChatStream) else value


class BlockingStream:
    """An AsyncChatStream iterated like a ChatStream."""

    def __init__(self, stream: AsyncChatStream, loop: _Loop) -> None:
        self._stream = stream
        self._loop = loop
        self._events: Iterator[Any] | None = None

    def __iter__(self) -> Iterator[Any]:
        if self._events is None:
            self._events = self._loop.iterate(self._stream.__aiter__())
        return self._events

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    def close(self) -> None:
        self._loop.run(self._stream.aclose())

    def __enter__(self) -> BlockingStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class BlockingAsyncClient:
    """An AsyncDeepInfraClient with DeepInfraClient's blocking interface."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._loop = _Loop()
        self._client = AsyncDeepInfraClient(*args, **kwargs)
        self._owns_loop = True

    @classmethod
    def around(cls, client: AsyncDeepInfraClient, loop: _Loop) -> BlockingAsyncClient:
        """Another client (from ``with_options``) on the same private loop."""
        wrapper = cls.__new__(cls)
        wrapper._loop, wrapper._client, wrapper._owns_loop = loop, client, False
        return wrapper

    @property
    def wrapped(self) -> AsyncDeepInfraClient:
        """The async client itself."""
        return self._client

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._client, name)
        if name == "with_options":
            return lambda **changes: self._loop.wrap_result(value(**changes))
        return self._loop.wrap(value)

    def __repr__(self) -> str:
        return repr(self._client)

    def close(self) -> None:
        if not self._loop.loop.is_closed():
            self._loop.run(self._client.aclose())
            if self._owns_loop:
                self._loop.loop.close()

    def __enter__(self) -> BlockingAsyncClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
