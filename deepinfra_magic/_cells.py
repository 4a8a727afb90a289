"""What a magic's cell does once its options are read: call the client, feed the display,
and keep what arrived when Ctrl-C or an error stops it.

Each function takes the client, where to show things and a small value object, and
returns what happened instead of raising midway, so the magics decide what to raise and
the interrupt handling can be tested without a shell. The notebook's namespaces come in
as plain dicts (``--see`` and ``--vars`` read them).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError

from ._markdown import first_code_block
from .display import (
    ImageGallery,
    ImageProgress,
    Publisher,
    ReplyView,
    StdoutReplyView,
    image_caption,
    money,
    reply_footer,
)
from .errors import DeepInfraError, InvalidRequestError, ServerError
from .notebook import CellLog, NotebookReferenceError
from .types import ChatResult, ContentDelta, ReasoningDelta

if TYPE_CHECKING:
    from .attachments import Attachment
    from .batches import BatchJob
    from .catalog import ModelCatalog
    from .client import ChatStream, DeepInfraClient
    from .conversation import Content
    from .images import ImageResult
    from .mapping import MapJob, MapResult

__all__ = [
    "ChatCall",
    "ChatTurn",
    "ImageCall",
    "MapCall",
    "Outcome",
    "batches_listing",
    "check_can_see",
    "check_image_from_chat",
    "check_image_model",
    "checked_recording",
    "collect_attachments",
    "collect_batch",
    "confirm_cost",
    "describe_output",
    "fill_template",
    "make_images",
    "map_data",
    "reply_ending",
    "run_map",
    "stream_reply",
    "template_namespace",
    "usage_report",
]


@dataclass
class Outcome:
    """What a cell produced (``value``), and what stopped it: Ctrl-C or an error."""

    value: Any = None
    problem: BaseException | None = None

    @property
    def interrupted(self) -> bool:
        """True when Ctrl-C stopped the cell (what arrived is in ``value``)."""
        return isinstance(self.problem, KeyboardInterrupt)


@dataclass(frozen=True)
class ChatTurn:
    """One exchange a cell asks for: what the user wrote (``prompt``) and what is sent
    (``content``: with attachments, or the error to explain), the model, extra request
    fields, whether the model may see images, the attachments for the footer, and a
    ``topic`` telling apart exchanges that one cell's source may ask about."""

    prompt: str
    content: Content
    model: str
    params: Mapping[str, Any] = field(default_factory=dict)
    can_see: bool = True
    attachments: list[Attachment] = field(default_factory=list)
    topic: str = ""

    @classmethod
    def asking(
        cls,
        prompt: str,
        model: str,
        params: Mapping[str, Any],
        can_see: bool,
        attachments: list[Attachment],
    ) -> ChatTurn:
        """A cell's prompt, sent with its attachments (images as parts, tables as text)."""
        content: Content = prompt
        if attachments:
            from .attachments import user_content

            content = user_content(prompt, attachments)
        return cls(prompt, content, model, params, can_see, attachments)


@dataclass(frozen=True)
class ChatCall:
    """One chat request of a cell: the messages with the conversation so far, the model,
    sampling settings, extra request fields, and whether to stream."""

    messages: list[dict[str, Any]]
    model: str
    temperature: float
    max_tokens: int
    params: Mapping[str, Any] = field(default_factory=dict)
    stream: bool = True


