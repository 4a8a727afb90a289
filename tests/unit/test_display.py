"""The live view's pacing and freezing, on a fake clock (no sleeps, no timing thresholds).

A recording publisher stands in for the shell's (it keeps each message as IPython's
capturing publisher does); ``notebook_view``/``console_view`` read the messages the way
JupyterLab and jupyter console do.
"""

from __future__ import annotations

import io
import json
from types import SimpleNamespace
from typing import Any

import pytest
from IPython.utils.capture import RichOutput

from deepinfra_magic.catalog import ModelInfo
from deepinfra_magic.display import (
    MarkdownContext,
    ReplyView,
    StdoutReplyView,
    Throttle,
    model_picker,
)
from tests.kernel_helpers import MARKDOWN, PLAIN, console_view, display_id, notebook_view


class Clock:
    """Time that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Recorder:
    """Keeps every display message, as ``RichOutput`` objects."""

    def __init__(self) -> None:
        self.outputs: list[RichOutput] = []

    def __call__(
        self,
        data: dict[str, Any],
        metadata: dict[str, Any] | None = None,
        *,
        transient: dict[str, Any] | None = None,
        update: bool = False,
    ) -> None:
        self.outputs.append(RichOutput(data, metadata or {}, transient or {}, update))

    @property
    def bytes(self) -> int:
        return sum(len(json.dumps(o.data, ensure_ascii=False).encode()) for o in self.outputs)


def stream(view: ReplyView, clock: Clock, tokens: list[str], rate: float) -> None:
    """Feed ``tokens`` to the answer, ``rate`` a second, on the fake clock; then let one
    more update go out (as the next token would)."""
    for token in tokens:
        clock.now += 1 / rate
        view.add_answer(token)
    assert view.answer is not None
    view.answer.update()


def words(text: str) -> list[str]:
    """``text`` in 4-character tokens, like a model's."""
    return [text[i : i + 4] for i in range(0, len(text), 4)]


def live_texts(outputs: list[RichOutput]) -> list[str]:
    """What the live outputs show at this moment, in order (updates applied)."""
    return [o.data[MARKDOWN] for o in notebook_view(outputs)]


# --- Throttle -------------------------------------------------------------------------------------


def test_throttle_paces_updates_at_the_interval_and_waits_a_little_for_more_text() -> None:
    clock = Clock()
    throttle = Throttle(0.25, clock, min_chars=10)
    assert throttle.due(1)  # the first update goes out at once
    throttle.sent()
    clock.now += 0.125
    assert not throttle.due(1000)  # never more often than the interval
    clock.now += 0.125
    assert throttle.due(10)
    assert not throttle.due(3)  # little new text: wait...
    clock.now += 0.1875
    assert throttle.due(3)  # ...but never longer than 1.75 intervals


# --- MarkdownContext ----------------------------------------------------------------------------


def test_markdown_context_knows_fences_and_tables() -> None:
    context = MarkdownContext()
    for line in ["Text", "```python", "x = 1", "~~~", "``", "``` not the end"]:
        context.feed(line)
    assert context.prefix == "```python\n"  # none of those closes the fence
    context.feed("````")
    assert context.plain
    for line in ["| a | b |", "|---|:-:|", "| 1 | 2 |"]:
        context.feed(line)
    assert context.prefix == "| a | b |\n|---|:-:|\n"
    context.feed("")
    assert context.plain


# --- LiveSection through ReplyView ----------------------------------------------------------------


def test_updates_come_at_the_pace_and_the_first_text_at_once() -> None:
    clock, recorder = Clock(), Recorder()
    view = ReplyView(recorder, "m", 0.1, clock=clock)
    view.start()
    view.add_answer("Hello")
    assert live_texts(recorder.outputs) == ["Hello"]  # the placeholder took the text
    for _ in range(20):  # 20 ms of tokens: no update yet
        clock.now += 0.001
        view.add_answer("!")
    assert len(recorder.outputs) == 2
    for _ in range(400):  # 0.4 s more
        clock.now += 0.001
        view.add_answer("?")
    updates = [o for o in recorder.outputs if o.update]
    assert 4 <= len(updates) <= 5


def test_finished_parts_freeze_so_updates_resend_only_a_tail() -> None:
    clock, recorder = Clock(), Recorder()
    view = ReplyView(recorder, "m", 0.1, clock=clock)
    view.start()
    text = "".join(f"Line {i}: " + "word " * 10 + "\n" for i in range(300))  # 18 KB
    stream(view, clock, words(text), rate=200)
    # Read in order, the live outputs show the whole text: nothing lost or doubled.
    assert "".join(live_texts(recorder.outputs)) == text
    # Late updates do not start from the beginning and stay short.
    late = [o.data[MARKDOWN] for o in recorder.outputs[-20:] if o.update and o.data]
    assert late and all(len(shown) < 2000 for shown in late)
    # Every part ends at a line break, and parts are merged so that outputs stay few.
    assert all(shown.endswith("\n") for shown in live_texts(recorder.outputs)[:-1])
    assert len({display_id(o) for o in recorder.outputs}) <= 7 * 3 + 1


