"""The rows of a map: reading the data, rendering the template, planning the requests,
and the results (rows, job, result, progress) with their usage sums.

Rules it keeps: nothing here sends a request or touches the disk but through the
:class:`~deepinfra_magic.maps.store.AnswerStore` it is handed; a mistake in the data or the
template is an :class:`InvalidArgumentError` raised before anything is sent; pandas is
never imported unless the data already is a pandas object (or a typed answer asks for a
frame); a cost comes from ``ModelInfo.cost``, the one place prices are applied. Rows whose
requests are identical (the same key) are one *distinct prompt*: sent once, and its
answer (or error) is every such row's. With a schema the key holds the schema's
fingerprint instead of the ``response_format`` sent, so JSON mode reuses the answers
and a changed schema asks again.
"""

from __future__ import annotations

import dataclasses
import math
import string
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, overload

from .._protocol import ApiRequest, chat_request
from ..errors import APIStatusError, DeepInfraError, InvalidArgumentError
from ..schema import Schema, SchemaValidationError, refuses_json_schema
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
    parsed: Any = None  # the typed answer, with a schema
    repairs: int = 0  # repair requests sent for this row (at most one)
    refusals: int = 0  # json_schema refusals met (the row is then sent in JSON mode once)
    system: str | None = None  # the system prompt as given (before a schema adds to it)

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
    schema: Schema | None = None

    @property
    def distinct(self) -> int:
        """Distinct prompts among the rows (each sent once, its answer shared)."""
        return len({row.key for row in self.rows})

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

    def output(self, prefix: str = "") -> Any:
        """A list of the values, or a Series on the input's index for pandas input. With a
        schema, a DataFrame with one typed column per field (``prefix_field`` with a
        ``prefix``) on the input's index; a failed row's fields are <NA>."""
        if self.schema is not None:
            index = self.data.source.index if self.data.source is not None else None
            parsed = [row.parsed if row.answered else None for row in self.rows]
            return self.schema.to_frame(parsed, index=index, prefix=prefix)
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
    """A rough token count for estimates only: characters ÷ 4, about right for Latin text
    in the tokenizers of today's chat models (it undercounts code and most other scripts)."""
    return max(1, math.ceil(len(text) / 4))