def stream_reply(
    client: DeepInfraClient, view: ReplyView | StdoutReplyView, call: ChatCall
) -> Outcome:
    """Feed the reply into the view; on Ctrl-C or an error keep what arrived. ``value``
    is the :class:`ChatResult` (marked interrupted, or carrying the error's message); the
    caller's ``view.finish`` shows its text: everything that was received.

    The placeholder is shown and the request made inside the try: an interrupt that
    lands before the first byte (even while the placeholder is being sent) is a stopped
    reply like any other, and the view still gets its final update.
    """
    reply: ChatStream | None = None
    options = {"temperature": call.temperature, "max_tokens": call.max_tokens, **call.params}
    try:
        view.start()
        if not call.stream:
            result = client.chat(call.messages, call.model, stream=False, **options)
            return Outcome(result)  # shown whole by the view's finish
        reply = client.chat(call.messages, call.model, **options)
        with reply:
            for event in reply:
                if isinstance(event, ContentDelta):
                    view.add_answer(event.text)
                elif isinstance(event, ReasoningDelta):
                    view.add_reasoning(event.text)
    except KeyboardInterrupt as exc:
        stopped = reply.partial(interrupted=True) if reply else None
        return Outcome(stopped or ChatResult("", call.model, interrupted=True), exc)
    except DeepInfraError as exc:
        failed = reply.partial(error=exc.message) if reply else None
        return Outcome(failed or ChatResult("", call.model, error=exc.message), exc)
    assert reply.result is not None
    return Outcome(reply.result)


def reply_ending(result: ChatResult, format_: str, timing: bool) -> tuple[str, str, str | None]:
    """The note under a reply (why it stopped, or where its code went), its footer, and
    with ``-f code`` the code to put into the next cell."""
    footer = reply_footer(result, timing=timing)
    arrived = bool(result.text or result.reasoning)
    if result.interrupted and arrived:
        kept = "the partial reply is kept (not added to the conversation)"
        return f"*⏹ Interrupted: {kept}.*", footer, None
    if result.interrupted:
        return "*⏹ Interrupted before the reply began.*", footer, None
    if result.error and not arrived:
        # Nothing to keep: the placeholder says so and the one-line error tells why.
        return "*⚠ No reply: the request failed (the error is below).*", "", None
    if result.error:
        kept = "what arrived is kept (not added to the conversation)"
        return f"*⚠ The reply stopped early: {kept}.*", footer, None
    if format_ != "code":
        return "", footer, None
    code = first_code_block(result.text)
    if code is None:
        return "*No code block in the reply, so nothing was put into the next cell.*", footer, None
    return "*⤵ The first code block was put into the next cell.*", footer, code


@dataclass(frozen=True)
class ImageCall:
    """One image cell: the prompt, the model, how many images, extra request fields, and
    where to save them (None: shown only)."""

    prompt: str
    model: str
    count: int = 1
    extra: Mapping[str, Any] = field(default_factory=dict)
    save: str | None = None


@dataclass(frozen=True)
class MapCall:
    """How to send a planned map: at once with ``concurrency`` requests open, or as a
    Batch API job polled every ``poll_interval`` seconds; above ``limit`` dollars only
    when ``yes``."""

    concurrency: int
    batch_api: bool = False
    poll_interval: float = 60.0
    limit: float = float("inf")
    yes: bool = False


def make_images(
    client: DeepInfraClient, publish: Publisher, rich: bool, call: ImageCall
) -> Outcome:
    """Request images concurrently, show them in request order as they arrive, then the
    caption. Ctrl-C keeps what arrived and the caption says so; ``value`` is the merged
    :class:`ImageResult` (None when no image arrived)."""
    from .images import ImageArrived, ImageResult

    progress = ImageProgress(publish, call.model, call.count, rich)
    gallery = ImageGallery(publish, call.count, rich, keep_files=not call.save)
    parts: list[ImageResult] = []
    started = time.perf_counter()
    outcome = Outcome()
    try:
        progress.start()
        # Iterated in place, never kept in a variable: when Ctrl-C unwinds this frame the
        # generator is dropped at once, and closing it hangs up on the requests still open.
        for event in client.iter_images(
            call.prompt, call.model, n=call.count, heartbeat=1.0, **call.extra
        ):
            if isinstance(event, ImageArrived):
                parts.append(event.result)
                gallery.add(event.result)
            else:
                progress.tick(event.elapsed, event.done)
    except (KeyboardInterrupt, DeepInfraError) as exc:
        outcome.problem = exc
    gallery.flush()
    if not parts:
        failed = "⏹ Interrupted: no image was kept." if outcome.interrupted else None
        progress.finish(
            failed or "⚠ No image: failed.", {"model": call.model, "prompt": call.prompt}
        )
        return outcome
    result = outcome.value = ImageResult.merge(parts)
    caption = image_caption(result, time.perf_counter() - started)
    kept = len(result.images)
    if outcome.interrupted:
        caption += f" · ⏹ interrupted: {kept} of {call.count} images kept"
    elif kept < call.count:
        caption += f" · ⚠ {kept} of {call.count} images"
    if call.save:
        paths = result.save(call.save)
        caption += " · saved to " + ", ".join(f"`{p}`" for p in paths)
    progress.finish(caption, result.metadata())
    return outcome


