"""The map family: ``%%deepinfra_map`` (a prompt over every row of a table, at once or
through the Batch API), ``%deepinfra_batches`` and ``%deepinfra_usage``.

Rules kept here:

* The options are declared right above each magic and read through it.
* Nothing is sent above ``map_confirm_dollars`` without ``--yes`` (:func:`confirm_cost`).
* Answers are kept in the answer store: Ctrl-C keeps the rows answered, a re-run sends
  only the missing ones, and a Batch API job keeps running when the cell stops waiting.
* This module is the cell's half only: the rows, the scheduler and the Batch API live in
  the library (``mapping``, ``batches``) and load on the first map, with the display.
* ``--schema`` is read before any request; its answers become typed columns
  (``--column NAME``: ``NAME_field``; ``--column ''``: bare field names; ``-o``: a frame).
* The summary shows the estimate made before sending beside what the run used.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from IPython.core.error import UsageError
from IPython.core.magic import magics_class, no_var_expand

from ..errors import DeepInfraError
from .arguments import (
    argument,
    bounded_float,
    bounded_int,
    check_variable_name,
    magic_arguments,
    parse_argstring,
    parse_params,
    parser_of,
)
from .base import Family, Outcome, cell_magic, display, given, line_magic, maps, one_line_errors

if TYPE_CHECKING:
    from ..catalog import ModelCatalog
    from ..client import DeepInfraClient

__all__ = [
    "MapCall",
    "MapMagics",
    "batches_listing",
    "collect_batch",
    "confirm_cost",
    "map_data",
    "run_map",
    "seat_spend",
    "usage_report",
]


@magics_class
class MapMagics(Family):
    """``%%deepinfra_map``, ``%deepinfra_batches`` and ``%deepinfra_usage``."""

    @no_var_expand
    @cell_magic
    @one_line_errors
    @magic_arguments("%%deepinfra_map", "Ask the cell's template for every row of DATA.")
    @argument("data", metavar="DATA", help="a DataFrame, Series, list or iterable")
    @argument("-o", "--out", metavar="NAME")
    @argument("--column", metavar="NAME")
    @argument("-m", "--model")
    @argument("-s", "--system")
    @argument("-t", "--temperature", type=bounded_float(0.0, 2.0))
    @argument("--max-tokens", type=bounded_int(1))
    @argument("-p", "--param", action="append", metavar="KEY=VALUE")
    @argument("--concurrency", type=bounded_int(1, 256))
    @argument("--batch-api", action="store_true")
    @argument("--yes", action="store_true", help="send even above map_confirm_dollars")
    @argument(
        "--schema",
        metavar="SPEC",
        help="typed columns: a pydantic model, dataclass, TypedDict, Enum or JSON Schema dict "
        "in the notebook, or inline: 'label: a|b, score: float, tags: list[str], ok: bool?'",
    )
    def deepinfra_map(self, line: str, cell: str) -> None:
        """Ask the cell (a template) for every row of DATA, many requests at once.

        ``{column}`` fills in a DataFrame's columns; ``{}`` or ``{item}`` each item. Answers
        are kept on disk: a re-run sends only rows without one. ``--batch-api`` submits the
        rows to DeepInfra's Batch API (24 h, 20% cheaper). Ctrl-C keeps finished rows.
        Rows with the same prompt are sent once. ``--schema SPEC`` gives typed columns.
        """
        from ..schema import Schema

        args = parse_argstring(self.deepinfra_map, line)
        params = parse_params(args.param, parser_of(self.deepinfra_map))  # before any request
        check_variable_name(args.out)
        schema = None if args.schema is None else Schema.from_spec(args.schema, self.ip.user_ns)
        bare = schema is not None and args.column == ""  # typed columns named as the fields
        if not bare:
            check_variable_name(args.column, "--column")
        # map_data checks that --column has a DataFrame to fill ('' shown as typed)
        data = map_data(self.ip.user_ns, args.data, "''" if bare else args.column)
        template = cell.strip("\n")
        if not template.strip():
            raise UsageError(
                "%%deepinfra_map: the cell is empty; write the prompt, with {column} or {} fields."
            )
        client, catalog, model = self.session.pick_model(args.model, self.default_model, warn=False)
        if catalog is not None and catalog.is_image_model(model):
            raise UsageError(f"%%deepinfra_map: {model} is an image model; pick a text model.")
        temperature = given(args.temperature, self.temperature)
        max_tokens = given(args.max_tokens, self.max_tokens)
        job = client.plan_map(
            data, template, model, system=args.system, temperature=temperature,
            max_tokens=max_tokens, schema=schema, **params,
        )  # fmt: skip
        call = MapCall(
            args.concurrency or self.map_concurrency, args.batch_api,
            self.batch_poll_interval, self.map_confirm_dollars, args.yes,
        )  # fmt: skip
        estimate = confirm_cost(job, catalog, call)
        view = display.maps.MapProgressView(self.frontend(), model)
        outcome = run_map(client, job, view, call, [], estimate)
        result = self.last_map = outcome.value
        if args.out:
            self.ip.user_ns[args.out] = result.output()
        if schema is not None and args.column is not None:
            typed = result.output(prefix=args.column)
            for name in typed.columns:  # by position: an index may repeat labels
                data[name] = typed[name].array
        elif args.column:
            data[args.column] = result.values  # by position: an index may repeat labels
        self.end_cell(outcome)  # a plain interrupt, like %%deepinfra: the summary said the rest

    @no_var_expand
    @line_magic
    @one_line_errors
    @magic_arguments("%deepinfra_batches", "List Batch API jobs, or collect one by id.")
    @argument("batch_id", nargs="?", metavar="ID")
    @argument("--limit", type=bounded_int(1, 100), default=20)
    def deepinfra_batches(self, line: str) -> None:
        """List Batch API jobs; with an ID, show that job and, once it has finished, collect
        its answers into the answer store (re-running the ``%%deepinfra_map`` cell then
        fills them in)."""
        args = parse_argstring(self.deepinfra_batches, line)
        client = self.session.ready_client()
        if args.batch_id is not None:
            print(collect_batch(client, args.batch_id))
            return
        table = batches_listing(client, args.limit)
        self.show(table, table.replace("`", ""))

    @line_magic
    @one_line_errors
    def deepinfra_usage(self, line: str) -> None:
        """What this kernel session has spent: requests, tokens, images and dollars, by
        kind (chat, images, map, batch) and by model. ``--reset`` starts the count over."""
        shown = usage_report(line.strip())
        if shown is not None:
            seat = seat_spend(self.session.scope, self.session.usage.total().dollars)
            if seat:
                shown = (f"{shown[0]}\n\n{seat}", f"{shown[1]}\n\n{display.plain(seat)}")
            self.show(*shown)


class MapCall(NamedTuple):
    """How to send a planned map: at once with ``concurrency`` requests open, or as a
    Batch API job polled every ``poll_interval`` seconds; above ``limit`` dollars only
    when ``yes``."""

    concurrency: int
    batch_api: bool = False
    poll_interval: float = 60.0
    limit: float = float("inf")
    yes: bool = False


def map_data(user_ns: Mapping[str, Any], name: str, column: str | None) -> Any:
    """The object DATA names in the notebook, checked for --column."""
    if name not in user_ns:
        raise UsageError(
            f"%%deepinfra_map: {name!r} is not defined; DATA names a DataFrame, Series "
            "or list in the notebook."
        )
    data = user_ns[name]
    kind = type(data)
    if column and not (kind.__name__ == "DataFrame" and kind.__module__.startswith("pandas")):
        raise UsageError(
            f"%%deepinfra_map: --column needs a pandas DataFrame, and {name} is a "
            f"{kind.__name__}; use -o NAME instead."
        )
    return data


def confirm_cost(
    job: maps.MapJob, catalog: ModelCatalog | None, call: MapCall
) -> maps.rows.CostEstimate | None:
    """Refuse, before anything is sent, a run whose estimate is above the call's limit
    (unless ``yes``); else the estimate, for the summary (None when nothing is to send).
    Its input tokens are counted from the rendered prompts (characters ÷ 4), its output
    tokens are ``max_tokens`` per distinct prompt; dollars at catalog (or batch) prices."""
    info = catalog.get(job.model) if catalog is not None else None
    estimate = job.estimate(info)
    if not estimate.rows:
        return None
    dollars = estimate.dollars
    if dollars is None:
        return estimate
    if call.batch_api:
        dollars *= maps.DISCOUNT
        estimate = dataclasses.replace(estimate, dollars=dollars)
    if dollars > call.limit and not call.yes:
        raise UsageError(
            f"%%deepinfra_map: {estimate.rows} rows to send may cost up to ${dollars:.2f} "
            f"(~{estimate.prompt_tokens:,} tokens in, ≤ {estimate.max_completion_tokens:,} "
            f"out), above map_confirm_dollars (${call.limit:g}): add --yes to "
            "send, or lower --max-tokens."
        )
    return estimate


def estimate_note(estimate: maps.rows.CostEstimate, result: maps.MapResult) -> str:
    """The estimate made before sending beside what the run used, as one summary line."""
    guessed = f"~{estimate.prompt_tokens:,} tokens in / ≤ {estimate.max_completion_tokens:,} out"
    if estimate.dollars is not None:
        guessed = f"up to {display.money(estimate.dollars)} at catalog prices ({guessed})"
    usage = result.usage
    actual = f"{usage.prompt_tokens:,} in / {usage.completion_tokens:,} out"
    if usage.estimated_cost is not None:
        actual += f", {display.money(usage.estimated_cost)}"
    return f"*Estimated before sending: {guessed} · actual: {actual}.*"


def run_map(
    client: DeepInfraClient,
    job: maps.MapJob,
    view: Any,
    call: MapCall,
    notes: list[str],
    estimate: maps.rows.CostEstimate | None = None,
) -> Outcome:
    """Send a planned map's missing rows, then show the summary (with ``notes``, the
    ``estimate`` beside the actual use, and any the Batch API adds); ``value`` is the
    :class:`MapResult` with every row answered."""
    sent = len(job.missing)
    started = time.perf_counter()
    outcome = Outcome()
    try:
        if call.batch_api:
            _map_by_batch(client, job, view, notes, call.poll_interval)
        elif job.missing:
            client.run_map(job, concurrency=call.concurrency, on_progress=view.update)
    except (KeyboardInterrupt, DeepInfraError) as exc:
        outcome.problem = exc
    result: maps.MapResult = job.result(time.perf_counter() - started, outcome.interrupted)
    if outcome.interrupted and call.batch_api:
        result.interrupted = False  # the job runs on: nothing was lost
    if estimate is not None:
        notes.insert(0, estimate_note(estimate, result))
    summary = display.maps.map_summary(result, sent_rows=sent, note="\n\n".join(notes))
    view.finish(summary, stopped=outcome.interrupted)
    outcome.value = result
    return outcome


def _map_by_batch(
    client: DeepInfraClient, job: maps.MapJob, view: Any, notes: list[str], poll_interval: float
) -> None:
    """Submit the missing rows as a Batch API job (or pick up the one already running
    for them), wait for it with a status line, then put its answers on the rows."""
    from ..errors import ServerError

    if not job.missing:
        return
    batch_id = maps.batch.pending_batch(job)
    if batch_id is None:
        batch_id = client.submit_batch(job).id
        first = f"Submitted batch `{batch_id}`"
    else:
        first = f"Picked up batch `{batch_id}`, submitted earlier for these rows"
    view.update_status(first)

    def show(batch: maps.BatchJob) -> None:
        view.update_status(f"{first} · {batch.describe().split(': ', 1)[1]}")

    try:
        batch = client.wait_batch(batch_id, poll_interval=poll_interval, on_status=show)
    except KeyboardInterrupt:
        notes.append(
            f"*⏸ Stopped waiting: batch `{batch_id}` keeps running on DeepInfra. Run this "
            f"cell again, or `%deepinfra_batches {batch_id}`, to collect its answers.*"
        )
        raise
    client.collect_batch(batch, job)  # an expired job keeps what it did
    if batch.status != "completed":
        raise ServerError(
            f"Batch {batch_id} ended {batch.status} ({batch.describe()}); run the cell "
            "again to submit the remaining rows."
        )
    notes.append(f"*Batch API job `{batch_id}` (20% below real-time prices).*")


def batches_listing(client: DeepInfraClient, limit: int) -> str:
    """The account's recent Batch API jobs as a Markdown table, marking those sent from
    here (the answer store knows them)."""
    from ..errors import InvalidRequestError

    store = client.answer_store() if client.recording is None else None
    known = [job["id"] for job in store.batches()][:limit] if store else []
    try:
        listed = client.batches(limit)
    except InvalidRequestError:
        # DeepInfra's OpenAPI marks ``after`` as required when listing: if the list is
        # refused, show the jobs submitted from here, one by one.
        listed = [client.batch(batch_id) for batch_id in known]
    return display.tables.batches_table(listed, set(known))


def collect_batch(client: DeepInfraClient, batch_id: str) -> str:
    """One job's state; once it has finished, its answers go into the answer store (a
    re-run of the map cell then fills them in). Returns the line to print."""
    batch = client.batch(batch_id)
    if not batch.finished:
        return f"{batch.describe()}. Answers can be collected once it is completed."
    outcomes = client.collect_batch(batch)
    if outcomes is None:
        return f"{batch.describe()}. It has no answers to collect."
    answered = sum(outcome.text is not None for outcome in outcomes.values())
    failed = len(outcomes) - answered
    return (
        f"{batch.describe()}. Collected {answered} answers"
        + (f" ({failed} rows failed)" if failed else "")
        + ": run the %%deepinfra_map cell again to fill them in (nothing is re-sent)."
    )


def seat_spend(scope: Any, spent: float) -> str:
    """A classroom seat's spend against its token's cap, from this session's tally ("" for a
    plain key, or a token without a cap)."""
    limit = getattr(scope, "spending_limit", None)
    if limit is None:
        return ""
    left = max(0.0, limit - spent)
    return (
        f"**This seat:** {display.money(spent)} of its {display.money(limit)} cap spent "
        f"({display.money(left)} left), by this session's own count."
    )


def usage_report(option: str) -> tuple[str, str] | None:
    """``%deepinfra_usage``: the session's totals as (Markdown, plain); ``--reset`` zeroes
    them (and says so, returning None)."""
    from ..usage import SESSION_USAGE

    if option not in ("", "--reset"):
        raise UsageError("%deepinfra_usage takes no arguments but --reset.")
    if option == "--reset":
        SESSION_USAGE.reset()
        print("Session usage reset to zero.")
        return None
    table = display.tables.usage_table(SESSION_USAGE)
    return table, display.plain(table)
