"""Showing replies and images: throttled live Markdown in notebooks, plain stdout elsewhere.

A notebook gets display data updated in place (``update_display_data``), coalesced so
that update traffic stays a small multiple of the reply; very long replies are frozen
into segments at paragraph breaks so each update stays small. A terminal (or any
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

from ._buffer import TextBuffer
from ._markdown import escape_dollars

if TYPE_CHECKING:
    from .images import GeneratedImage, ImageResult
    from .types import ChatResult

__all__ = [
    "ImageGallery",
    "LiveSection",
    "Publisher",
    "ReplyView",
    "StdoutReplyView",
    "Throttle",
    "markdown_bundle",
    "rich_display_available",
    "safe_split_point",
]

METADATA_KEY = "deepinfra_magic"
# Coalescing: at least `update_interval` between updates, and at most this many bytes of
# update traffic per second, so the interval grows with the text being resent.
UPDATE_BYTES_PER_SECOND = 6_000
# A live segment longer than this is frozen at a paragraph break (outside code fences).
SEGMENT_CHARS = 8_000


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


class ReplyView:
    """A streamed reply in a notebook: placeholder, reasoning, answer, footer."""

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
            self.answer = self._section(markdown_bundle if self._markdown else _plain_bundle)
        self.answer.append(delta)

    def finish(self, footer: str, metadata: dict[str, Any], note: str = "") -> None:
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
                markdown_bundle(text, _plain(text)),
                metadata_for(metadata),
                transient={"display_id": self._placeholder},
                update=True,
            )
            self._placeholder_free = False
        elif note:  # only reasoning arrived: the note goes below it
            self._publish(markdown_bundle(note, _plain(note)), metadata_for(metadata))
        if footer:
            self._publish(markdown_bundle(footer, _plain(footer)), metadata_for(metadata))


def _plain_bundle(text: str) -> dict[str, str]:
    return {"text/plain": text}


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
        self._throttle = Throttle(update_interval, bytes_per_second=float("inf"))
        self._section = ""

    def start(self) -> None:
        """Say which model is being asked."""
        self._out.write(f"⏳ {self._model}…\n")

    def _write(self, section: str, header: str, delta: str) -> None:
        if self._section != section:
            self._out.write(header)
            self._section = section
        self._out.write(delta)
        if self._throttle.due(0):
            self._out.flush()
            self._throttle.sent()

    def add_reasoning(self, delta: str) -> None:
        """Reasoning, under its own header."""
        self._write("reasoning", "💭 Reasoning:\n", delta)

    def add_answer(self, delta: str) -> None:
        """Answer text."""
        header = "\n\n" if self._section == "reasoning" else ""
        self._write("answer", header, delta)

    def finish(self, footer: str, metadata: dict[str, Any], note: str = "") -> None:
        """End the reply with the note (interrupt/error) and the footer line."""
        del metadata  # text frontends have no output metadata
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
        """Replace the progress line with the caption (or the note of what went wrong)."""
        if self._rich:
            self._show(caption, update=True, metadata=metadata or {})
        else:
            self._publish(markdown_bundle(caption, _plain(caption)), metadata_for(metadata))


def show_image(publish: Publisher, image: GeneratedImage, metadata: dict[str, Any]) -> None:
    """Publish one image as plain display data (renders everywhere, headless included)."""
    publish(image.display_data(), metadata_for(metadata))


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
