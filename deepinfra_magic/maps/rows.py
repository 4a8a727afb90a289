"""The rows of a map: reading the data, rendering the template, planning the requests,
and the results (rows, job, result, progress) with their usage sums.

Rules it keeps: nothing here sends a request or touches the disk but through the
:class:`~deepinfra_magic.maps.store.AnswerStore` it is handed; a mistake in the data or the
template is an :class:`InvalidArgumentError` raised before anything is sent; pandas is
never imported unless the data already is a pandas object; a cost comes from
``ModelInfo.cost``, the one place prices are applied.
"""

from __future__ import annotations

import dataclasses
import json
import math
import string
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, overload

from .._protocol import ApiRequest, chat_request
from ..errors import InvalidArgumentError
from ..types import ChatResult, Usage
from .store import AnswerStore, answer_key

if TYPE_CHECKING:
    from ..catalog import ModelInfo

__all__ = [
    "CostEstimate",
    "MapInput",
    "MapInterrupted",
    "MapJob",
    "MapProgress",
    "MapResult",
    "MapRow",
    "RowError",
    "plan_map",
    "read_rows",
    "render",
    "sum_usage",
]

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
        raise InvalidArgumentError(
            f"DATA must be a DataFrame, Series, list or other collection of rows, not "
            f"{type(data).__name__}."
        )
    if isinstance(data, Mapping):
        return MapInput(list(data.values()), list(data.keys()), "items")
    try:
        items = list(data)
    except TypeError:
        raise InvalidArgumentError(
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
        raise InvalidArgumentError(
            f"The template uses {{{name}}}, which {where}; write {{{{ and }}}} for literal braces."
        ) from None
    except (ValueError, IndexError) as exc:
        raise InvalidArgumentError(
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
class MapResult(Sequence[str | RowError | None]):
    """The answers in input order, with counts, usage and what went wrong. It is a sequence
    of them: ``len()``, iteration, ``result[i]`` and ``list(result)`` give ``values`` (by
    position; ``output()`` is on a pandas input's index)."""

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

    def __len__(self) -> int:
        return len(self.rows)

    @overload
    def __getitem__(self, index: int) -> str | RowError | None: ...

    @overload
    def __getitem__(self, index: slice) -> list[str | RowError | None]: ...

    def __getitem__(
        self, index: int | slice
    ) -> str | RowError | list[str | RowError | None] | None:
        if isinstance(index, slice):
            return [row.value() for row in self.rows[index]]
        return self.rows[index].value()

    def __iter__(self) -> Iterator[str | RowError | None]:
        return (row.value() for row in self.rows)

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
        return sum_usage(row.usage for row in self.rows if not row.cached)

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


def sum_usage(usages: Iterable[Usage | None]) -> Usage:
    """Tokens and dollars of several answers (the dollars stay None if none was priced)."""
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
        dollars = info.cost(Usage(prompt, completion, prompt + completion)) if info else None
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
        raise InvalidArgumentError("The template is empty: write the prompt, with {column} fields.")
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
        key = answer_key(request.json or {})
        rows.append(MapRow(position, label, prompt, key, request))
    if store is not None and rows:
        stored = store.get_many([row.key for row in rows])
        for row in rows:
            if row.key in stored:
                row.text, row.usage = stored[row.key]
                row.cached = True
    return MapJob(rows, model, rows_in, max_tokens, store)


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
