"""Showing replies and images: throttled live Markdown in notebooks, plain stdout elsewhere.

A notebook gets the reply live through display updates (``update_display_data``) at a
steady pace; finished parts are frozen at line breaks so each update resends only a short
tail. When the reply ends it is published once more as fresh display data, the one output
that stays (and the only one a frontend that ignores updates shows). A terminal (or any
frontend that cannot render Markdown) gets the text printed once, as it arrives.
Everything here runs on the main thread and never builds HTML from model text.
"""

from __future__ import annotations

import re
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from ._markdown import escape_dollars, verbatim

if TYPE_CHECKING:
    from .catalog import ModelCatalog, ModelInfo
    from .conversation import Conversation
    from .images import GeneratedImage, ImageResult
    from .types import ChatResult

__all__ = [
    "ImageGallery",
    "ImageProgress",
    "LiveSection",
    "MarkdownContext",
    "Publisher",
    "ReplyView",
    "StdoutReplyView",
    "Throttle",
    "history_text",
    "image_caption",
    "markdown_bundle",
    "markdown_price",
    "model_picker",
    "models_table",
    "money",
    "reply_footer",
    "rich_display_available",
    "source_status",
]

METADATA_KEY = "deepinfra_magic"
# Freezing: once the live tail has cost this many times its own length in updates, the
# finished part (up to a line break) is frozen into its output and only the rest stays live.
# Each update then resends a short tail, so the traffic stays a small multiple of the reply.
TAIL_COST_FACTOR = 2
# A tail without any line break is cut at a space once it is this long (one huge line).
LONG_LINE_CHARS = 160
# Frozen outputs are merged this many at a time (a counter in base MERGE_GROUP), so a reply
# of N frozen parts keeps about (MERGE_GROUP - 1) * log(N) outputs: JupyterLab hides the
# outputs of a cell beyond 50 (its ``maxNumberOutputs``), and a saved notebook stays small.
MERGE_GROUP = 8
# A slow stream updates when this much is new (or after 1.75 intervals, at the latest).
MIN_UPDATE_CHARS = 64


class Publisher(Protocol):
    """The shell's display publisher (``shell.display_pub.publish``)."""

    def __call__(
        self,
        data: dict[str, Any],
        metadata: dict[str, Any] | None = ...,
        *,
        transient: dict[str, Any] | None = ...,
        update: bool = ...,
    ) -> None: ...


def rich_display_available(shell: Any) -> bool:
    """True when the frontend renders Markdown and applies display updates in place.

    A capability check, not a class-name sniff: terminal IPython formats only text/plain
    and its base publisher prints every update (a wall of repeated text).
    """
    from IPython.core.displaypub import DisplayPublisher

    formatter = getattr(shell, "display_formatter", None)
    publisher = getattr(shell, "display_pub", None)
    if formatter is None or publisher is None:
        return False
    return "text/markdown" in formatter.active_types and type(publisher) is not DisplayPublisher


def markdown_bundle(markdown: str, plain: str | None = None) -> dict[str, str]:
    """Markdown with a text/plain fallback in the same bundle (headless runs keep text).

    Dollars that are not math are escaped in the Markdown only, so that Jupyter shows
    prices as written; the text/plain copy keeps the plain ``$``."""
    return {
        "text/markdown": escape_dollars(markdown),
        "text/plain": markdown if plain is None else plain,
    }


def metadata_for(info: dict[str, Any] | None) -> dict[str, Any]:
    """Output metadata under our own key (stored in the .ipynb)."""
    return {METADATA_KEY: info} if info else {}


def _new_id() -> str:
    return uuid.uuid4().hex[:16]


class Throttle:
    """Steady pacing of live updates: one is due once ``interval`` has passed since the
    last, whatever the size of the text (freezing keeps each update small instead).

    A slow stream waits for ``min_chars`` new characters, up to 1.75 intervals, so
    that an update carries more text than message overhead.
    """

    def __init__(
        self,
        interval: float,
        clock: Callable[[], float] = time.monotonic,
        min_chars: int = MIN_UPDATE_CHARS,
    ) -> None:
        self.interval = interval
        self.clock = clock
        self.min_chars = min_chars
        self.last = -1e9

    def due(self, pending: int) -> bool:
        """True if an update showing ``pending`` new characters may be sent now."""
        elapsed = self.clock() - self.last
        if pending >= self.min_chars:
            return elapsed >= self.interval
        return elapsed >= 1.75 * self.interval

    def sent(self) -> None:
        """Note that an update went out now."""
        self.last = self.clock()


