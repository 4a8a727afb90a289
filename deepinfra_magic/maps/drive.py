"""The two map drivers: they move the bytes the :class:`RowScheduler` asks for.

Rules it keeps: the drivers decide nothing (every "when" and "what next" is the
scheduler's); a blocking run uses a thread per open request and, when stopped (Ctrl-C),
hangs up on every request still open; an awaiting run uses a task per open request and
cancels them all when cancelled; a row whose answer cannot be read fails that row, never
the run; progress is reported at most every ``interval`` seconds, and once at the end.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from .._fanout import TaskFanOut, ThreadFanOut
from .._protocol import ApiRequest, RawResponse
from ..errors import DeepInfraError
from ..types import ChatResult
from .rows import MapProgress, MapRow
from .scheduler import RowScheduler

if TYPE_CHECKING:
    from .._http import AsyncTransport, SyncTransport

__all__ = ["Finish", "MapRun", "ProgressCallback", "run_async", "run_sync"]

ProgressCallback = Callable[[MapProgress], None]
Finish = Callable[[MapRow, RawResponse, float], ChatResult]


@dataclass
class MapRun:
    """One run of the scheduler, whatever moves its bytes: sends the rows it lets out,
    hands back those that finished, and reports progress to ``on_progress`` at most every
    ``interval`` seconds (and at the end)."""

    flow: RowScheduler
    finish: Finish
    on_progress: ProgressCallback | None = None
    interval: float = 0.25
    started: float = field(default_factory=time.perf_counter)
    _last: float = -math.inf
    _open: dict[Any, tuple[MapRow, int]] = field(default_factory=dict)  # future → (row, epoch)

    def elapsed(self) -> float:
        """Seconds since the run was made."""
        return time.perf_counter() - self.started

    def tick(self, force: bool = False) -> None:
        """Report progress, if ``interval`` has passed since the last report (or ``force``)."""
        now = time.monotonic()
        if self.on_progress is not None and (force or now - self._last >= self.interval):
            self._last = now
            self.on_progress(self.flow.progress())

    def timeout(self) -> float:
        """How long the driver may wait before something is due (a row, a report)."""
        wake = self.flow.wake_in()
        if self.on_progress is None:
            return wake if wake is not None else 3600.0
        return min(self.interval, wake) if wake is not None else self.interval

    def send_ready(self, submit: Callable[[ApiRequest], Any]) -> None:
        """Send the rows the scheduler lets out now, each remembered with its epoch."""
        for row, epoch in self.flow.ready():
            self._open[submit(row.request)] = (row, epoch)

    def settle(self, done: Iterable[Any]) -> None:
        """Hand every request that just finished (a future or a task) to the scheduler."""
        for future in done:
            row, epoch = self._open.pop(future)
            _settle(self.flow, self.finish, row, epoch, future.exception, future.result)
        self.tick()


def run_sync(transport: SyncTransport, run: MapRun) -> None:
    """Drive a run with a thread per open request; Ctrl-C hangs up on all of them."""

    def timed(request: ApiRequest) -> tuple[RawResponse, float]:
        started = time.perf_counter()
        return transport.send(request), started

    workers = run.flow.limit.ceiling
    with ThreadFanOut[tuple[RawResponse, float]](transport, workers, "deepinfra-map") as pool:
        run.tick(force=True)
        while not run.flow.finished:
            run.send_ready(lambda request: pool.submit(partial(timed, request)))
            run.settle(pool.wait(run.timeout()))
    run.tick(force=True)


async def run_async(transport: AsyncTransport, run: MapRun) -> None:
    """Drive a run with one task per open request; cancelling cancels them all."""

    async def timed(request: ApiRequest) -> tuple[RawResponse, float]:
        started = time.perf_counter()
        return await transport.send(request), started

    async with TaskFanOut[tuple[RawResponse, float]]() as pool:
        run.tick(force=True)
        while not run.flow.finished:
            run.send_ready(lambda request: pool.submit(partial(timed, request)))
            run.settle(await pool.wait(run.timeout()))
    run.tick(force=True)


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
