"""Tables and short reports: models, where the list came from, the conversation, spending,
batch jobs, and the model picker.

Rules kept here:

* Each table is returned as Markdown (and, where the Markdown would read badly as text, an
  aligned plain copy); the caller shows it. Cells are one line, with pipes and dollars
  escaped (:func:`table_cell`).
* Prompts and the system prompt are shown verbatim (``_markdown.verbatim``); replies are
  Markdown.
* The model picker's pick replaces its dropdown with a line of text (a
  :class:`~.output.LiveOutput`), so a saved notebook needs no kernel.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from .._markdown import verbatim
from .output import Frontend, LiveOutput, markdown_bundle, plain
from .reply import money

if TYPE_CHECKING:
    from ..catalog import ModelCatalog, ModelInfo
    from ..conversation import Conversation, Turn
    from ..maps import BatchJob
    from ..usage import UsageLedger, UsageTotals

__all__ = [
    "batches_table",
    "history_text",
    "markdown_price",
    "model_picker",
    "models_table",
    "source_status",
    "table_cell",
    "usage_table",
]


def models_table(
    models: list[ModelInfo],
    status: str,
    pattern: str | None,
    allowed: Collection[str] | None = None,
) -> tuple[str, str]:
    """The model list under its status line, as (Markdown table, aligned plain text).
    ``allowed`` (a classroom token's models): those are marked ✓ and the rest greyed."""
    header = "| Model | Type | Context | Price |\n|---|---|---|---|"
    rows = [
        f"| {_allowed_name(m.name, allowed)}{_deprecated_mark(m)} | {_kind(m)} "
        f"| {_context(m.context_length)} | {markdown_price(m)} |"
        for m in models
    ]
    if not rows:
        what = f" matching {pattern!r}" if pattern else ""
        body = f"No models{what}. A model that is not featured can still be used by name."
        return f"{status}\n\n{body}", f"{status}\n\n{body}"
    if allowed is not None:
        status += " · ✓ marks the models your token allows"
    text = _text_table(models, allowed)
    return f"{status}\n\n{header}\n" + "\n".join(rows), status + "\n\n" + text


def _allowed_name(name: str, allowed: Collection[str] | None) -> str:
    """A model's name cell: as code, marked ✓ when the token allows it, grey when not."""
    if allowed is None:
        return f"`{name}`"
    if name in allowed:
        return f"✓ `{name}`"
    return f'<span style="color:gray">{name}</span>'


def source_status(catalog: ModelCatalog) -> str:
    """Where the list came from and how old it is (a recording's: when it was made)."""
    if catalog.source == "recording" and not catalog.fetched_at:
        return "list from recording (not dated)"
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(catalog.fetched_at))
    made = "recorded " if catalog.source == "recording" else ""
    return f"list from {catalog.source} ({made}{when})"


def history_text(conversation: Conversation) -> tuple[str, str]:
    """The conversation the next cell continues, as (Markdown, plain text)."""
    sent = len(conversation.window())
    # (Markdown, plain) pairs: the plain text is built apart, so that asterisks in
    # prompts and replies (``2*3``, ``**bold**``) stay as they were written. Prompts and
    # the system prompt are shown verbatim (newlines and code kept); replies are Markdown.
    lines = [
        (
            f"**{_exchanges(len(conversation))}**, {_sent_note(sent, len(conversation))}.",
            f"{_exchanges(len(conversation))}, {_sent_note(sent, len(conversation))}.",
        )
    ]
    if conversation.system_prompt:
        lines.append(
            (
                f"**System:**\n\n{verbatim(conversation.system_prompt)}",
                f"System: {conversation.system_prompt}",
            )
        )
    first_sent = len(conversation) - sent
    for index, exchange in enumerate(conversation.exchanges):
        sent_here = index >= first_sent
        mark, plain_mark = ("", "") if sent_here else (" *(not sent)*", " (not sent)")
        where = f" ({exchange.label})" if exchange.label else ""
        extra = _attached_note(exchange)
        lines.append(
            (
                f"**You**{where}{mark}{extra}:\n\n{verbatim(exchange.prompt)}",
                f"You{where}{plain_mark}: {exchange.prompt}{extra}",
            )
        )
        lines.append(
            (
                f"**{exchange.model}**:\n\n{exchange.reply}",
                f"{exchange.model}: {exchange.reply}",
            )
        )
    markdown = "\n\n".join(pair[0] for pair in lines)
    plain = "\n\n".join(pair[1] for pair in lines)
    return markdown, plain


def _deprecated_mark(model: ModelInfo) -> str:
    """The table's note for a deprecated model (empty otherwise)."""
    if model.deprecated is None:
        return ""
    successor = f", use `{model.replaced_by}`" if model.replaced_by else ""
    return f" ⚠ deprecated{successor}"


def _kind(model: ModelInfo) -> str:
    """The Type column: ``text``, ``image``, or ``text, vision`` for models that can see."""
    return f"{model.kind}, vision" if model.vision else model.kind


def markdown_price(model: ModelInfo) -> str:
    """The price for the Markdown table (``markdown_bundle`` escapes its dollars)."""
    return model.price_text() or "—"


def _attached_note(exchange: Turn) -> str:
    """`` [+ 1 image, 1 table]`` after a prompt sent with attachments (as the exchange
    notes them; else its image parts are counted)."""
    if exchange.attached:
        return f" [+ {exchange.attached}]"
    content = exchange.content
    if not isinstance(content, list):
        return ""
    images = sum(1 for part in content if part.get("type") == "image_url")
    return f" [+ {images} image{'s' if images != 1 else ''}]" if images else ""


