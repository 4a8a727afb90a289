"""One prompt over a whole table: templating, resume, cost estimate and the row scheduler.

The scheduler (:class:`MapFlow`) is sans-I/O: it says which rows to send now, and is told
how each ended. It adapts concurrency (halve on a 429, grow back by one per window of
successes, honour Retry-After) and answers every row exactly once. Two small drivers move
the bytes: :func:`run_sync` (threads, Ctrl-C cuts the open requests) and :func:`run_async`.
Answers are kept on disk (:class:`AnswerStore`), keyed by API root, model, parameters and
prompt, so a re-run, even after a kernel restart, sends only the rows still missing.
pandas is never imported here unless the data already is a pandas object.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import hashlib
import json
import math
import random
import sqlite3
import string
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._config import MAP_STORE_FILE
from ._protocol import ApiRequest, RawResponse, chat_request, parse_chat_completion, parse_json
from ._pyodide import start_pool, wait_first
from ._text import shorten
from .errors import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    DeepInfraError,
    InsufficientCreditError,
    InvalidRequestError,
    ModelNotFoundError,
    RateLimitError,
    ServerError,
)
from .types import ChatResult, Usage

if TYPE_CHECKING:
    from ._http import AsyncTransport, SyncTransport
    from .catalog import ModelInfo

__all__ = [
    "AnswerStore",
    "CostEstimate",
    "MapFlow",
    "MapInterrupted",
    "MapJob",
    "MapProgress",
    "MapResult",
    "MapRow",
    "ProgressCallback",
    "RowError",
    "parse_row_answer",
    "plan_map",
    "read_rows",
    "run_async",
    "run_sync",
]

RATE_LIMIT_RETRIES = 50  # 429s a single row may meet before it counts as failed
FATAL_ERRORS = (AuthenticationError, InsufficientCreditError, ModelNotFoundError)
"""Errors that every other row would meet too: the run stops instead of repeating them."""


# --- rows and templates ----------------------------------------------------------------


def _is_pandas(data: Any, name: str) -> bool:
    """True for a pandas ``name`` (DataFrame, Series) without importing pandas."""
    return type(data).__name__ == name and type(data).__module__.split(".")[0] == "pandas"


@dataclass
class MapInput:
    """The rows of the data: each a column mapping (DataFrame) or an item, with labels."""

    items: list[Any]
    labels: list[Any]
    kind: str  # "dataframe", "series" or "items"
    columns: tuple[str, ...] = ()
    source: Any = None  # the pandas object, to align the answers with its index


def read_rows(data: Any) -> MapInput:
    """Rows of a DataFrame, Series, mapping (its values), list or other finite iterable."""
    if _is_pandas(data, "DataFrame"):
        columns = tuple(str(column) for column in data.columns)
        items = [
            dict(zip(columns, row, strict=True)) for row in data.itertuples(index=False, name=None)
        ]
        return MapInput(items, list(data.index), "dataframe", columns, data)
    if _is_pandas(data, "Series"):
        return MapInput(list(data.tolist()), list(data.index), "series", source=data)
    if isinstance(data, (str, bytes)) or data is None:
        raise InvalidRequestError(
            f"DATA must be a DataFrame, Series, list or other collection of rows, not "
            f"{type(data).__name__}."
        )
    if isinstance(data, Mapping):
        return MapInput(list(data.values()), list(data.keys()), "items")
    try:
        items = list(data)
    except TypeError:
        raise InvalidRequestError(
            f"DATA must be a DataFrame, Series, list or other iterable, not {type(data).__name__}."
        ) from None
    return MapInput(items, list(range(len(items))), "items")


class _RowFormatter(string.Formatter):
    """``{column}`` from a row mapping; ``{}``/``{item}`` for the item itself."""

    def get_value(self, key: int | str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        item = args[0]
        if isinstance(key, int) or key == "item":
            return item
        if isinstance(item, Mapping) and key in item:
            return item[key]
        raise KeyError(key)


_FORMATTER = _RowFormatter()


def render(template: str, item: Any, columns: Sequence[str] = ()) -> str:
    """The prompt for one row, or a one-line error naming the missing field."""
    try:
        return _FORMATTER.format(template, item)
    except KeyError as exc:
        name = exc.args[0]
        if columns:
            where = f"is not a column (columns: {', '.join(columns)})"
        elif isinstance(item, Mapping):
            where = f"is not a key of the rows (keys: {', '.join(map(str, item))})"
        else:
            where = "is not defined: use {} or {item} for each item"
        raise InvalidRequestError(
            f"The template uses {{{name}}}, which {where}; write {{{{ and }}}} for literal braces."
        ) from None
    except (ValueError, IndexError) as exc:
        raise InvalidRequestError(
            f"The template cannot be read ({exc}); write {{{{ and }}}} for literal braces."
        ) from None


# --- results ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RowError:
    """Stands in for the answer of a row that failed, keeping why."""

    message: str

    def __bool__(self) -> bool:
        return False

    def __str__(self) -> str:
        return f"⚠ {self.message}"

    def __repr__(self) -> str:
        return f"RowError({self.message!r})"


@dataclass
class MapRow:
    """One row: its prompt, and its answer or error once it has one."""

    position: int
    label: Any
    prompt: str
    key: str
    request: ApiRequest
    text: str | None = None
    usage: Usage | None = None
    error: str | None = None
    cached: bool = False  # answered by an earlier run (from the disk store)
    replayed_from: str | None = None  # the recording the answer came from
    attempts: int = 0
    rate_limited: int = 0

    @property
    def model(self) -> str:
        """The model the row's request names."""
        return str((self.request.json or {}).get("model", ""))

    @property
    def answered(self) -> bool:
        """True once the row has its answer."""
        return self.text is not None

    def value(self) -> str | RowError | None:
        """The answer, a RowError for a failed row, or None for one that has not run."""
        if self.text is not None:
            return self.text
        return RowError(self.error) if self.error is not None else None