_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})(.*)")
_TABLE_DELIMITER = re.compile(r" {0,3}\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*")


class MarkdownContext:
    """Where the text seen so far (line by line) stands: inside a code fence or a table.

    A part cut there is shown with the fence's opening line or the table's header in
    front, so that it still renders as code or as a table on its own.
    """

    __slots__ = ("_fence", "_marker", "_previous", "_table")

    def __init__(self) -> None:
        self._fence = ""  # the opening line while inside a fence
        self._marker = ""
        self._table = ""  # header and delimiter rows while inside a table
        self._previous = ""

    @property
    def prefix(self) -> str:
        """What a part starting here needs in front to render as it would in the whole."""
        return self._fence or self._table

    @property
    def plain(self) -> bool:
        """True outside fences and tables (a part may start here with nothing in front)."""
        return not (self._fence or self._table)

    def feed(self, line: str) -> None:
        """Take one complete line (without its line break)."""
        fence = _FENCE.fullmatch(line)
        if self._fence:
            marker = fence.group(1) if fence else ""
            if marker[:1] == self._marker[:1] and len(marker) >= len(self._marker):
                if not fence or not fence.group(2).strip():
                    self._fence = self._marker = ""
        elif fence and not (fence.group(1)[0] == "`" and "`" in fence.group(2)):
            self._fence, self._marker, self._table = line + "\n", fence.group(1), ""
        elif self._table:
            if "|" not in line or not line.strip():
                self._table = ""
        elif "|" in self._previous and _TABLE_DELIMITER.fullmatch(line) and "-" in line:
            self._table = f"{self._previous}\n{line}\n"
        self._previous = line


class _Frozen:
    """A finished part of a section, shown in one output: its text, the Markdown context
    it starts in, and its level in the merge counter (it holds MERGE_GROUP**level parts)."""

    __slots__ = ("level", "prefix", "text")

    def __init__(self, text: str, prefix: str, level: int) -> None:
        self.text = text
        self.prefix = prefix
        self.level = level


_PLACEHOLDER = object()  # an output this section took over, showing something else


