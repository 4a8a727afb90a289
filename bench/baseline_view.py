"""The live view as it was before the steady-pace redesign, kept as the benchmarks'
baseline: the update interval grows with the live segment (6,000 bytes/s of traffic), and
a segment is frozen only at a paragraph break outside code, past 8,000 characters.

``BaselineReplyView`` has the current view's interface, so the magic can run with it:
:func:`swap_reply_view` makes the magic build it.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from typing import Any

from deepinfra_magic._buffer import TextBuffer
from deepinfra_magic.display import Publisher, markdown_bundle, metadata_for, plain

__all__ = ["BaselineReplyView", "swap_reply_view"]

UPDATE_BYTES_PER_SECOND = 6_000
SEGMENT_CHARS = 8_000


class Throttle:
    """Decides when an update is due: never more often than ``interval``, and less often
    as the resent text grows (at most ``bytes_per_second`` of update traffic)."""

    def __init__(
        self,
        interval: float,
        bytes_per_second: float = UPDATE_BYTES_PER_SECOND,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = interval
        self.bytes_per_second = bytes_per_second
        self.clock = clock
        self.last = -1e9

    def due(self, size: int) -> bool:
        """True if an update of ``size`` characters may be sent now."""
        elapsed = self.clock() - self.last
        return elapsed >= self.interval and elapsed >= size / self.bytes_per_second

    def sent(self) -> None:
        """Note that an update went out now."""
        self.last = self.clock()


_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})", re.MULTILINE)


def safe_split_point(text: str, limit: int) -> int:
    """Index of the last paragraph break at or after which ``text`` can be cut without
    splitting a code fence, searching up to ``limit``; 0 when there is none."""
    cut = 0
    inside = False
    fence = ""
    position = 0
    for line in text[:limit].splitlines(keepends=True):
        match = _FENCE.match(line)
        if match:
            marker = match.group(1)
            if not inside:
                inside, fence = True, marker[0] * 3
            elif marker.startswith(fence):
                inside = False
        position += len(line)
        if not inside and line.strip() == "" and position < len(text):
            cut = position
    return cut


class LiveSection:
    """One growing piece of text shown through display handles, updated coalesced.

    The first handle may already exist (a placeholder); when the text outgrows
    ``SEGMENT_CHARS`` the finished part is frozen into its own output and a new
    handle continues with the rest, so each update resends only the live tail.
    """

    def __init__(
        self,
        publish: Publisher,
        render: Callable[[str], dict[str, str]],
        throttle: Throttle,
        display_id: str | None = None,
        segment_chars: int = SEGMENT_CHARS,
    ) -> None:
        self._publish = publish
        self._render = render
        self._throttle = throttle
        self._segment_chars = segment_chars
        self._display_id = display_id  # an existing handle to take over, if any
        self._shown = display_id is not None
        self._parts = TextBuffer()
        self._live_start = 0  # index in the full text where the live segment starts
        self._length = 0
        self._dirty = False

    @property
    def text(self) -> str:
        """Everything appended so far."""
        return str(self._parts)

    def append(self, delta: str) -> None:
        """Add text; an update goes out if one is due."""
        self._parts.append(delta)
        self._length += len(delta)
        self._dirty = True
        if self._throttle.due(self._length - self._live_start):
            self.flush()

    def flush(self, metadata: dict[str, Any] | None = None, suffix: str = "") -> None:
        """Send the current text now. ``metadata`` marks the final update, which always
        goes out and carries the full bundle (Markdown and its text/plain fallback)."""
        final = metadata is not None
        if not self._dirty and not final:
            return
        live = self.text[self._live_start :]
        if len(live) > self._segment_chars:
            cut = safe_split_point(live, len(live) - 1)
            if cut > 0:  # freeze the finished part where Markdown can be split safely
                self._send(live[:cut], metadata or {}, final=True)
                self._live_start += cut
                self._display_id = None
                live = live[cut:]
        self._send(live + suffix, metadata or {}, final=final)
        self._dirty = False
        self._throttle.sent()

    def _send(self, text: str, metadata: dict[str, Any], final: bool) -> None:
        bundle = self._render(text)
        if not final and len(bundle) > 1:
            # Intermediate updates only reach Markdown-capable frontends (that is how the
            # view was chosen): skip the text/plain copy to halve the traffic.
            bundle.pop("text/plain", None)
        if self._display_id is None:
            self._display_id = uuid.uuid4().hex
            update = False
        else:
            update = self._shown
        self._publish(
            bundle,
            metadata_for(metadata),
            transient={"display_id": self._display_id},
            update=update,
        )
        self._shown = True


def _quote(text: str) -> str:
    """Markdown blockquote of ``text`` (the model's reasoning, kept apart from the answer)."""
    return "\n".join("> " + line if line else ">" for line in text.split("\n"))


class BaselineReplyView:
    """The old streamed reply: placeholder, reasoning, answer, footer, all in place."""

    def __init__(
        self,
        publish: Publisher,
        model: str,
        update_interval: float,
        markdown: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._publish = publish
        self._interval = update_interval
        self._markdown = markdown
        self._clock = clock  # replaceable, so a benchmark can replay a reply's timing
        self._model = model
        self._placeholder = uuid.uuid4().hex
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

    def _section(self, render: Callable[[str], dict[str, str]]) -> LiveSection:
        """A new section, taking over the placeholder if it is still unused."""
        display_id = self._placeholder if self._placeholder_free else None
        self._placeholder_free = False
        throttle = Throttle(self._interval, clock=self._clock)
        return LiveSection(self._publish, render, throttle, display_id)

    def add_reasoning(self, delta: str) -> None:
        """Reasoning text: shown quoted and labelled, never mixed into the answer."""
        if self.reasoning is None:
            self.reasoning = self._section(
                lambda text: markdown_bundle(
                    "💭 **Reasoning**\n\n" + _quote(text), "💭 Reasoning:\n" + text
                )
            )
        self.reasoning.append(delta)

    def add_answer(self, delta: str) -> None:
        """Answer text, rendered as Markdown with a text/plain fallback."""
        if self.answer is None:
            if self.reasoning is not None:
                self.reasoning.flush()
            self.answer = self._section(markdown_bundle)
        self.answer.append(delta)

    def finish(
        self, footer: str, metadata: dict[str, Any], note: str = "", **_: str | None
    ) -> None:
        """Final updates (always sent: normal end, error or interrupt), then the footer
        (none when ``footer`` is empty)."""
        if self.reasoning is not None:
            self.reasoning.flush(metadata)
        suffix = f"\n\n{note}" if note else ""
        if self.answer is not None:
            self.answer.flush(metadata, suffix)
        elif self._placeholder_free:  # no answer: turn the placeholder into the note
            text = note or "*(empty reply)*"
            self._publish(
                markdown_bundle(text, plain(text)),
                metadata_for(metadata),
                transient={"display_id": self._placeholder},
                update=True,
            )
            self._placeholder_free = False
        elif note:  # only reasoning arrived: the note goes below it
            self._publish(markdown_bundle(note, plain(note)), metadata_for(metadata))
        if footer:
            self._publish(markdown_bundle(footer, plain(footer)), metadata_for(metadata))


def swap_reply_view(view_class: type) -> type:
    """Make ``%%deepinfra`` build its reply views from ``view_class``; returns the class it
    replaces. The magic asks ``display.reply_view``, which takes the class from
    ``display/reply.py`` when a cell runs, so that is where it is swapped; a swap that would
    not reach the magic fails here instead of measuring the wrong view."""
    from deepinfra_magic import display
    from deepinfra_magic.display import reply

    replaced: type = reply.ReplyView
    reply.ReplyView = view_class  # type: ignore[assignment,misc]
    probe = display.reply_view(display.Frontend(lambda *_, **__: None, live=True), "probe", 0.1)
    if type(probe) is not view_class:
        reply.ReplyView = replaced  # type: ignore[assignment,misc]
        raise RuntimeError(f"display.reply_view builds {type(probe).__name__}, not the swap")
    return replaced