def test_a_code_fence_cut_while_streaming_is_reopened_in_the_next_output() -> None:
    clock, recorder = Clock(), Recorder()
    view = ReplyView(recorder, "m", 0.1, clock=clock)
    view.start()
    code = "".join(f"    value_{i} = compute({i})\n" for i in range(200))
    text = f"Here:\n\n```python\n{code}```\n\nDone.\n"
    stream(view, clock, words(text), rate=300)
    parts = live_texts(recorder.outputs)
    assert len(parts) > 1
    assert parts[0].startswith("Here:\n\n```python\n")
    inside = [p for p in parts[1:] if "value_" in p]
    assert inside and all(p.startswith("```python\n") for p in inside)
    # Without the reopened fences, the parts join to the text.
    assert "".join(parts[:1] + [p.removeprefix("```python\n") for p in parts[1:]]) == text


def test_a_table_cut_while_streaming_keeps_its_header() -> None:
    clock, recorder = Clock(), Recorder()
    view = ReplyView(recorder, "m", 0.1, clock=clock)
    view.start()
    header = "| Name | Value |\n|---|---:|\n"
    text = header + "".join(f"| row {i} | {i * 37} |\n" for i in range(300))
    stream(view, clock, words(text), rate=300)
    parts = live_texts(recorder.outputs)
    assert len(parts) > 1 and all(p.startswith(header) for p in parts)


def test_one_endless_line_is_cut_at_spaces() -> None:
    clock, recorder = Clock(), Recorder()
    view = ReplyView(recorder, "m", 0.1, clock=clock)
    view.start()
    text = "All one paragraph without any line break at all, going on and on. " * 200
    stream(view, clock, words(text), rate=300)
    parts = live_texts(recorder.outputs)
    assert len(parts) > 1 and "".join(parts) == text
    assert all(p.endswith(" ") for p in parts[:-1])


@pytest.mark.parametrize("rate", [100, 1000])
def test_update_traffic_stays_within_ten_times_the_text(rate: int) -> None:
    clock, recorder = Clock(), Recorder()
    view = ReplyView(recorder, "m", 0.1, clock=clock)
    view.start()
    block = "".join(f"    total_{i} = sum(v for v in values[{i % 5}:])\n" for i in range(300))
    text = ("Some prose to read.\n\n```python\n" + block + "```\n\n") * 5  # about 64 KB
    stream(view, clock, words(text), rate)
    view.finish("footer", {"model": "m"}, text=text)
    assert recorder.bytes <= 10 * len(text.encode())


# --- the end of a reply --------------------------------------------------------------------------


def test_the_end_is_one_fresh_output_each_then_the_live_ones_are_emptied() -> None:
    clock, recorder = Clock(), Recorder()
    view = ReplyView(recorder, "m", 0.1, clock=clock)
    view.start()
    reasoning = "".join(f"Thought {i}.\n" for i in range(300))
    for token in words(reasoning):
        clock.now += 0.005
        view.add_reasoning(token)
    answer = "".join(f"Answer line {i}.\n" for i in range(300))
    stream(view, clock, words(answer), rate=200)
    live = len(recorder.outputs)
    view.finish("footer", {"model": "m"}, text=answer, reasoning=reasoning)

    thinking, final, footer = notebook_view(recorder.outputs)
    assert not (thinking.update or final.update or footer.update)
    assert thinking.data[PLAIN] == "💭 Reasoning:\n" + reasoning
    assert final.data == {MARKDOWN: answer, PLAIN: answer}
    assert footer.data == {MARKDOWN: "footer", PLAIN: "footer"}
    # Everything after the finished outputs only empties live outputs.
    assert all(o.update and o.data == {} for o in recorder.outputs[live + 3 :])
    # The answer reused the reasoning's outputs, so the cell keeps few of them.
    created = [o for o in recorder.outputs if not o.update]
    assert len(created) <= 7 * 3 + 1 + 3
    # A frontend that ignores updates prints the placeholder, then the finished reply.
    assert console_view(recorder.outputs) == [
        "⏳ Asking m…",
        thinking.data[PLAIN],
        answer,
        "footer",
    ]


def test_text_that_never_reached_the_live_view_is_in_the_finished_reply() -> None:
    recorder = Recorder()
    view = ReplyView(recorder, "m", 0.1, clock=Clock())
    view.start()
    view.add_answer("Kept ")
    view.finish("footer", {}, "*⚠ stopped*", text="Kept and more that came with the error")
    final = notebook_view(recorder.outputs)[0]
    assert final.data[PLAIN] == "Kept and more that came with the error\n\n⚠ stopped"
    assert final.data[MARKDOWN].endswith("\n\n*⚠ stopped*")


def test_stdout_view_prints_once_and_adds_what_it_had_not_printed() -> None:
    out = io.StringIO()
    view = StdoutReplyView("m", 0.1, out)
    view.start()
    view.add_answer("Hello ")
    view.finish("`m` · 2 tokens", {}, text="Hello world")
    assert out.getvalue() == "⏳ m…\nHello world\n\nm · 2 tokens\n"


def test_a_pick_replaces_the_dropdown_with_text_so_a_saved_notebook_needs_no_kernel() -> None:
    recorder = Recorder()
    settings = SimpleNamespace(default_model="a/first")
    models = [ModelInfo("a/first", "text"), ModelInfo("b/second", "text")]
    dropdown = model_picker(recorder, settings, models, None, widgets=True)
    widget = "application/vnd.jupyter.widget-view+json"
    assert [widget in o.data for o in notebook_view(recorder.outputs)] == [True]

    dropdown.value = "b/second"
    assert settings.default_model == "b/second"
    (shown,) = notebook_view(recorder.outputs)
    assert widget not in shown.data
    assert (
        shown.data[PLAIN] == "default_model = b/second (picked; run the cell again to pick another)"
    )