class LiveSection:
    """One growing text shown live through a few display outputs, updated at a steady pace.

    Only the tail is resent: once resending it has cost ``TAIL_COST_FACTOR`` times its
    length, the finished part up to a line break is frozen into its output (a code fence
    or table cut there is reopened in the next output) and a new output continues with
    the rest. Frozen outputs are merged now and then so that they stay few. The first
    output may be a placeholder that already exists. Live updates carry Markdown only.
    """

    def __init__(
        self,
        publish: Publisher,
        render: Callable[[str, bool], dict[str, str]],
        throttle: Throttle,
        display_ids: list[str] | None = None,
        markdown: bool = True,
        placeholder: bool = False,
    ) -> None:
        self._publish = publish
        self._render = render  # (text, is the first output) -> bundle
        self._throttle = throttle
        self._markdown = markdown
        # Outputs in order: those given exist already and are empty, or (``placeholder``)
        # the first shows something else; more are made as needed.
        self._ids: list[str] = list(display_ids or [])
        self._showing: list[object] = [None] * len(self._ids)
        if placeholder and self._ids:
            self._showing[0] = _PLACEHOLDER
        self._frozen: list[_Frozen] = []
        self._tail: list[str] = []
        self._tail_length = 0
        self._tail_prefix = ""
        self._tail_cost = 0  # characters of this tail sent so far
        self._line: list[str] = []  # the current line, not yet ended
        self._line_break = 0  # in the tail: just after its last line break
        self._shown_length = 0  # of the tail, by the last update
        self._held = 0  # the last update showed the tail up to here, for freezing
        self._held_prefix = ""  # the Markdown context there
        self._context = MarkdownContext()
        self._pending = 0  # characters not shown yet

    @property
    def text(self) -> str:
        """Everything appended so far."""
        return "".join([*(part.text for part in self._frozen), *self._tail])

    @property
    def display_ids(self) -> list[str]:
        """The outputs this section showed text in (to be emptied when the reply ends)."""
        pairs = zip(self._ids, self._showing, strict=True)
        return [ident for ident, shown in pairs if shown is not None]

    def append(self, delta: str) -> None:
        """Add text; an update goes out if one is due."""
        if not delta:
            return
        self._tail.append(delta)
        self._tail_length += len(delta)
        self._pending += len(delta)
        if "\n" in delta:
            self._scan(delta)
        else:
            self._line.append(delta)
        if self._throttle.due(self._pending):
            self.update()

    def _scan(self, delta: str) -> None:
        """Follow the Markdown context over the lines that ``delta`` ends."""
        base = self._tail_length - len(delta)
        start = 0
        while (end := delta.find("\n", start)) >= 0:
            line = "".join([*self._line, delta[start:end]])
            self._line = []
            self._context.feed(line)
            start = end + 1
        if start < len(delta):
            self._line = [delta[start:]]
        self._line_break = base + start

    def update(self) -> None:
        """Show the new text now.

        Freezing takes two updates and resends nothing: once the tail has cost enough,
        one update shows it only up to a line break (the rest of the line waits), and
        the next freezes exactly what that one showed and goes on in a new output.
        """
        if not self._pending:
            return
        tail = "".join(self._tail)
        if self._held:
            tail = self._freeze(tail)
        shown = tail
        if self._tail_cost >= TAIL_COST_FACTOR * len(tail):
            self._held = self._hold_point(tail)
            if self._held:
                shown = tail[: self._held]
                self._held_prefix = self._context.prefix if self._held == self._line_break else ""
        self._tail = [tail] if tail else []
        self._show(shown)
        self._tail_cost += len(shown)
        self._shown_length = len(shown)
        self._pending = len(tail) - len(shown)
        self._throttle.sent()

    def _hold_point(self, tail: str) -> int:
        """Where the tail may end for freezing, without hiding anything already shown:
        its last line break, else (one very long line) its last space; 0 for none."""
        if self._line_break and self._line_break >= self._shown_length:
            return self._line_break
        if len(tail) >= LONG_LINE_CHARS and self._context.plain:
            space = tail.rfind(" ") + 1
            if space and space >= self._shown_length:
                return space
        return 0

    def _freeze(self, tail: str) -> str:
        """Freeze the part of ``tail`` that the last update showed (its output already
        shows it), merge frozen parts if due, and return the rest of the tail."""
        cut = self._held
        part = _Frozen(tail[:cut], self._tail_prefix, 0)
        self._frozen.append(part)
        self._showing[len(self._frozen) - 1] = part
        self._tail_prefix = self._held_prefix if self._markdown else ""
        self._tail_length -= cut
        self._line_break = max(self._line_break - cut, 0)
        self._held = self._tail_cost = self._shown_length = 0
        group = self._frozen[-MERGE_GROUP:]
        while len(group) == MERGE_GROUP and len({p.level for p in group}) == 1:
            merged = _Frozen("".join(p.text for p in group), group[0].prefix, group[0].level + 1)
            self._frozen[-MERGE_GROUP:] = [merged]
            group = self._frozen[-MERGE_GROUP:]
        return tail[cut:]

    def release(self) -> list[str]:
        """The outputs that show text (to be emptied), forgetting the text itself."""
        showing = self.display_ids
        self._frozen, self._tail, self._line = [], [], []
        self._showing = [None] * len(self._ids)
        return showing

    def close(self) -> list[str]:
        """End the live view of this section: its whole text in its first output, the
        others emptied and handed back (so the next section reuses them and a cell's
        outputs stay few: JupyterLab hides those beyond its ``maxNumberOutputs``)."""
        if len(self.display_ids) > 1 or self._pending:
            self._frozen = [_Frozen(self.text, "", 0)]
            self._tail, self._tail_length, self._pending, self._held = [], 0, 0, 0
            self._show("")
        return self._ids[1:]

    def _show(self, tail: str) -> None:
        """Bring every output up to date: frozen parts that changed, the tail, and
        outputs left over after a merge emptied."""
        for position, part in enumerate(self._frozen):
            if self._shown_at(position) is not part:
                self._send(position, part, self._live_bundle(part.prefix + part.text, position))
        position = len(self._frozen)
        if tail:
            self._send(position, tail, self._live_bundle(self._tail_prefix + tail, position))
            position += 1
        for extra in range(position, len(self._ids)):
            if self._showing[extra] is not None:
                self._send(extra, None, {})

    def _shown_at(self, position: int) -> object:
        return self._showing[position] if position < len(self._showing) else None

    def _live_bundle(self, text: str, position: int) -> dict[str, str]:
        bundle = self._render(text, position == 0)
        if len(bundle) > 1:
            # Live updates only matter to frontends that apply them, which all render
            # Markdown: skip the text/plain copy to halve the traffic. A frontend that
            # ignores updates (jupyter console) then prints nothing for them either.
            bundle.pop("text/plain", None)
        return bundle

    def _send(self, position: int, content: object, bundle: dict[str, str]) -> None:
        if position == len(self._ids):
            # A new output starts empty and gets its text by update, like every live
            # text: a frontend that ignores updates (jupyter console) shows none of it,
            # only the finished reply.
            self._ids.append(_new_id())
            self._showing.append(None)
            self._publish({}, {}, transient={"display_id": self._ids[position]}, update=False)
        self._publish(bundle, {}, transient={"display_id": self._ids[position]}, update=True)
        self._showing[position] = content