def _exchanges(count: int) -> str:
    return f"{count} exchange" if count == 1 else f"{count} exchanges"


def _sent_note(sent: int, total: int) -> str:
    if sent == 0:
        return "none is sent with the next cell (max_history is 0)"
    if sent == total:
        return "it is sent with the next cell" if sent == 1 else "all are sent with the next cell"
    last = "the last one is" if sent == 1 else f"the last {sent} are"
    return f"{last} sent with the next cell"


def _context(tokens: int | None) -> str:
    if not tokens:
        return "—"
    return f"{tokens // 1000}k" if tokens >= 1000 else str(tokens)


def _text_table(models: list[Any], allowed: Collection[str] | None = None) -> str:
    def mark(name: str) -> str:
        if allowed is None:
            return name
        return f"✓ {name}" if name in allowed else f"  {name} (not allowed)"

    rows = [("MODEL", "TYPE", "CONTEXT", "PRICE")]
    rows += [
        (mark(m.name) + plain(_deprecated_mark(m)), _kind(m), _context(m.context_length),
         m.price_text() or "—")
        for m in models
    ]  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join(
        f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:<{widths[2]}}  {row[3]}"
        for row in rows
    )


def model_picker(
    frontend: Frontend, settings: Any, models: list[ModelInfo], kind: str | None
) -> Any:
    """A dropdown that sets ``settings``' default (image) model, when the frontend can
    show widgets; else a line saying how to set it. A pick replaces the
    dropdown with a Markdown line, so a saved notebook shows text, not a dead widget.
    Returns the dropdown (None when none is shown)."""
    trait = "default_image_model" if kind == "image" else "default_model"
    names = [m.name for m in models if m.kind == ("image" if kind == "image" else "text")]
    if not names:
        print("Nothing to pick from: widen the filter.")
        return None
    if not frontend.widgets:
        print(f"No widget frontend here. Set one with %config DeepInfraMagics.{trait} = '<name>'.")
        return None
    try:
        import ipywidgets
    except ImportError:
        print(f"ipywidgets is not installed. Use %config DeepInfraMagics.{trait} = '<name>'.")
        return None
    current = getattr(settings, trait)
    dropdown = ipywidgets.Dropdown(
        options=names,
        value=current if current in names else None,
        description=trait.replace("_", " "),
        layout={"width": "60%"},
    )
    shown = LiveOutput(frontend.publish, display_id=f"deepinfra-pick-{dropdown.model_id}")

    def chosen(change: dict[str, Any]) -> None:
        if change.get("new"):
            setattr(settings, trait, change["new"])
            line = f"{trait} = `{change['new']}` (picked; run the cell again to pick another)"
            shown.show(markdown_bundle(line, plain(line)))

    dropdown.observe(chosen, names="value")
    shown.show(
        {
            **dropdown._repr_mimebundle_(),
            "text/plain": f"Pick {trait} (now {current}); or %config DeepInfraMagics.{trait}",
        }
    )
    return dropdown


def table_cell(value: Any, limit: int = 80) -> str:
    """A value for a Markdown table cell: one line, pipes and dollars escaped."""
    text = " ".join(str(value).split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.replace("|", "\\|").replace("$", "\\$") or " "


def batches_table(batches: list[BatchJob], local: set[str]) -> str:
    """The batch jobs as a Markdown table (★ marks jobs submitted from this machine)."""
    if not batches:
        return "No batch jobs yet: `%%deepinfra_map DATA --batch-api` submits one."
    rows = ["| Batch | Status | Done | Failed | Created | Model |", "|---|---|---|---|---|---|"]
    for batch in batches:
        counts = batch.request_counts
        created = (
            time.strftime("%Y-%m-%d %H:%M", time.localtime(batch.created_at))
            if batch.created_at
            else "–"
        )
        mark = " ★" if batch.id in local else ""
        done = f"{counts.get('completed', 0)}/{counts.get('total', 0)}" if counts else "–"
        rows.append(
            f"| `{batch.id}`{mark} | {batch.status} | {done} | {counts.get('failed', 0)} "
            f"| {created} | {table_cell(batch.metadata.get('model', '–'), 50)} |"
        )
    note = (
        "\n\n★ submitted from this machine; `%deepinfra_batches ID` collects a finished "
        "job's answers."
    )
    return "\n".join(rows) + (note if local else "")


def _totals_row(name: str, totals: UsageTotals) -> str:
    dollars = money(totals.dollars) if totals.requests > totals.unpriced else "–"
    if totals.unpriced and totals.requests > totals.unpriced:
        dollars += f" (+{totals.unpriced} unpriced)"
    return (
        f"| {name} | {totals.requests:,} | {totals.prompt_tokens:,} | "
        f"{totals.completion_tokens:,} | {totals.images:,} | {dollars} |"
    )


def usage_table(ledger: UsageLedger) -> str:
    """This session's totals, by kind and by model, as Markdown."""
    total = ledger.total()
    if not total.requests:
        return "Nothing spent yet in this session."
    head = (
        "| {} | Requests | Tokens in | Tokens out | Images | Dollars |\n|---|---|---|---|---|---|"
    )
    kinds = "\n".join(_totals_row(kind, t) for kind, t in sorted(ledger.by("kind").items()))
    models = "\n".join(
        _totals_row(f"`{model}`", t) for model, t in sorted(ledger.by("model").items())
    )
    return (
        f"**This session:** {total.requests:,} requests · {total.prompt_tokens:,} tokens in / "
        f"{total.completion_tokens:,} out · {total.images:,} images · {money(total.dollars)}\n\n"
        f"{head.format('Kind')}\n{kinds}\n\n{head.format('Model')}\n{models}"
    )