@dataclass
class MapResult:
    """The answers in input order (``values``), with counts, usage and what went wrong."""

    rows: list[MapRow]
    model: str
    data: MapInput
    elapsed: float = 0.0
    interrupted: bool = False
    batch_id: str | None = None

    @property
    def values(self) -> list[str | RowError | None]:
        """Answer text per row; a :class:`RowError` for failed rows, None for rows not run."""
        return [row.value() for row in self.rows]

    @property
    def answered(self) -> int:
        """Rows with an answer (from this run or an earlier one)."""
        return sum(row.answered for row in self.rows)

    @property
    def failed(self) -> int:
        """Rows that failed (their error is kept)."""
        return sum(row.error is not None and not row.answered for row in self.rows)

    @property
    def remaining(self) -> int:
        """Rows with neither an answer nor an error (an interrupted run)."""
        return len(self.rows) - self.answered - self.failed

    @property
    def cached(self) -> int:
        """Rows answered by an earlier run, not sent again."""
        return sum(row.cached for row in self.rows)

    @property
    def errors(self) -> dict[Any, str]:
        """Why each failed row failed, by label."""
        return {row.label: row.error for row in self.rows if row.error and not row.answered}

    @property
    def replayed_from(self) -> str | None:
        """The recording the answers came from, when they were replayed."""
        return next((row.replayed_from for row in self.rows if row.replayed_from), None)

    @property
    def usage(self) -> Usage:
        """Tokens and dollars of the rows answered in this run."""
        return _sum_usage(row.usage for row in self.rows if not row.cached)

    def output(self) -> Any:
        """A list of the values, or a Series on the input's index for pandas input."""
        if self.data.kind in ("dataframe", "series"):
            import pandas

            return pandas.Series(self.values, index=self.data.source.index, dtype=object)
        return self.values

    def __repr__(self) -> str:
        state = ", interrupted" if self.interrupted else ""
        return (
            f"MapResult({len(self.rows)} rows: {self.answered} answered, {self.failed} failed, "
            f"{self.remaining} remaining{state})"
        )


def _sum_usage(usages: Iterable[Usage | None]) -> Usage:
    prompt = completion = 0
    cost: float | None = None
    for usage in usages:
        if usage is None:
            continue
        prompt += usage.prompt_tokens
        completion += usage.completion_tokens
        if usage.estimated_cost is not None:
            cost = (cost or 0.0) + usage.estimated_cost
    return Usage(prompt, completion, prompt + completion, cost)


class MapInterrupted(KeyboardInterrupt):
    """Ctrl-C during a map: still a KeyboardInterrupt (Run All stops), with the rows so far."""

    def __init__(self, result: MapResult) -> None:
        super().__init__(f"{result.remaining} rows remain")
        self.result = result


