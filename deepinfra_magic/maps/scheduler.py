"""The row scheduler, sans-I/O: which rows go out when, and what each ending means.

Rules it keeps: it moves no bytes and reads no clock but the one it is given; every row is
answered at most once (a row already answered is never handed out again); concurrency
halves on a 429 (once per burst) and grows back by one per window of successes; a
Retry-After is honoured; waits between attempts come from the client's
:class:`RetryPolicy`, the one backoff rule of the package; an error every other row would
meet too (a refused key, no credit, an unknown model) stops the run instead of failing
each row; with a schema, a reply that does not fit is repaired once and a refused
``json_schema`` switches the job to JSON mode (:meth:`MapJob.repair`, :meth:`MapJob.refused`),
each row going out again at once; a prompt's error is every row's that shares it.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from .._config import RetryPolicy
from .._text import shorten
from ..errors import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    DeepInfraError,
    InsufficientCreditError,
    InvalidArgumentError,
    ModelNotFoundError,
    RateLimitError,
    ServerError,
)
from ..types import ChatResult
from .rows import MapJob, MapProgress, MapRow, sum_usage

__all__ = ["FATAL_ERRORS", "RATE_LIMIT_RETRIES", "AdaptiveLimit", "RowScheduler"]

RATE_LIMIT_RETRIES = 50  # 429s a single row may meet before it counts as failed
FATAL_ERRORS = (AuthenticationError, InsufficientCreditError, ModelNotFoundError)
"""Errors that every other row would meet too: the run stops instead of repeating them."""


@dataclass
class AdaptiveLimit:
    """How many requests may be open: halves on a 429 (once per window, so one burst of
    refusals counts once) and grows by one after a window's worth of successes."""

    ceiling: int
    limit: int = 0
    epoch: int = 0  # bumped at each cut; a 429 for a request sent earlier is already counted
    _credit: int = 0

    def __post_init__(self) -> None:
        if self.ceiling < 1:
            raise InvalidArgumentError(f"concurrency must be 1 or more, not {self.ceiling}.")
        self.limit = self.limit or self.ceiling

    def succeeded(self) -> None:
        """One success: after ``limit`` of them, allow one more open request."""
        self._credit += 1
        if self._credit >= self.limit:
            self._credit = 0
            self.limit = min(self.ceiling, self.limit + 1)

    def rate_limited(self, sent_in_epoch: int) -> None:
        """A 429: halve, unless a cut already answered the burst this request was part of."""
        if sent_in_epoch != self.epoch:
            return
        self.limit = max(1, self.limit // 2)
        self.epoch += 1
        self._credit = 0


@dataclass
class RowScheduler:
    """Decides which rows go out when, and what each ending means; moves no bytes.

    Drivers call :meth:`ready` for rows to send now, then :meth:`succeeded` or
    :meth:`failed` with each one's outcome, until :attr:`finished`. Rows that are
    answered are never handed out again.
    """

    def __init__(
        self,
        job: MapJob,
        concurrency: int,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.job = job
        self.limit = AdaptiveLimit(concurrency)
        retry = retry or RetryPolicy()
        self.max_retries = retry.max_retries
        # The same backoff as the transport's, without its cap on attempts (a row may meet
        # up to RATE_LIMIT_RETRIES refusals): one rule for every wait in the package.
        self._waits = dataclasses.replace(retry, max_retries=sys.maxsize)
        self.clock = clock
        self.started = clock()
        self._queue: deque[MapRow] = deque(job.missing)
        self._waiting: list[tuple[float, MapRow]] = []  # (not before, row), after a 429/5xx
        self._open: set[int] = set()  # positions of the rows out right now
        self._fatal: DeepInfraError | None = None
        self.sent_done = 0
        job.retry_failed()  # failed in an earlier run: try again

    @property
    def finished(self) -> bool:
        """True when nothing is queued, waiting or open (or a fatal error stopped it)."""
        if self._fatal is not None:
            return not self._open
        return not self._queue and not self._waiting and not self._open

    @property
    def fatal(self) -> DeepInfraError | None:
        """The error that stopped the run, if any (auth, credit, unknown model)."""
        return self._fatal

    def ready(self) -> list[tuple[MapRow, int]]:
        """Rows to send now, each with the epoch to hand back on a 429."""
        if self._fatal is not None:
            return []
        now = self.clock()
        if self._waiting:
            due = [item for item in self._waiting if item[0] <= now]
            if due:
                self._waiting = [item for item in self._waiting if item[0] > now]
                for _, row in sorted(due, key=lambda item: item[1].position, reverse=True):
                    self._queue.appendleft(row)
        out = []
        while self._queue and len(self._open) < self.limit.limit:
            row = self._queue.popleft()
            row.attempts += 1
            self._open.add(row.position)
            out.append((row, self.limit.epoch))
        return out

    def wake_in(self) -> float | None:
        """Seconds until a waiting row may go out (None if none is waiting)."""
        if not self._waiting:
            return None
        return max(0.0, min(when for when, _ in self._waiting) - self.clock())

    def succeeded(self, row: MapRow, result: ChatResult) -> None:
        """A row's answer arrived."""
        if row.position not in self._open or row.answered:
            return  # never count a row twice
        self._open.discard(row.position)
        self.job.finish_row(row, result)
        self.sent_done += 1
        self.limit.succeeded()

    def failed(self, row: MapRow, error: BaseException, epoch: int) -> None:
        """A row's request failed: wait and retry it, or keep the error on the row."""
        self._open.discard(row.position)
        if row.answered:
            return
        message = getattr(error, "message", None) or str(error) or type(error).__name__
        if self.job.refused(row, error) or self.job.repair(row, error):
            row.attempts -= 1  # not a failed attempt: a changed request
            self._queue.appendleft(row)
            return
        if isinstance(error, RateLimitError):
            self.limit.rate_limited(epoch)
            row.rate_limited += 1
            row.attempts -= 1  # a refusal is not an attempt at the answer
            if row.rate_limited <= RATE_LIMIT_RETRIES:
                wait = error.retry_after if error.retry_after is not None else self._backoff(row)
                self._waiting.append((self.clock() + wait, row))
                return
        elif isinstance(error, FATAL_ERRORS):
            self._fatal = self._fatal or error
            self.job.fail_row(row, message)
            self._queue.clear()  # the rows not sent stay unanswered (None), not failed
            self._waiting.clear()
            return
        elif _repeatable(error) and row.attempts <= self.max_retries:
            self._waiting.append((self.clock() + self._backoff(row), row))
            return
        self.job.fail_row(row, shorten(message, 300))

    def _backoff(self, row: MapRow) -> float:
        return self._waits.delay(max(1, row.attempts)) or 0.0

    def progress(self) -> MapProgress:
        """Where the run stands."""
        rows = self.job.rows
        usage = sum_usage(row.usage for row in rows if not row.cached)
        return MapProgress(
            total=len(rows),
            done=sum(row.answered for row in rows),
            failed=sum(row.error is not None and not row.answered for row in rows),
            cached=sum(row.cached for row in rows),
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            dollars=usage.estimated_cost,
            elapsed=self.clock() - self.started,
            concurrency=self.limit.limit,
            sent_done=self.sent_done,
            distinct=self.job.distinct,
        )


def _repeatable(error: BaseException) -> bool:
    """Failures after which a row may go out again without paying twice: a gateway that
    did not pass it on (502/503/504), or a connection lost before any answer. Not a 500
    (the model may have run) nor a read timeout (it may still be running)."""
    if isinstance(error, ServerError):
        return error.status_code in (502, 503, 504)
    return isinstance(error, APIConnectionError) and not isinstance(error, APITimeoutError)
