"""Fan-out: many requests open at once, in worker threads or in tasks, and what happens
to those still open when the caller stops.

Rules it keeps: the caller decides what to send and when (an image call, the row
scheduler); this module only runs the calls and hands back those that finished, first
finished first. On leaving the ``with`` block, early or not, nothing keeps running: calls
not started are dropped, threads still blocked in a request are hung up on through the
transport (the only way to stop a blocking read), and tasks are cancelled. These two
classes are the package's one pool driver; threads against tasks is the honest difference.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Generic, TypeVar

from ._pyodide import start_pool, wait_first

if TYPE_CHECKING:
    from ._http import SyncTransport

__all__ = ["TaskFanOut", "ThreadFanOut"]

R = TypeVar("R")


class ThreadFanOut(Generic[R]):
    """Calls run in up to ``workers`` threads whose requests ``transport`` can cut."""

    def __init__(self, transport: SyncTransport, workers: int, name: str) -> None:
        self._transport = transport
        self._pool = start_pool(workers, name)  # runs calls in turn where threads cannot start
        self._stop = threading.Event()
        self.pending: set[concurrent.futures.Future[R]] = set()

    def submit(self, call: Callable[[], R]) -> concurrent.futures.Future[R]:
        """Start ``call`` in a worker thread (queued while every worker is busy)."""

        def run() -> R:
            with self._transport.abortable(self._stop):
                return call()

        future = self._pool.submit(run)
        self.pending.add(future)
        return future

    def wait(self, timeout: float | None) -> set[concurrent.futures.Future[R]]:
        """The calls that finish within ``timeout`` seconds (at least one, unless the time
        runs out); with none open, just wait out the time."""
        if not self.pending:
            time.sleep(timeout or 0.0)
            return set()
        done, self.pending = wait_first(self._pool, self.pending, timeout)
        return done

    def __enter__(self) -> ThreadFanOut[R]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self.pending:  # stopped early (Ctrl-C, close): hang up on those running
            self._transport.abort(self._stop)


class TaskFanOut(Generic[R]):
    """Calls run as tasks, at most ``limit`` at a time when given."""

    def __init__(self, limit: int | None = None) -> None:
        self._semaphore = asyncio.Semaphore(limit) if limit else None
        self.pending: set[asyncio.Future[R]] = set()

    def submit(self, call: Callable[[], Awaitable[R]]) -> asyncio.Future[R]:
        """Start ``call`` as a task (it waits for a free place when there is a limit)."""

        async def run() -> R:
            if self._semaphore is None:
                return await call()
            async with self._semaphore:
                return await call()

        task = asyncio.ensure_future(run())
        self.pending.add(task)
        return task

    async def wait(self, timeout: float | None) -> set[asyncio.Future[R]]:
        """The calls that finish within ``timeout`` seconds; with none open, just wait."""
        if not self.pending:
            await asyncio.sleep(timeout or 0.0)
            return set()
        done, self.pending = await asyncio.wait(
            self.pending, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        return done

    async def __aenter__(self) -> TaskFanOut[R]:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for task in self.pending:
            task.cancel()
