"""A streamed reply's end and its text-only twin (display/reply.py), through a recording
publisher: what a notebook and jupyter console show."""

from __future__ import annotations

import io

from deepinfra_magic.display import Frontend, ReplyView, StdoutReplyView, reply_view
from tests.display.recorder import Clock, Recorder, saved_outputs, stream, words
from tests.kernel_helpers import MARKDOWN, METADATA_KEY, PLAIN, console_view, notebook_view

# --- the end of a reply --------------------------------------------------------------------------


def test_the_reply_ends_in_its_live_outputs_leaving_none_empty() -> None:
    clock, recorder = Clock(), Recorder()
    view = ReplyView(recorder, "m", 0.1, clock=clock)
    view.start()
    reasoning = "".join(f"Thought {i}.\n" for i in range(300))
    for token in words(reasoning):
        clock.now += 0.005
        view.add_reasoning(token)
    answer = "\n\n".join(f"Answer paragraph {i}, with a few more words." for i in range(150))
    stream(view, clock, words(answer), rate=200)
    view.finish("footer", {"model": "m"}, text=answer, reasoning=reasoning)

    saved = saved_outputs(recorder.outputs)
    assert all(output.data for output in saved)  # no empty box in a saved notebook
    assert len(saved) <= 11 * 3 + 2
    *parts, footer = saved
    plains = [str(part.data[PLAIN]) for part in parts]
    thinking = [p for p in plains if not p.startswith("Answer")]
    assert "".join(thinking) == "💭 Reasoning:\n" + reasoning
    assert "".join(plains[len(thinking) :]) == answer
    assert all(part.metadata == {METADATA_KEY: {"model": "m"}} for part in parts)
    # The answer's parts are whole paragraphs, as the finished Markdown shows them.
    assert all(str(p.data[MARKDOWN]).startswith("Answer") for p in parts[len(thinking) :])
    assert all(str(p.data[MARKDOWN]).endswith("\n\n") for p in parts[len(thinking) : -1])
    assert footer.data == {MARKDOWN: "footer", PLAIN: "footer"}
    # A frontend that ignores updates prints the placeholder, then the whole reply once.
    assert console_view(recorder.outputs) == [
        "⏳ Asking m…",
        f"💭 Reasoning:\n{reasoning}\n{answer}\nfooter",
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