@dataclass
class MapJob:
    """A planned run: every row's request and key, with earlier answers already filled in.
    Rows with the same key share one request (the first of them, :attr:`missing`)."""

    rows: list[MapRow]
    model: str
    data: MapInput
    max_tokens: int | None
    store: AnswerStore | None
    schema: Schema | None = None
    json_mode: bool = False  # typed answers in JSON mode (the server refused json_schema)
    groups: dict[str, list[MapRow]] = dataclasses.field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.groups = {}
        for row in self.rows:
            self.groups.setdefault(row.key, []).append(row)

    @property
    def missing(self) -> list[MapRow]:
        """The distinct prompts that still need an answer: one row per key, the first."""
        return [group[0] for group in self.groups.values() if not group[0].answered]

    @property
    def distinct(self) -> int:
        """How many distinct prompts the rows hold."""
        return len(self.groups)

    def estimate(self, info: ModelInfo | None) -> CostEstimate:
        """The cost of the missing prompts at the catalog's prices (an upper bound): input
        tokens from the rendered prompts and system prompt (:func:`estimate_tokens`),
        output tokens ``max_tokens`` each."""
        missing = self.missing
        prompt = sum(estimate_tokens((row.system or "") + row.prompt) for row in missing)
        completion = (self.max_tokens or 0) * len(missing)
        dollars = info.cost(Usage(prompt, completion, prompt + completion)) if info else None
        return CostEstimate(len(missing), prompt, completion, dollars)

    def result(self, elapsed: float = 0.0, interrupted: bool = False) -> MapResult:
        """The rows as they stand."""
        return MapResult(self.rows, self.model, self.data, elapsed, interrupted, None, self.schema)

    def finish_row(self, row: MapRow, result: ChatResult) -> None:
        """Record an answer, on disk first: a Ctrl-C landing in between must not leave a row
        that counts as answered but would be asked again after a restart. Every row of the
        same prompt gets it; its usage is counted once, on ``row``."""
        if self.store is not None:
            self.store.put(row.key, self.model, result.text, result.usage)
        for each in self.groups.get(row.key, [row]):
            each.text = result.text
            each.usage = result.usage if each is row else None
            each.parsed = result.parsed
            each.error = None
            each.replayed_from = result.replayed_from

    def fail_row(self, row: MapRow, message: str | None) -> None:
        """Keep why a prompt failed on each of its rows (None: clear it for a retry)."""
        for each in self.groups.get(row.key, [row]):
            if not each.answered:
                each.error = message

    def parse(self, text: str) -> Any:
        """A reply's typed value (None without a schema); SchemaValidationError if it does
        not fit."""
        return self.schema.parse(text) if self.schema is not None else None

    def repair(self, row: MapRow, error: BaseException) -> bool:
        """For a reply that does not fit the schema, the row's one repair: its request
        becomes the repair request (the reply and what is wrong sent back). False when it
        is no such error, or the row had its repair."""
        if self.schema is None or not isinstance(error, SchemaValidationError) or row.repairs:
            return False
        body = dict(row.request.json or {})
        body["messages"] = [
            *body.get("messages", []),
            *self.schema.repair_messages(error.raw_text, error),
        ]
        row.request = dataclasses.replace(row.request, json=body)
        row.repairs += 1
        return True

    def refused(self, row: MapRow, error: BaseException) -> bool:
        """For a server that refuses ``json_schema``, switch every unanswered row to JSON
        mode (the schema in the system message): True, and the caller sends ``row`` again
        (once: a row refused in JSON mode too fails)."""
        if self.schema is None or not isinstance(error, APIStatusError) or row.refusals:
            return False
        if error.status_code is None or not refuses_json_schema(error.status_code, error.message):
            return False
        row.refusals += 1
        if not self.json_mode:
            self.json_mode = True
            for row in self.rows:
                if not row.answered:
                    row.request = _typed(row.request, row, self.schema, json_mode=True)
        return True

    def retry_failed(self) -> None:
        """Forget the errors of rows not answered, before a run sends them again."""
        for row in self.rows:
            if not row.answered:
                row.error = None


def _typed(request: ApiRequest, row: MapRow, schema: Schema, json_mode: bool) -> ApiRequest:
    """A row's request asking for ``schema``: json_schema, or JSON mode."""
    body = dict(request.json or {})
    base = [{"role": "system", "content": row.system}] if row.system else []
    base.append({"role": "user", "content": row.prompt})
    body["messages"], body["response_format"] = schema.request_parts(base, json_mode)
    return dataclasses.replace(request, json=body)


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
    schema: Schema | None = None,
    json_mode: bool = False,
) -> MapJob:
    """Render every prompt, build its request and key, and fill in stored answers (with a
    ``schema``, only those that still parse)."""
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
        body = request.json or {}
        key = answer_key({**body, "schema": schema.fingerprint} if schema else body)
        row = MapRow(position, label, prompt, key, request, system=system)
        if schema is not None:
            row.request = _typed(request, row, schema, json_mode)
        rows.append(row)
    if store is not None and rows:
        stored = store.get_many([row.key for row in rows])
        for row in rows:
            if row.key in stored:
                text, usage = stored[row.key]
                try:
                    row.parsed = schema.parse(text) if schema is not None else None
                except DeepInfraError:
                    continue  # not an answer this schema takes: ask again
                row.text, row.usage = text, usage
                row.cached = True
    return MapJob(rows, model, rows_in, max_tokens, store, schema, json_mode)


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
    distinct: int = 0  # distinct prompts among the rows (0: not counted)

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