def _quote(text: str) -> str:
    """Markdown blockquote of ``text`` (the model's reasoning, kept apart from the answer)."""
    return "\n".join("> " + line if line else ">" for line in text.split("\n"))


REASONING_HEADER = "💭 **Reasoning**\n\n"


def _reasoning_bundle(text: str, first: bool = True) -> dict[str, str]:
    header = REASONING_HEADER if first else ""
    return markdown_bundle(header + _quote(text), "💭 Reasoning:\n" + text)


def _answer_bundle(text: str, first: bool = True) -> dict[str, str]:
    return markdown_bundle(text)


def _text_bundle(text: str, first: bool = True) -> dict[str, str]:
    return {"text/plain": text}


class ReplyView:
    """A streamed reply in a notebook: placeholder, live reasoning and answer, and at the
    end one clean output each for the reasoning and the answer, then the footer.

    The finished reply is published as fresh ``display_data`` (so frontends that ignore
    display updates, like jupyter console, show it), and only then are the live outputs
    emptied with an update to an empty bundle: JupyterLab then renders nothing for them,
    and nothing else printed in the cell (a notice on stderr, an earlier reply) is
    touched, which ``clear_output`` would wipe.
    """

    def __init__(
        self,
        publish: Publisher,
        model: str,
        update_interval: float,
        markdown: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._publish = publish
        self._markdown = markdown
        self._throttle = Throttle(update_interval, clock)  # one pace for both sections
        self._model = model
        self._placeholder = _new_id()
        self._placeholder_free = True
        self.reasoning: LiveSection | None = None
        self.answer: LiveSection | None = None

    def start(self) -> None:
        """Show the placeholder naming the model (nothing empty before the first token).

        Separate from construction, so the caller can show it inside the region where a
        Ctrl-C still leads to :meth:`finish`: its display id exists before it is sent.
        """
        label = f"⏳ *Asking `{self._model}`…*"
        self._publish(
            markdown_bundle(label, f"⏳ Asking {self._model}…"),
            {},
            transient={"display_id": self._placeholder},
            update=False,
        )

    def _section(
        self,
        render: Callable[[str, bool], dict[str, str]],
        markdown: bool,
        empty: list[str] | None = None,
    ) -> LiveSection:
        """A new section in the ``empty`` outputs, or taking over the unused placeholder."""
        if self._placeholder_free:
            self._placeholder_free = False
            return LiveSection(
                self._publish, render, self._throttle, [self._placeholder], markdown, True
            )
        return LiveSection(self._publish, render, self._throttle, empty, markdown)

    def add_reasoning(self, delta: str) -> None:
        """Reasoning text: shown quoted and labelled, never mixed into the answer."""
        if self.reasoning is None:
            self.reasoning = self._section(_reasoning_bundle, True)
        self.reasoning.append(delta)

    def add_answer(self, delta: str) -> None:
        """Answer text, rendered as Markdown with a text/plain fallback."""
        if self.answer is None:
            free = self.reasoning.close() if self.reasoning is not None else None
            render = _answer_bundle if self._markdown else _text_bundle
            self.answer = self._section(render, self._markdown, free)
        self.answer.append(delta)

    def finish(
        self,
        footer: str,
        metadata: dict[str, Any],
        note: str = "",
        *,
        text: str | None = None,
        reasoning: str | None = None,
    ) -> None:
        """End the reply (normally, on an error or on Ctrl-C): the reasoning and the answer
        (``text``/``reasoning`` when given: everything received, even what never reached
        the live view), the note, the footer (none when empty); then empty the live outputs.
        """
        info = metadata_for(metadata)
        if reasoning is None:
            reasoning = self.reasoning.text if self.reasoning is not None else ""
        if text is None:
            text = self.answer.text if self.answer is not None else ""
        live = [self._placeholder] if self._placeholder_free else []
        for section in (self.reasoning, self.answer):
            if section is not None:
                live += section.release()  # its copy of a long reply is not needed any more
        if reasoning:
            self._publish(_reasoning_bundle(reasoning), info)
        if text:
            plain = f"{text}\n\n{_plain(note)}" if note else text
            if self._markdown:
                self._publish(markdown_bundle(f"{text}\n\n{note}" if note else text, plain), info)
            else:
                self._publish({"text/plain": plain}, info)
        elif note or not reasoning:
            note = note or "*(empty reply)*"
            self._publish(markdown_bundle(note, _plain(note)), info)
        if footer:
            self._publish(markdown_bundle(footer, _plain(footer)), info)
        for ident in live:
            self._publish({}, {}, transient={"display_id": ident}, update=True)


def _plain(markdown: str) -> str:
    """A footer's text/plain: the same words without Markdown emphasis or code marks."""
    return markdown.replace("`", "").replace("*", "")


class StdoutReplyView:
    """A streamed reply for text-only frontends: each piece printed once, as it arrives.

    Writes go straight to the stream; flushes are throttled (a kernel's stdout turns each
    flush into a message, a terminal needs them to show progress).
    """

    def __init__(self, model: str, update_interval: float, stream: TextIO | None = None) -> None:
        self._out = stream if stream is not None else sys.stdout
        self._model = model
        self._throttle = Throttle(update_interval)
        self._section = ""
        self._printed = {"reasoning": 0, "answer": 0}  # characters written of each

    def start(self) -> None:
        """Say which model is being asked."""
        self._out.write(f"⏳ {self._model}…\n")

    def _write(self, section: str, header: str, delta: str) -> None:
        if self._section != section:
            self._out.write(header)
            self._section = section
        self._out.write(delta)
        self._printed[section] += len(delta)
        if self._throttle.due(self._throttle.min_chars):
            self._out.flush()
            self._throttle.sent()

    def add_reasoning(self, delta: str) -> None:
        """Reasoning, under its own header."""
        self._write("reasoning", "💭 Reasoning:\n", delta)

    def add_answer(self, delta: str) -> None:
        """Answer text."""
        header = "\n\n" if self._section == "reasoning" else ""
        self._write("answer", header, delta)

    def finish(
        self,
        footer: str,
        metadata: dict[str, Any],
        note: str = "",
        *,
        text: str | None = None,
        reasoning: str | None = None,
    ) -> None:
        """End the reply: whatever of ``reasoning``/``text`` was received but not printed
        yet (a reply that was not streamed, text that came with an error), the note
        (interrupt/error) and the footer line."""
        del metadata  # text frontends have no output metadata
        if (
            reasoning
            and len(reasoning) > self._printed["reasoning"]
            and not self._printed["answer"]
        ):
            self.add_reasoning(reasoning[self._printed["reasoning"] :])
        if text and len(text) > self._printed["answer"]:
            self.add_answer(text[self._printed["answer"] :])
        if note:
            self._out.write(f"\n\n{_plain(note)}")
        self._out.write(f"\n\n{_plain(footer)}\n" if footer else "\n")
        self._out.flush()


def money(dollars: float) -> str:
    """Dollars as written (``markdown_bundle`` keeps Jupyter from reading them as LaTeX)."""
    return "<$0.0001" if 0 < dollars < 0.0001 else f"${dollars:.4f}"


def reply_footer(result: ChatResult, *, timing: bool = True) -> str:
    """One Markdown line under a reply: model, tokens, first-token time, speed, cost.

    ``timing=False`` leaves out times that mean nothing (an instant replay)."""
    parts = []
    if result.interrupted:
        parts.append("⏹ **interrupted**")
    elif result.error:
        parts.append("⚠ **stopped by an error**")
    parts.append(f"`{result.model}`")
    usage = result.usage
    if usage is not None:
        parts.append(f"{usage.prompt_tokens:,} in / {usage.completion_tokens:,} out tokens")
    else:
        parts.append(f"{len(result.text):,} characters")
    if timing and result.time_to_first_token is not None:
        parts.append(f"first token {result.time_to_first_token:.2f} s")
    speed = result.tokens_per_second
    if timing and speed is not None:
        parts.append(f"{speed:,.0f} tok/s")
    if usage is not None and usage.estimated_cost is not None:
        parts.append(money(usage.estimated_cost))
    if result.finish_reason == "length":
        parts.append("cut off at max_tokens")
    if result.replayed_from:
        parts.append(f"▶ replayed from {result.replayed_from}")
    return " · ".join(parts)


def image_caption(result: ImageResult, elapsed: float) -> str:
    """One Markdown line under images: model, seeds, size, runtime, cost."""
    parts = [f"`{result.model}`"]
    seeds = [str(image.seed) for image in result.images if image.seed is not None]
    if seeds:
        parts.append(("seed " if len(seeds) == 1 else "seeds ") + ", ".join(seeds))
    sizes = sorted({f"{w}×{h}" for w, h in (i.size for i in result.images if i.size)})
    if sizes:
        parts.append(", ".join(sizes))
    runtime = result.runtime_ms / 1000 if result.runtime_ms is not None else elapsed
    parts.append(f"{runtime:.1f} s")
    if result.cost is not None:
        parts.append(money(result.cost))
    flagged = [str(number) for number, image in enumerate(result.images, 1) if image.nsfw]
    if flagged:
        which = "image " + flagged[0] if len(flagged) == 1 else "images " + ", ".join(flagged)
        parts.append(f"⚠ {which} filtered by the safety checker")
    if result.replayed_from:
        parts.append(f"▶ replayed from {result.replayed_from}")
    return " · ".join(parts)


class ImageProgress:
    """Shows that images are being made (model, elapsed seconds, done of n), then the
    caption. In a notebook it is one display updated in place; in a terminal, one line."""

    def __init__(self, publish: Publisher, model: str, total: int, rich: bool) -> None:
        self._publish = publish
        self._model = model
        self._total = total
        self._rich = rich
        self._id = uuid.uuid4().hex

    def start(self) -> None:
        """Show the progress line (apart from construction, like ``ReplyView.start``)."""
        self._show(self._status(0.0, 0), update=False)

    def _status(self, elapsed: float, done: int) -> str:
        what = "an image" if self._total == 1 else f"{self._total} images"
        progress = f" · {done} of {self._total} done" if self._total > 1 else ""
        return f"⏳ Generating {what} with `{self._model}` · {elapsed:.0f} s{progress}"

    def _show(self, markdown: str, update: bool, metadata: dict[str, Any] | None = None) -> None:
        if not self._rich and update:
            return  # a terminal prints the start line and the caption only
        self._publish(
            markdown_bundle(markdown, _plain(markdown)),
            metadata_for(metadata),
            transient={"display_id": self._id},
            update=update,
        )

    def tick(self, elapsed: float, done: int) -> None:
        """Refresh the elapsed time and count."""
        self._show(self._status(elapsed, done), update=True)

    def finish(self, caption: str, metadata: dict[str, Any] | None = None) -> None:
        """Show the caption (or the note of what went wrong) as a fresh output, so that a
        frontend that ignores display updates shows it too; then empty the progress line."""
        self._publish(markdown_bundle(caption, _plain(caption)), metadata_for(metadata))
        if self._rich:
            self._publish({}, {}, transient={"display_id": self._id}, update=True)


def show_image(publish: Publisher, image: GeneratedImage, metadata: dict[str, Any]) -> None:
    """Publish one image as plain display data (renders everywhere, headless included), its
    prompt as the alt text nbconvert and screen readers read from the output metadata."""
    alt = {image.mime_type: {"alt": image.prompt}}
    publish(image.display_data(), {**metadata_for(metadata), **alt})


class ImageGallery:
    """Shows the images of concurrent requests in request order, whatever order they
    arrive in: each as soon as those requested before it are shown, failed or stopped.

    With several images each gets a line with its number and seed, so "seed 42 gives the
    first one back" can be seen. A terminal shows no pixels: there each image is saved to
    a temporary file whose path is printed (``keep_files``), unless ``--save`` keeps them.
    Everything is plain display data: nothing needs a live kernel to show again.
    """

    def __init__(self, publish: Publisher, total: int, rich: bool, keep_files: bool) -> None:
        self._publish = publish
        self._total = total
        self._rich = rich
        self._keep_files = keep_files
        self._folder: Path | None = None
        self._waiting: dict[int, ImageResult] = {}
        self._next = 0

    def add(self, part: ImageResult) -> None:
        """One request's images arrived: show them, and any that waited for them."""
        index = part.request_index if part.request_index is not None else self._next
        self._waiting[index] = part
        while self._next in self._waiting:
            self._show(index=self._next, part=self._waiting.pop(self._next))
            self._next += 1

    def flush(self) -> None:
        """Show every image still waiting (a request before it failed or was stopped)."""
        for index in sorted(self._waiting):
            self._show(index, self._waiting.pop(index))

    def _show(self, index: int, part: ImageResult) -> None:
        for image in part.images:
            metadata = {**part.metadata(), "seed": image.seed}
            if not self._rich:
                self._print(image, metadata)
                continue
            if self._total > 1:
                label = f"{index + 1} of {self._total}"
                if image.seed is not None:
                    label += f" · seed {image.seed}"
                self._publish(markdown_bundle(f"**{label}**", label), metadata_for(metadata))
            show_image(self._publish, image, metadata)

    def _print(self, image: GeneratedImage, metadata: dict[str, Any]) -> None:
        text = image.alt_text()
        if self._keep_files:
            if self._folder is None:
                self._folder = Path(tempfile.mkdtemp(prefix="deepinfra-images-"))
            text += f" saved to {image.save(self._folder)}"
        self._publish({"text/plain": text}, metadata_for(metadata))


# --- the models table, the conversation, where the list came from -------------------


def models_table(models: list[ModelInfo], status: str, pattern: str | None) -> tuple[str, str]:
    """The model list under its status line, as (Markdown table, aligned plain text)."""
    header = "| Model | Type | Context | Price |\n|---|---|---|---|"
    rows = [
        f"| `{m.name}`{_deprecated_mark(m)} | {_kind(m)} | {_context(m.context_length)} "
        f"| {markdown_price(m)} |"
        for m in models
    ]
    if not rows:
        what = f" matching {pattern!r}" if pattern else ""
        body = f"No models{what}. A model that is not featured can still be used by name."
        return f"{status}\n\n{body}", f"{status}\n\n{body}"
    return f"{status}\n\n{header}\n" + "\n".join(rows), status + "\n\n" + _text_table(models)


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
        extra = _attached_note(exchange.content)
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


def _attached_note(content: Any) -> str:
    """`` [+ 1 image]`` after a prompt that was sent with images."""
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


def _text_table(models: list[Any]) -> str:
    rows = [("MODEL", "TYPE", "CONTEXT", "PRICE")]
    rows += [
        (m.name + _deprecated_mark(m).replace("`", ""), _kind(m), _context(m.context_length),
         m.price_text() or "—")
        for m in models
    ]  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join(
        f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:<{widths[2]}}  {row[3]}"
        for row in rows
    )