# --- the on-disk answer store ----------------------------------------------------------


def request_key(body: Mapping[str, Any]) -> str:
    """The store key (and batch ``custom_id``) of a request: 32 hex digits of the digest of
    its body (model, messages, parameters). The server is not part of it, so a recording
    made against one server replays against another."""
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


class AnswerStore:
    """Answers kept on disk (SQLite), and the Batch API jobs submitted from here.

    One row is committed as soon as it is answered, so a kernel that dies keeps them.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        if path is None:
            from .catalog import default_cache_dir

            path = default_cache_dir() / MAP_STORE_FILE
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        with self._lock, self._db:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, model TEXT, "
                "text TEXT, usage TEXT, created REAL)"
            )
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS batches (id TEXT PRIMARY KEY, model TEXT, "
                "keys TEXT, created REAL, status TEXT, merged INTEGER DEFAULT 0)"
            )

    def get_many(self, keys: Sequence[str]) -> dict[str, tuple[str, Usage | None]]:
        """Stored answers (text, usage) for those of ``keys`` that have one."""
        found: dict[str, tuple[str, Usage | None]] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = list(keys[start : start + 500])
                marks = ",".join("?" * len(chunk))
                query = f"SELECT key, text, usage FROM answers WHERE key IN ({marks})"
                for key, text, usage in self._db.execute(query, chunk):
                    found[key] = (text, Usage.from_json(json.loads(usage)) if usage else None)
        return found

    def put(self, key: str, model: str, text: str, usage: Usage | None) -> None:
        """Keep one answer (a later answer for the same key replaces it)."""
        payload = json.dumps(usage.as_dict()) if usage else None
        with self._lock, self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?)",
                (key, model, text, payload, time.time()),
            )

    def add_batch(self, batch_id: str, model: str, keys: Sequence[str], status: str) -> None:
        """Remember a submitted Batch API job and which rows it answers."""
        with self._lock, self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO batches (id, model, keys, created, status) "
                "VALUES (?, ?, ?, ?, ?)",
                (batch_id, model, json.dumps(list(keys)), time.time(), status),
            )

    def set_batch_status(self, batch_id: str, status: str, merged: bool = False) -> None:
        """Note a job's latest status (and that its results are in the store)."""
        with self._lock, self._db:
            self._db.execute(
                "UPDATE batches SET status = ?, merged = ? WHERE id = ?",
                (status, int(merged), batch_id),
            )

    def batches(self) -> list[dict[str, Any]]:
        """The jobs submitted from this machine, newest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, model, keys, created, status, merged FROM batches ORDER BY created DESC"
            ).fetchall()
        return [
            {
                "id": batch_id,
                "model": model,
                "keys": json.loads(keys),
                "created": created,
                "status": status,
                "merged": bool(merged),
            }
            for batch_id, model, keys, created, status, merged in rows
        ]

    def pending_batch_for(self, keys: Iterable[str]) -> str | None:
        """The newest unmerged job that answers any of ``keys`` (to pick it up again)."""
        wanted = set(keys)
        for job in self.batches():
            if (
                not job["merged"]
                and job["status"] not in TERMINAL_FAILED
                and wanted & set(job["keys"])
            ):
                return str(job["id"])
        return None

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()


TERMINAL_FAILED = frozenset({"failed", "expired", "cancelled"})


# --- planning a run --------------------------------------------------------------------


@dataclass(frozen=True)
class CostEstimate:
    """What the rows still to send may cost, from the catalog's prices (an upper bound:
    every answer is assumed to use ``max_tokens``)."""

    rows: int
    prompt_tokens: int
    max_completion_tokens: int
    dollars: float | None  # None when the catalog has no price for the model


def estimate_tokens(text: str) -> int:
    """A rough token count (about four characters a token), for estimates only."""
    return max(1, math.ceil(len(text) / 4))


@dataclass
class MapJob:
    """A planned run: every row's request and key, with earlier answers already filled in."""

    rows: list[MapRow]
    model: str
    data: MapInput
    max_tokens: int | None
    store: AnswerStore | None

    @property
    def missing(self) -> list[MapRow]:
        """Rows that still need an answer."""
        return [row for row in self.rows if not row.answered]

    def estimate(self, info: ModelInfo | None) -> CostEstimate:
        """The cost of the missing rows at the catalog's prices (an upper bound)."""
        missing = self.missing
        prompt = sum(
            estimate_tokens(json.dumps((row.request.json or {}).get("messages"))) for row in missing
        )
        completion = (self.max_tokens or 0) * len(missing)
        dollars = None
        if info is not None and (info.input_price is not None or info.output_price is not None):
            dollars = (
                prompt * (info.input_price or 0.0) + completion * (info.output_price or 0.0)
            ) / 1e6
        return CostEstimate(len(missing), prompt, completion, dollars)

    def result(self, elapsed: float = 0.0, interrupted: bool = False) -> MapResult:
        """The rows as they stand."""
        return MapResult(self.rows, self.model, self.data, elapsed, interrupted)

    def finish_row(self, row: MapRow, result: ChatResult) -> None:
        """Record an answer, on disk first: a Ctrl-C landing in between must not leave a row
        that counts as answered but would be asked again after a restart."""
        if self.store is not None:
            self.store.put(row.key, self.model, result.text, result.usage)
        row.text = result.text
        row.usage = result.usage
        row.error = None
        row.replayed_from = result.replayed_from