def run_map(
    client: DeepInfraClient, job: MapJob, view: Any, call: MapCall, notes: list[str]
) -> Outcome:
    """Send a planned map's missing rows, then show the summary (with ``notes``, and any
    the Batch API adds); ``value`` is the :class:`MapResult` with every row answered."""
    from .map_display import map_summary

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
    result: MapResult = job.result(time.perf_counter() - started, outcome.interrupted)
    if outcome.interrupted and call.batch_api:
        result.interrupted = False  # the job runs on: nothing was lost
    view.finish(map_summary(result, sent_rows=sent, note="\n\n".join(notes)))
    outcome.value = result
    return outcome


def _map_by_batch(
    client: DeepInfraClient, job: MapJob, view: Any, notes: list[str], poll_interval: float
) -> None:
    """Submit the missing rows as a Batch API job (or pick up the one already running
    for them), wait for it with a status line, then put its answers on the rows."""
    if not job.missing:
        return
    store = job.store
    batch_id = store.pending_batch_for(r.key for r in job.missing) if store else None
    if batch_id is None:
        batch_id = client.submit_batch(job).id
        first = f"Submitted batch `{batch_id}`"
    else:
        first = f"Picked up batch `{batch_id}`, submitted earlier for these rows"
    view.update_status(first)

    def show(batch: BatchJob) -> None:
        view.update_status(f"{first} · {batch.describe().split(': ', 1)[1]}")

    try:
        batch = client.wait_batch(batch_id, poll_interval=poll_interval, on_status=show)
    except KeyboardInterrupt:
        notes.append(
            f"*⏸ Stopped waiting: batch `{batch_id}` keeps running on DeepInfra. Run this "
            f"cell again, or `%deepinfra_batches {batch_id}`, to collect its answers.*"
        )
        raise
    if batch.output_file_id or batch.error_file_id:  # an expired job keeps what it did
        client.batch_results(batch, job)
    elif store is not None:
        store.set_batch_status(batch_id, batch.status)  # never picked up again
    if batch.status != "completed":
        raise ServerError(
            f"Batch {batch_id} ended {batch.status} ({batch.describe()}); run the cell "
            "again to submit the remaining rows."
        )
    notes.append(f"*Batch API job `{batch_id}` (20% below real-time prices).*")


def confirm_cost(job: MapJob, catalog: ModelCatalog | None, call: MapCall) -> str:
    """Refuse, before anything is sent, a run whose estimate is above the call's limit
    (unless ``yes``); else the estimate as a note for the summary ("" when none)."""
    from .batches import DISCOUNT

    info = catalog.get(job.model) if catalog is not None else None
    estimate = job.estimate(info)
    dollars = estimate.dollars
    if dollars is None or not estimate.rows:
        return ""
    if call.batch_api:
        dollars *= DISCOUNT
    if dollars > call.limit and not call.yes:
        raise UsageError(
            f"%%deepinfra_map: {estimate.rows} rows to send may cost up to ${dollars:.2f} "
            f"(~{estimate.prompt_tokens:,} tokens in, ≤ {estimate.max_completion_tokens:,} "
            f"out), above map_confirm_dollars (${call.limit:g}): add --yes to "
            "send, or lower --max-tokens."
        )
    return f"*Estimated before sending: up to {money(dollars)} at catalog prices.*"