def model_picker(
    publish: Publisher, settings: Any, models: list[ModelInfo], kind: str | None, widgets: bool
) -> Any:
    """A dropdown that sets ``settings``' default (image) model, when a widget frontend
    (``widgets``) can show it; else a line saying how to set it. A pick replaces the
    dropdown with a Markdown line, so a saved notebook shows text, not a dead widget.
    Returns the dropdown (None when none is shown)."""
    trait = "default_image_model" if kind == "image" else "default_model"
    names = [m.name for m in models if m.kind == ("image" if kind == "image" else "text")]
    if not names:
        print("Nothing to pick from: widen the filter.")
        return None
    if not widgets:
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
    shown = {"display_id": f"deepinfra-pick-{dropdown.model_id}"}

    def chosen(change: dict[str, Any]) -> None:
        if change.get("new"):
            setattr(settings, trait, change["new"])
            line = f"{trait} = `{change['new']}` (picked; run the cell again to pick another)"
            publish(markdown_bundle(line, line.replace("`", "")), {}, transient=shown, update=True)

    dropdown.observe(chosen, names="value")
    publish(
        {
            **dropdown._repr_mimebundle_(),
            "text/plain": f"Pick {trait} (now {current}); or %config DeepInfraMagics.{trait}",
        },
        {},
        transient=shown,
    )
    return dropdown