def plan_map(
    data: Any,
    template: str,
    model: str,
    *,
    system: str | None,
    temperature: float | None,
    max_tokens: int | None,
    params: Mapping[str, Any],
    store: AnswerStore | None,
) -> MapJob:
    """Render every prompt, build its request and key, and fill in stored answers."""
    if not isinstance(template, str) or not template.strip():
        raise InvalidRequestError("The template is empty: write the prompt, with {column} fields.")
    rows_in = read_rows(data)
    rows: list[MapRow] = []
    for position, (label, item) in enumerate(zip(rows_in.labels, rows_in.items, strict=True)):
        prompt = render(template, item, rows_in.columns)
        messages = [{"role": "system", "content": system}] if system else []
        messages.append({"role": "user", "content": prompt})
        request = chat_request(
            messages, model, stream=False, temperature=temperature,
            max_tokens=max_tokens, params=params,
        )  # fmt: skip
        request = dataclasses.replace(request, max_retries=0)  # the scheduler retries rows
        key = request_key(request.json or {})
        rows.append(MapRow(position, label, prompt, key, request))
    if store is not None and rows:
        stored = store.get_many([row.key for row in rows])
        for row in rows:
            if row.key in stored:
                row.text, row.usage = stored[row.key]
                row.cached = True
    return MapJob(rows, model, rows_in, max_tokens, store)


def parse_row_answer(raw: RawResponse, model: str, started: float) -> ChatResult:
    """The ChatResult of one row's completion."""
    text, reasoning, finish, usage, _ = parse_chat_completion(parse_json(raw, "chat"), model)
    elapsed = time.perf_counter() - started
    return ChatResult(
        text, model, reasoning, finish, usage, replayed_from=raw.replayed_from,
        time_to_first_token=elapsed, duration=elapsed,
    )  # fmt: skip


# --- the scheduler (sans-I/O) ----------------------------------------------------------


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
            raise InvalidRequestError(f"concurrency must be 1 or more, not {self.ceiling}.")
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
class MapProgress:
    """A snapshot for progress displays."""

    total: int
    done: int
    failed: int
    cached: int
    prompt_tokens: int
    completion_tokens: int
    dollars: float | None
    elapsed: float
    concurrency: int
    sent_done: int  # rows answered by this run (for the rate)

    @property
    def remaining(self) -> int:
        """Rows still without an answer or error."""
        return self.total - self.done - self.failed

    @property
    def rate(self) -> float | None:
        """Rows answered per second in this run."""
        return self.sent_done / self.elapsed if self.elapsed > 0 and self.sent_done else None

    @property
    def eta(self) -> float | None:
        """Seconds left at the current rate."""
        rate = self.rate
        return self.remaining / rate if rate else None


