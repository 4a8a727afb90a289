"""Showing a map run: a live progress bar (ipywidgets in a kernel, Markdown updated in
place elsewhere in notebooks, one rewritten line in terminals), then a summary that stays
in the saved notebook; also the tables of ``%deepinfra_batches`` and ``%deepinfra_usage``."""

from __future__ import annotations

import sys
import time
import uuid
from typing import TYPE_CHECKING, Any, TextIO

from .display import Publisher, markdown_bundle, money

if TYPE_CHECKING:
    from .maps import BatchJob, MapProgress, MapResult
    from .usage import UsageLedger, UsageTotals

__all__ = ["MapProgressView", "batches_table", "map_summary", "usage_table"]


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _plain(markdown: str) -> str:
    return markdown.replace("`", "").replace("*", "").replace("\\$", "$")


def progress_line(progress: MapProgress, model: str) -> str:
    """One line: done/failed/total, tokens, dollars, rows per second and ETA."""
    parts = [f"{progress.done}/{progress.total} done"]
    if progress.failed:
        parts.append(f"{progress.failed} failed")
    if progress.cached:
        parts.append(f"{progress.cached} from earlier runs")
    parts.append(f"{progress.prompt_tokens:,} tokens in / {progress.completion_tokens:,} out")
    if progress.dollars is not None:
        parts.append(money(progress.dollars))
    rate = progress.rate
    parts.append(f"{rate:.1f} rows/s" if rate else "– rows/s")
    if progress.remaining:
        parts.append(f"ETA {_duration(progress.eta)}")
    parts.append(f"{progress.concurrency} at once")
    return f"`{model}` · " + " · ".join(parts)


class MapProgressView:
    """The live progress of a map run, in the best form the frontend offers.

    ``mode``: ``"widget"`` (an ipywidgets bar; needs a kernel), ``"markdown"`` (one display
    updated in place) or ``"text"`` (a line rewritten with ``\\r`` on stdout).
    """

    def __init__(
        self, publish: Publisher, model: str, mode: str, stream: TextIO | None = None
    ) -> None:
        self._publish = publish
        self._model = model
        self._mode = mode
        self._out = stream if stream is not None else sys.stdout
        self._id = uuid.uuid4().hex
        self._bar: Any = None
        self._label: Any = None
        self._started = False
        self._last_text = 0.0
        self._width = 0

    def update(self, progress: MapProgress) -> None:
        """Show where the run stands (the first call shows the bar)."""
        line = progress_line(progress, self._model)
        if self._mode == "widget" and self._show_widget(progress, line):
            return
        if self._mode in ("markdown", "widget"):
            self._publish(
                markdown_bundle(f"⏳ {line}", _plain(line)),
                {},
                transient={"display_id": self._id},
                update=self._started,
            )
            self._started = True
            return
        now = time.monotonic()
        if self._started and now - self._last_text < 0.5 and progress.remaining:
            return
        self._last_text = now
        self._started = True
        text = f"⏳ {_plain(line)}"
        pad = " " * max(0, self._width - len(text))  # blank out a longer previous line
        self._width = len(text)
        self._out.write(f"\r{text}{pad}")
        self._out.flush()

    def _show_widget(self, progress: MapProgress, line: str) -> bool:
        if self._bar is None:
            try:
                import ipywidgets
            except ImportError:
                self._mode = "markdown"
                return False
            self._bar = ipywidgets.IntProgress(
                value=0, min=0, max=max(1, progress.total), description="Rows",
                layout={"width": "50%"},
            )  # fmt: skip
            self._label = ipywidgets.HTML()
            box = ipywidgets.VBox([self._bar, self._label])
            alternative = f"Progress of the rows sent to {self._model} (a live bar while it runs)"
            self._publish({**box._repr_mimebundle_(), "text/plain": alternative}, {})
        self._bar.value = progress.done + progress.failed
        self._bar.bar_style = "warning" if progress.failed else ""
        self._label.value = _html(line)
        return True

    def update_status(self, line: str) -> None:
        """A status line in place of the bar (a Batch API job's state while it runs)."""
        if self._label is not None:
            self._label.value = _html(line)
            return
        if self._mode == "text":
            self._out.write(f"{_plain(line)}\n")
            self._out.flush()
            return
        self._publish(
            markdown_bundle(f"⏳ {line}", _plain(line)),
            {},
            transient={"display_id": self._id},
            update=self._started,
        )
        self._started = True
        self._mode = "markdown"  # the summary replaces this line

    def finish(self, summary: str) -> None:
        """End the live display and show the summary (kept in the saved notebook)."""
        if self._mode == "text" and self._started:
            self._out.write("\n")
            self._out.flush()
        if self._bar is not None:
            self._bar.bar_style = "success" if "⚠" not in summary else "warning"
        if self._mode == "markdown" and self._started:
            self._publish(
                markdown_bundle(summary, _plain(summary)),
                {},
                transient={"display_id": self._id},
                update=True,
            )
            return
        self._publish(markdown_bundle(summary, _plain(summary)), {})