def batches_listing(client: DeepInfraClient, limit: int) -> str:
    """The account's recent Batch API jobs as a Markdown table, marking those sent from
    here (the answer store knows them)."""
    from .map_display import batches_table

    store = client.answer_store() if client.recording is None else None
    known = [job["id"] for job in store.batches()][:limit] if store else []
    try:
        listed = client.batches(limit)
    except InvalidRequestError:
        # DeepInfra's OpenAPI marks ``after`` as required when listing: if the list is
        # refused, show the jobs submitted from here, one by one.
        listed = [client.batch(batch_id) for batch_id in known]
    return batches_table(listed, set(known))


def collect_batch(client: DeepInfraClient, batch_id: str) -> str:
    """One job's state; once it has finished, its answers go into the answer store (a
    re-run of the map cell then fills them in). Returns the line to print."""
    store = client.answer_store() if client.recording is None else None
    batch = client.batch(batch_id)
    if not batch.finished:
        return f"{batch.describe()}. Answers can be collected once it is completed."
    if not (batch.output_file_id or batch.error_file_id):
        if store is not None:
            store.set_batch_status(batch.id, batch.status)
        return f"{batch.describe()}. It has no answers to collect."
    outcomes = client.batch_results(batch)
    answered = sum(outcome.text is not None for outcome in outcomes.values())
    failed = len(outcomes) - answered
    return (
        f"{batch.describe()}. Collected {answered} answers"
        + (f" ({failed} rows failed)" if failed else "")
        + ": run the %%deepinfra_map cell again to fill them in (nothing is re-sent)."
    )


def check_image_model(client: DeepInfraClient, catalog: ModelCatalog | None, model: str) -> None:
    """An image cell refuses a model the catalog lists as a text model (another server's
    list does not tell them apart)."""
    if catalog is not None and catalog.is_text_model(model) and not client.routes.generic:
        names = ", ".join(m.name for m in catalog.image_models[:4]) or "none listed"
        raise UsageError(
            f"%deepinfra_image: {model} is a text model; image models include {names} "
            "(see %deepinfra_models --images)."
        )


def check_image_from_chat(model: str, attaches: bool, params: Mapping[str, Any]) -> None:
    """``%%deepinfra`` with an image model makes an image: refuse what it cannot take."""
    from ._parsers import IMAGE_RESERVED

    if attaches:
        raise UsageError(
            f"%%deepinfra: {model} makes images from text; --see needs a chat model "
            "that can see (see %deepinfra_models --vision)."
        )
    clash = next((key for key in params if key in IMAGE_RESERVED), None)
    if clash is not None:
        raise UsageError(
            f"-p/--param cannot set {clash} here: {IMAGE_RESERVED[clash]} with %deepinfra_image."
        )


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


# --- the notebook as context (--see, --vars) ------------------------------------------


def collect_attachments(
    expressions: list[str],
    user_ns: dict[str, Any],
    global_ns: dict[str, Any],
    cells: CellLog,
    max_pixels: int,
) -> list[Attachment]:
    """Each ``--see EXPR`` as an attachment, or a one-line UsageError."""
    from .attachments import AttachmentError, attach, image_attachment
    from .notebook import ShownImage, see_target

    attached: list[Attachment] = []
    outputs = user_ns.get("Out", {})
    for expression in expressions:
        label = expression.strip()
        try:
            target = see_target(label, outputs, cells)
            if target is None:
                target = _evaluate(label, user_ns, global_ns)
            if _is_pyplot(target) and not target.get_fignums():
                target = cells.last_image()  # inline plots are closed once shown
                if target is None:
                    raise AttachmentError(f"{label}: no figure is open and none was shown.")
            shown = target if isinstance(target, list) else [target]
            for item in shown:
                if isinstance(item, ShownImage):
                    attached.append(image_attachment(item.data, label, max_pixels))
                else:
                    attached.append(attach(item, label, max_pixels=max_pixels))
        except (AttachmentError, NotebookReferenceError) as exc:
            raise UsageError(f"%%deepinfra --see {exc}") from None
    return attached