class MapFlow:
    """Decides which rows go out when, and what each ending means; moves no bytes.

    Drivers call :meth:`ready` for rows to send now, then :meth:`succeeded` or
    :meth:`failed` with each one's outcome, until :attr:`finished`. Rows that are
    answered are never handed out again.
    """

    def __init__(
        self,
        job: MapJob,
        concurrency: int,
        max_retries: int = 2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.job = job
        self.limit = AdaptiveLimit(concurrency)
        self.max_retries = max_retries
        self.clock = clock
        self.started = clock()
        self._queue: deque[MapRow] = deque(job.missing)
        self._waiting: list[tuple[float, MapRow]] = []  # (not before, row), after a 429/5xx
        self._open: set[int] = set()  # positions of the rows out right now
        self._fatal: DeepInfraError | None = None
        self.sent_done = 0
        for row in self._queue:
            row.error = None  # failed in an earlier run: try again

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
            row.error = message
            self._queue.clear()  # the rows not sent stay unanswered (None), not failed
            self._waiting.clear()
            return
        elif _repeatable(error) and row.attempts <= self.max_retries:
            self._waiting.append((self.clock() + self._backoff(row), row))
            return
        row.error = shorten(message, 300)

    @staticmethod
    def _backoff(row: MapRow) -> float:
        return min(8.0, 0.5 * 2.0 ** max(0, row.attempts - 1)) * random.uniform(0.75, 1.25)

    def progress(self) -> MapProgress:
        """Where the run stands."""
        rows = self.job.rows
        usage = _sum_usage(row.usage for row in rows if not row.cached)
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
        )


def _repeatable(error: BaseException) -> bool:
    """Failures after which a row may go out again without paying twice: a gateway that
    did not pass it on (502/503/504), or a connection lost before any answer. Not a 500
    (the model may have run) nor a read timeout (it may still be running)."""
    if isinstance(error, ServerError):
        return error.status_code in (502, 503, 504)
    return isinstance(error, APIConnectionError) and not isinstance(error, APITimeoutError)


ProgressCallback = Callable[[MapProgress], None]
Finish = Callable[[MapRow, RawResponse, float], ChatResult]


class _Ticker:
    """Calls the progress callback at most every ``interval`` seconds (and at the end)."""

    def __init__(self, callback: ProgressCallback | None, flow: MapFlow, interval: float):
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
    flow: MapFlow,
    finish: Finish,
    on_progress: ProgressCallback | None = None,
    interval: float = 0.25,
) -> None:
    """Drive the flow with a thread per open request; Ctrl-C hangs up on all of them."""
    pool = start_pool(flow.limit.ceiling, "deepinfra-map")
    stop = threading.Event()
    futures: dict[concurrent.futures.Future[tuple[RawResponse, float]], tuple[MapRow, int]] = {}
    tick = _Ticker(on_progress, flow, interval)

    def send(request: ApiRequest) -> tuple[RawResponse, float]:
        with transport.abortable(stop):
            started = time.perf_counter()
            return transport.send(request), started

    try:
        tick(force=True)
        while not flow.finished:
            for row, epoch in flow.ready():
                futures[pool.submit(send, row.request)] = (row, epoch)
            if not futures:  # only rows waiting out a Retry-After
                time.sleep(tick.timeout())
                tick()
                continue
            done, _ = wait_first(pool, futures, tick.timeout())
            for future in done:
                row, epoch = futures.pop(future)
                _settle(flow, finish, row, epoch, future.exception, future.result)
            tick()
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        if futures:  # stopped early: hang up on the requests still open
            transport.abort(stop)
    tick(force=True)


async def run_async(
    transport: AsyncTransport,
    flow: MapFlow,
    finish: Finish,
    on_progress: ProgressCallback | None = None,
    interval: float = 0.25,
) -> None:
    """Drive the flow with one task per open request; cancelling cancels them all."""
    tasks: dict[asyncio.Future[tuple[RawResponse, float]], tuple[MapRow, int]] = {}
    tick = _Ticker(on_progress, flow, interval)

    async def send(request: ApiRequest) -> tuple[RawResponse, float]:
        started = time.perf_counter()
        return await transport.send(request), started

    try:
        tick(force=True)
        while not flow.finished:
            for row, epoch in flow.ready():
                tasks[asyncio.ensure_future(send(row.request))] = (row, epoch)
            if tasks:
                done, _ = await asyncio.wait(
                    tasks, timeout=tick.timeout(), return_when=asyncio.FIRST_COMPLETED
                )
            else:
                await asyncio.sleep(tick.timeout())
                done = set()
            for task in done:
                row, epoch = tasks.pop(task)
                _settle(flow, finish, row, epoch, task.exception, task.result)
            tick()
    finally:
        for task in tasks:
            task.cancel()
    tick(force=True)


def _settle(
    flow: MapFlow,
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
