"""A streamed reply's end and its text-only twin (display/reply.py), through a recording
publisher: what a notebook and jupyter console show."""

from __future__ import annotations

import io

from deepinfra_magic.display import Frontend, ReplyView, StdoutReplyView, reply_view
from tests.display.recorder import Clock, Recorder, stream, words
from tests.kernel_helpers import MARKDOWN, PLAIN, console_view, notebook_view

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


def test_the_frontend_chooses_the_reply_view() -> None:
    recorder, out = Recorder(), io.StringIO()
    assert isinstance(reply_view(Frontend(recorder, live=True), "m", 0.1), ReplyView)
    text_view = reply_view(Frontend(recorder, live=False, stream=out), "m", 0.1)
    text_view.start()
    assert out.getvalue() == "⏳ m…\n" and not recorder.outputs