def _evaluate(expression: str, user_ns: dict[str, Any], global_ns: dict[str, Any]) -> Any:
    """``--see EXPR``'s value in the user namespace; a file path when it is not Python."""
    from .attachments import SUPPORTED_KINDS, AttachmentError

    try:
        return eval(expression, global_ns, user_ns)  # the user's own code, in their kernel
    except (NameError, SyntaxError) as exc:
        if Path(expression).expanduser().is_file():
            return expression
        reason = f"{type(exc).__name__}: {exc}"
        raise AttachmentError(f"{expression}: {reason}; --see takes {SUPPORTED_KINDS}.") from None
    except Exception as exc:
        raise AttachmentError(f"{expression}: {type(exc).__name__}: {exc}.") from None


def check_can_see(model: str, attachments: list[Attachment], catalog: ModelCatalog | None) -> bool:
    """Whether images may be sent to ``model``; a one-line error naming vision models
    when this cell attaches images to a model known not to see."""
    from .catalog import looks_like_vision_model

    can_see = catalog.can_see(model) if catalog is not None else None
    if can_see is None:
        can_see = True if looks_like_vision_model(model) else None
    if can_see is False and any(hasattr(a, "data_url") for a in attachments):
        vision = catalog.vision_models if catalog is not None else []
        names = ", ".join(m.name for m in vision[:4]) or "none in the catalog"
        raise UsageError(
            f"%%deepinfra: {model} cannot see images; vision models: {names} "
            "(pick one with -m; %deepinfra_models --vision lists them)."
        )
    return can_see is not False


def _is_pyplot(value: Any) -> bool:
    return getattr(value, "__name__", None) == "matplotlib.pyplot"


def describe_output(value: Any) -> str:
    """An output for a --vars template: a DataFrame as its text summary, else its repr."""
    from ._text import shorten
    from .attachments import describe_table

    if type(value).__module__.startswith("pandas") and type(value).__name__ in (
        "DataFrame",
        "Series",
    ):
        return describe_table(value).text
    text = repr(value)
    return text if len(text) <= 4000 else shorten(text, 4000)


def fill_template(prompt: str, shell: Any, cells: CellLog) -> str:
    """``--vars``: ``{name}``, ``{In[3]}``, ``{Out[3]}``, ``{Err}`` filled from the notebook."""
    from ._args import fill_variables

    try:
        return fill_variables(prompt, template_namespace(shell, cells))
    except NotebookReferenceError as exc:
        raise UsageError(f"--vars: {exc}") from None


def template_namespace(shell: Any, cells: CellLog) -> dict[str, Any]:
    """The user's variables for ``--vars``, with ``In``/``Out``/``Err`` resolving to cell
    sources, outputs (tables as text) and tracebacks."""
    from .notebook import reference_namespace

    history = shell.history_manager
    sources = list(history.input_hist_raw) if history is not None else []
    outputs = shell.user_ns.get("Out", {})
    return reference_namespace(shell.user_ns, sources, outputs, cells, describe_output)


def usage_report(option: str) -> tuple[str, str] | None:
    """``%deepinfra_usage``: the session's totals as (Markdown, plain); ``--reset`` zeroes
    them (and says so, returning None)."""
    from .map_display import usage_table
    from .usage import SESSION_USAGE

    if option not in ("", "--reset"):
        raise UsageError("%deepinfra_usage takes no arguments but --reset.")
    if option == "--reset":
        SESSION_USAGE.reset()
        print("Session usage reset to zero.")
        return None
    table = usage_table(SESSION_USAGE)
    return table, table.replace("`", "").replace("\\$", "$")


def checked_recording(paths: str) -> str:
    """``paths`` once every recording in it loads (else its one-line error)."""
    from .recording import Recording

    Recording.load(*paths.split(os.pathsep))
    return paths