def _html(text: str) -> str:
    """A status line for the widget label: plain text, HTML-escaped, code in ``<code>``."""
    import html

    escaped = html.escape(text.replace("\\$", "$"))
    parts = escaped.split("`")
    return "".join(
        f"<code>{part}</code>" if index % 2 else part for index, part in enumerate(parts)
    )


def _cell(value: Any, limit: int = 80) -> str:
    """A value for a Markdown table cell: one line, pipes and dollars escaped."""
    text = " ".join(str(value).split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.replace("|", "\\|").replace("$", "\\$") or " "


def map_summary(result: MapResult, *, sent_rows: int, preview: int = 5, note: str = "") -> str:
    """What a run did, as Markdown: counts, usage, time, failed rows and a preview."""
    usage = result.usage
    total = len(result.rows)
    icon = "✓" if not result.failed and not result.remaining else "⚠"
    if result.interrupted:
        icon = "⏹"
    parts = [f"**{icon} {total} rows** with `{result.model}`: {result.answered} answered"]
    if result.cached:
        parts[0] += f" ({result.cached} from earlier runs, not sent again)"
    if result.failed:
        parts.append(f"{result.failed} failed")
    if result.remaining:
        parts.append(f"{result.remaining} remaining")
    if sent_rows:
        parts.append(f"{usage.prompt_tokens:,} tokens in / {usage.completion_tokens:,} out")
        if usage.estimated_cost is not None:
            parts.append(money(usage.estimated_cost))
        parts.append(f"{result.elapsed:.1f} s")
    if result.replayed_from:
        parts.append(f"▶ replayed from {result.replayed_from}")
    lines = [" · ".join(parts)]
    if note:
        lines.append(note)
    if result.interrupted:
        lines.append(
            f"*⏹ Interrupted: {result.answered} answered rows are kept; {result.remaining} "
            "remain. Run the cell again to send only those.*"
        )
    errors = list(result.errors.items())
    if errors:
        shown = "\n".join(
            f"- row `{_cell(label, 30)}`: {_cell(error, 160)}" for label, error in errors[:5]
        )
        more = f"\n- … and {len(errors) - 5} more (see the answers)" if len(errors) > 5 else ""
        lines.append(
            "Failed rows (their errors are kept in the answers; run again to retry):"
            f"\n\n{shown}{more}"
        )
    answered = [row for row in result.rows if row.answered][:preview]
    if answered:
        table = ["| row | answer |", "|---|---|"]
        table += [f"| {_cell(row.label, 30)} | {_cell(row.text)} |" for row in answered]
        lines.append("\n".join(table))
    return "\n\n".join(lines)


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
            f"| {created} | {_cell(batch.metadata.get('model', '–'), 50)} |"
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
