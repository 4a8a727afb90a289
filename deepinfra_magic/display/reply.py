"""A streamed reply: live in a notebook, printed once in a terminal; its footer line.

Rules kept here:

* The frontend is chosen once (:func:`reply_view` reads the :class:`~.output.Frontend`).
* Reasoning is shown quoted and labelled, never mixed into the answer.
* The view only makes bundles: display ids, updates and the end of the live outputs
  belong to :class:`~.output.LiveOutput` and :func:`~.output.settle_live`.
* A reply ends in place: every output it displayed keeps a part of the finished text
  (cut at block boundaries by :func:`~.live.split_blocks`), none is left empty.
* The finished reply is everything received, even what never reached the live view.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO

from .._buffer import TextBuffer
from .live import LiveSection, Throttle, split_blocks
from .output import Frontend, LiveOutput, Publisher, markdown_bundle, plain, settle_live

if TYPE_CHECKING:
    from ..types import ChatResult

__all__ = [
    "REASONING_HEADER",
    "ReplyView",
    "StdoutReplyView",
    "money",
    "reply_footer",
    "reply_view",
]


def _quote(text: str) -> str:
    """Markdown blockquote of ``text`` (the model's reasoning, kept apart from the answer)."""
    return "\n".join("> " + line if line else ">" for line in text.split("\n"))


REASONING_HEADER = "💭 **Reasoning**\n\n"


def _reasoning_bundle(text: str, first: bool = True) -> dict[str, str]:
    header = REASONING_HEADER if first else ""
    return markdown_bundle(header + _quote(text), ("💭 Reasoning:\n" if first else "") + text)


def _answer_bundle(text: str, first: bool = True) -> dict[str, str]:
    return markdown_bundle(text)


def _text_bundle(text: str, first: bool = True) -> dict[str, str]:
    return {"text/plain": text}


class ReplyView:
    """A streamed reply in a notebook: placeholder, live reasoning and answer, and at the
    end the finished reasoning and answer in the outputs they streamed in, then the footer.

    The reply ends in place (:func:`~.output.settle_live`): each output it displayed gets a
    part of the finished text, so a saved notebook holds no empty output, and nothing else
    printed in the cell (a notice on stderr, an earlier reply) is touched, which
    ``clear_output`` would wipe. The footer is fresh ``display_data`` whose first text/plain
    carries the whole reply, so jupyter console (it ignores display updates) prints it.
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
        self._placeholder = LiveOutput(publish)
        self._placeholder_free = True
        self.reasoning: LiveSection | None = None
        self.answer: LiveSection | None = None

    def start(self) -> None:
        """Show the placeholder naming the model (nothing empty before the first token).

        Separate from construction, so the caller can show it inside the region where a
        Ctrl-C still leads to :meth:`finish`: its display id exists before it is sent.
        """
        label = f"⏳ *Asking `{self._model}`…*"
        self._placeholder.show(markdown_bundle(label, f"⏳ Asking {self._model}…"))

    def _section(
        self, render: Callable[[str, bool], dict[str, str]], markdown: bool
    ) -> LiveSection:
        """A new section in new outputs, or taking over the unused placeholder."""
        if self._placeholder_free:
            self._placeholder_free = False
            return LiveSection(
                self._publish, render, self._throttle, [self._placeholder], markdown, True
            )
        return LiveSection(self._publish, render, self._throttle, None, markdown)

    def add_reasoning(self, delta: str) -> None:
        """Reasoning text: shown quoted and labelled, never mixed into the answer."""
        if self.reasoning is None:
            self.reasoning = self._section(_reasoning_bundle, True)
        self.reasoning.append(delta)

    def add_answer(self, delta: str) -> None:
        """Answer text, rendered as Markdown with a text/plain fallback."""
        if self.answer is None:
            if self.reasoning is not None:
                self.reasoning.close()
            render = _answer_bundle if self._markdown else _text_bundle
            self.answer = self._section(render, self._markdown)
        self.answer.append(delta)

    def finish(
        self,
        footer: str,
        metadata: dict[str, Any],
        note: str = "",
        *,
        text: str | None = None,
        reasoning: str | None = None,
        plain_text: str | None = None,
    ) -> None:
        """End the reply (normally, on an error or on Ctrl-C): the reasoning and the answer
        (``text``/``reasoning`` when given: everything received, even what never reached
        the live view) with the note, in the outputs they streamed in; then the footer
        (none when empty), fresh. ``plain_text`` is the answer's text/plain when it is not
        ``text`` itself (a typed answer: a table in Markdown, its raw JSON in text/plain),
        shown whole in one output.
        """
        if reasoning is None:
            reasoning = self.reasoning.text if self.reasoning is not None else ""
        if text is None:
            text = self.answer.text if self.answer is not None else ""
        slots = [section.release() if section is not None else [] for section in (
            self.reasoning, self.answer)]  # fmt: skip
        if self._placeholder_free:  # nothing streamed: the first part takes its place
            slots[0 if reasoning else 1].insert(0, self._placeholder)
        placed: list[tuple[LiveOutput, dict[str, str]]] = []
        closing: list[dict[str, str]] = []
        missed: list[str] = []
        answer = text
        if not text and (note or not reasoning):
            answer, note = "", note or "*(empty reply)*"
        for kind, body, outputs in (
            ("reasoning", reasoning, slots[0]),
            ("answer", answer, slots[1]),
        ):
            count = len(outputs) if kind == "reasoning" or plain_text is None else 1
            bundles = self._part_bundles(kind, body, note if kind == "answer" else "", count)
            if kind == "answer" and plain_text is not None and text:
                shown = f"{plain_text}\n\n{plain(note)}" if note else plain_text
                bundles = [{**bundle, "text/plain": shown} for bundle in bundles]
            if not bundles:
                continue
            if missed:
                missed.append("\n")
            missed += (str(bundle.get("text/plain", "")) for bundle in bundles)
            placed += zip(outputs, bundles, strict=False)
            closing += bundles[len(outputs) :]
            for leftover in outputs[len(bundles) :]:
                leftover.empty()  # a reply shorter than its outputs: none has happened yet
        if footer:
            closing.append(markdown_bundle(footer, plain(footer)))
        settle_live(self._publish, placed, closing, metadata, missed if placed else ())

    def _part_bundles(self, kind: str, text: str, note: str, count: int) -> list[dict[str, str]]:
        """The bundles of ``text`` cut into (up to) ``count`` parts, ``note`` under the last."""
        if not text and not note:
            return []
        if kind == "answer" and not text:
            return [markdown_bundle(note, plain(note))]
        parts = split_blocks(text, count)
        bundles = []
        for index, (prefix, part) in enumerate(parts):
            last = index == len(parts) - 1
            if kind == "reasoning":
                bundle = _reasoning_bundle(prefix + part, index == 0)
                bundle["text/plain"] = ("💭 Reasoning:\n" if index == 0 else "") + part
            elif self._markdown:
                markdown = f"{prefix}{part}\n\n{note}" if note and last else prefix + part
                bundle = markdown_bundle(
                    markdown, f"{part}\n\n{plain(note)}" if note and last else part
                )
            else:
                bundle = {"text/plain": f"{part}\n\n{plain(note)}" if note and last else part}
            bundles.append(bundle)
        return bundles


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
        self._answer = TextBuffer()  # the answer as printed (not one str per token)

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
        self._answer.append(delta)
        self._write("answer", header, delta)

    def finish(
        self,
        footer: str,
        metadata: dict[str, Any],
        note: str = "",
        *,
        text: str | None = None,
        reasoning: str | None = None,
        plain_text: str | None = None,
    ) -> None:
        """End the reply: whatever of ``reasoning``/``text`` was received but not printed
        yet (a reply that was not streamed, text that came with an error), the note
        (interrupt/error) and the footer line."""
        del metadata  # text frontends have no output metadata
        if plain_text is not None:  # a typed answer: its raw JSON, printed whole if repaired
            if not plain_text.startswith(str(self._answer)):
                self._out.write("\n\n")
                self._printed["answer"] = 0
            text = plain_text
        if (
            reasoning
            and len(reasoning) > self._printed["reasoning"]
            and not self._printed["answer"]
        ):
            self.add_reasoning(reasoning[self._printed["reasoning"] :])
        if text and len(text) > self._printed["answer"]:
            self.add_answer(text[self._printed["answer"] :])
        if note:
            self._out.write(f"\n\n{plain(note)}")
        self._out.write(f"\n\n{plain(footer)}\n" if footer else "\n")
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


def reply_view(
    frontend: Frontend, model: str, update_interval: float, markdown: bool = True
) -> ReplyView | StdoutReplyView:
    """The view of a streamed reply on ``frontend``: live outputs in a notebook, text
    printed once elsewhere (``markdown=False`` shows the answer as plain text)."""
    if frontend.live:
        return ReplyView(frontend.publish, model, update_interval, markdown)
    return StdoutReplyView(model, update_interval, frontend.stream)
