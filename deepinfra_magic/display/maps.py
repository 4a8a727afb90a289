"""Showing a map run: a live progress bar (ipywidgets in a kernel, Markdown updated in
place elsewhere in notebooks, one rewritten line in terminals), then a summary that stays
in the saved notebook.

Rules kept here:

* The form follows the :class:`~.output.Frontend`: widgets when it can show them, a
  :class:`~.output.LiveOutput` line when it applies updates, else a line on its stream.
* The summary stays: it takes the live line's place, or is a fresh output.
* Nothing live outlives the run: when it ends (done, failed or stopped) the widget bar's
  output is replaced by a static line (JupyterLab and Notebook 7 do not save widget
  state, so a saved bar would read "Error displaying widget: model not found") and its
  widgets are closed. A stopped run's line says so, with no ETA.
* Widget labels are built from escaped text only, never from model text as HTML.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .live import Throttle
from .output import Frontend, markdown_bundle, plain
from .reply import money
from .tables import table_cell

if TYPE_CHECKING:
    from ..maps import MapProgress, MapResult

__all__ = ["MapProgressView", "map_summary", "progress_line"]

# A terminal's progress line is rewritten at most this often (the last row always shows).
TERMINAL_LINE_INTERVAL = 0.5


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def progress_line(progress: MapProgress, model: str, *, eta: bool = True) -> str:
    """One line: done/failed/total (and distinct prompts when fewer), tokens, dollars,
    rows per second and ETA (left out when ``eta`` is false: a run that has ended has none)."""
    parts = [f"{progress.done}/{progress.total} done"]
    if 0 < progress.distinct < progress.total:
        parts.insert(0, f"{progress.total} rows, {progress.distinct} distinct prompts")
    if progress.failed:
        parts.append(f"{progress.failed} failed")
    if progress.cached:
        parts.append(f"{progress.cached} from earlier runs")
    parts.append(f"{progress.prompt_tokens:,} tokens in / {progress.completion_tokens:,} out")
    if progress.dollars is not None:
        parts.append(money(progress.dollars))
    rate = progress.rate
    parts.append(f"{rate:.1f} rows/s" if rate else "– rows/s")
    if eta and progress.remaining:
        parts.append(f"ETA {_duration(progress.eta)}")
    parts.append(f"{progress.concurrency} at once")
    return f"`{model}` · " + " · ".join(parts)


class MapProgressView:
    """The live progress of a map run, in the best form the frontend offers: an
    ipywidgets bar (a kernel), one Markdown line updated in place (a notebook without
    widgets) or a line rewritten with ``\\r`` on the frontend's stream (a terminal).
    """

    def __init__(self, frontend: Frontend, model: str) -> None:
        self._publish = frontend.publish
        self._model = model
        self._mode = "text" if not frontend.live else "widget" if frontend.widgets else "markdown"
        self._out = frontend.out
        self._live = frontend.live_output()
        self._box: Any = None
        self._bar: Any = None
        self._label: Any = None
        self._last: MapProgress | None = None
        self._started = False
        self._pace = Throttle(TERMINAL_LINE_INTERVAL, min_chars=0)
        self._width = 0

    def update(self, progress: MapProgress) -> None:
        """Show where the run stands (the first call shows the bar)."""
        self._last = progress
        line = progress_line(progress, self._model)
        if self._mode == "widget" and self._show_widget(progress, line):
            return
        if self._mode in ("markdown", "widget"):
            self._live.show(markdown_bundle(f"⏳ {line}", plain(line)))
            return
        if self._started and not self._pace.due(0) and progress.remaining:
            return
        self._pace.sent()
        self._started = True
        text = f"⏳ {plain(line)}"
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
            self._box = ipywidgets.VBox([self._bar, self._label])
            alternative = f"Progress of the rows sent to {self._model} (a live bar while it runs)"
            self._live.show({**self._box._repr_mimebundle_(), "text/plain": alternative})
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
            self._out.write(f"{plain(line)}\n")
            self._out.flush()
            return
        self._live.show(markdown_bundle(f"⏳ {line}", plain(line)))
        self._mode = "markdown"  # the summary replaces this line

    def finish(self, summary: str, *, stopped: bool = False) -> None:
        """End the live display and show the summary (kept in the saved notebook).

        The widget bar, if shown, is replaced by a static line first (``stopped``: the run
        was interrupted, and the line says so); the summary then follows as a fresh output,
        which jupyter console (it ignores updates) prints too."""
        if self._mode == "text" and self._started:
            self._out.write("\n")
            self._out.flush()
        if self._box is not None:
            self._live.update(markdown_bundle(*self._static_line(stopped)))
            self._box.close()  # its comms are not needed any more
            self._box = self._bar = self._label = None
            self._publish(markdown_bundle(summary, plain(summary)), {})
            return
        self._live.settle(markdown_bundle(summary, plain(summary)))

    def _static_line(self, stopped: bool) -> tuple[str, str]:
        """Where the run ended, as (Markdown, plain): the last progress without its ETA,
        marked stopped, with failures, or done."""
        last = self._last
        if last is None:
            line = f"`{self._model}`"
        else:
            line = progress_line(last, self._model, eta=False)
        if stopped:
            icon, end = "⏹", " · stopped"
        elif last is not None and (last.failed or last.remaining):
            icon, end = "⚠", ""
        else:
            icon, end = "✓", ""
        return f"{icon} {line}{end}", f"{icon} {plain(line)}{end}"


def _html(text: str) -> str:
    """A status line for the widget label: plain text, HTML-escaped, code in ``<code>``."""
    import html

    escaped = html.escape(text.replace("\\$", "$"))
    parts = escaped.split("`")
    return "".join(
        f"<code>{part}</code>" if index % 2 else part for index, part in enumerate(parts)
    )


def map_summary(result: MapResult, *, sent_rows: int, preview: int = 5, note: str = "") -> str:
    """What a run did, as Markdown: counts, usage, time, failed rows and a preview."""
    usage = result.usage
    total = len(result.rows)
    icon = "✓" if not result.failed and not result.remaining else "⚠"
    if result.interrupted:
        icon = "⏹"
    rows = f"{total} rows"
    if result.distinct < total:
        rows += f", {result.distinct} distinct prompts"
    parts = [f"**{icon} {rows}** with `{result.model}`: {result.answered} answered"]
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
            f"- row `{table_cell(label, 30)}`: {table_cell(error, 160)}"
            for label, error in errors[:5]
        )
        more = f"\n- … and {len(errors) - 5} more (see the answers)" if len(errors) > 5 else ""
        lines.append(
            "Failed rows (their errors are kept in the answers; run again to retry):"
            f"\n\n{shown}{more}"
        )
    answered = [row for row in result.rows if row.answered][:preview]
    if answered:
        table = ["| row | answer |", "|---|---|"]
        table += [f"| {table_cell(row.label, 30)} | {table_cell(row.text)} |" for row in answered]
        lines.append("\n".join(table))
    return "\n\n".join(lines)
