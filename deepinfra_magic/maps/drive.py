"""The two map drivers: they move the bytes the :class:`RowScheduler` asks for.

Rules it keeps: the drivers decide nothing (every "when" and "what next" is the
scheduler's); a blocking run uses a thread per open request and, when stopped (Ctrl-C),
hangs up on every request still open; an awaiting run uses a task per open request and
cancels them all when cancelled; a row whose answer cannot be read fails that row, never
the run; progress is reported at most every ``interval`` seconds, and once at the end.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from .._fanout import TaskFanOut, ThreadFanOut
from .._protocol import ApiRequest, RawResponse
from ..errors import DeepInfraError
from ..types import ChatResult
from .rows import MapProgress, MapRow
from .scheduler import RowScheduler

if TYPE_CHECKING:
    from .._http import AsyncTransport, SyncTransport

__all__ = ["Finish", "ProgressCallback", "run_async", "run_sync"]

ProgressCallback = Callable[[MapProgress], None]
Finish = Callable[[MapRow, RawResponse, float], ChatResult]


class _Ticker:
    """Calls the progress callback at most every ``interval`` seconds (and at the end)."""

    def __init__(self, callback: ProgressCallback | None, flow: RowScheduler, interval: float):
        self.callback = callback
        self.flow = flow
        self.interval = interval
        self.last = -math.inf

    def __call__(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.callback is not None and (force or now - self.last >= self.interval):
            self.last = now
            self.callback(self.flow.progress())

    def timeout(self) -> float:
        wake = self.flow.wake_in()
        if self.callback is None:
            return wake if wake is not None else 3600.0
        return min(self.interval, wake) if wake is not None else self.interval


def run_sync(
    transport: SyncTransport,
    flow: RowScheduler,
    finish: Finish,
    on_progress: ProgressCallback | None = None,
    interval: float = 0.25,
) -> None:
    """Drive the scheduler with a thread per open request; Ctrl-C hangs up on all of them."""
    tick = _Ticker(on_progress, flow, interval)
    rows: dict[concurrent.futures.Future[tuple[RawResponse, float]], tuple[MapRow, int]] = {}

    def sender(request: ApiRequest) -> Callable[[], tuple[RawResponse, float]]:
        def send() -> tuple[RawResponse, float]:
            started = time.perf_counter()
            return transport.send(request), started

        return send

    with ThreadFanOut[tuple[RawResponse, float]](
        transport, flow.limit.ceiling, "deepinfra-map"
    ) as pool:
        tick(force=True)
        while not flow.finished:
            for row, epoch in flow.ready():
                rows[pool.submit(sender(row.request))] = (row, epoch)
            for future in pool.wait(tick.timeout()):
                row, epoch = rows.pop(future)
                _settle(flow, finish, row, epoch, future.exception, future.result)
            tick()
    tick(force=True)


async def run_async(
    transport: AsyncTransport,
    flow: RowScheduler,
    finish: Finish,
    on_progress: ProgressCallback | None = None,
    interval: float = 0.25,
) -> None:
    """Drive the scheduler with one task per open request; cancelling cancels them all."""
    tick = _Ticker(on_progress, flow, interval)
    rows: dict[asyncio.Future[tuple[RawResponse, float]], tuple[MapRow, int]] = {}

    def sender(request: ApiRequest) -> Callable[[], Awaitable[tuple[RawResponse, float]]]:
        async def send() -> tuple[RawResponse, float]:
            started = time.perf_counter()
            return await transport.send(request), started

        return send

    async with TaskFanOut[tuple[RawResponse, float]]() as pool:
        tick(force=True)
        while not flow.finished:
            for row, epoch in flow.ready():
                rows[pool.submit(sender(row.request))] = (row, epoch)
            for task in await pool.wait(tick.timeout()):
                row, epoch = rows.pop(task)
                _settle(flow, finish, row, epoch, task.exception, task.result)
            tick()
    tick(force=True)


def _settle(
    flow: RowScheduler,
    finish: Finish,
    row: MapRow,
    epoch: int,
    exception: Callable[[], BaseException | None],
    result: Callable[[], tuple[RawResponse, float]],
) -> None:
    """Hand one finished request to the flow (parse errors fail the row, not the run)."""
    error = exception()
    if error is None:
        raw, started = result()
        try:
            answer = finish(row, raw, started)
        except DeepInfraError as exc:
            error = exc
        else:
            flow.succeeded(row, answer)
            return
    if not isinstance(error, Exception):
        raise error
    flow.failed(row, error, epoch)
