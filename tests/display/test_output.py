"""What a frontend receives from a LiveOutput (display/output.py): the display message,
the updates in place, the final fresh output and the emptied live one, or on a terminal
the one print. A recording publisher keeps every message as IPython's capturing one does.
"""

from __future__ import annotations

import pytest

from deepinfra_magic.display import Frontend, LiveOutput, finish_live, markdown_bundle, plain
from tests.display.recorder import Recorder
from tests.kernel_helpers import MARKDOWN, PLAIN, console_view, display_id, notebook_view


def test_the_first_show_displays_and_later_ones_update_in_place() -> None:
    recorder = Recorder()
    live = LiveOutput(recorder)
    live.show(markdown_bundle("⏳ *one*", "⏳ one"))
    live.show(markdown_bundle("⏳ *two*", "⏳ two"))
    first, second = recorder.outputs
    assert not first.update and second.update
    assert display_id(first) == display_id(second) == live.display_id
    (shown,) = notebook_view(recorder.outputs)
    assert shown.data == {MARKDOWN: "⏳ *two*", PLAIN: "⏳ two"}


def test_finish_publishes_a_fresh_output_then_empties_the_live_one() -> None:
    recorder = Recorder()
    live = LiveOutput(recorder)
    live.show(markdown_bundle("⏳ working"))
    live.finish(markdown_bundle("done"), {"model": "m"})
    _, final, emptied = recorder.outputs
    assert not final.update and display_id(final) is None
    assert final.metadata == {"deepinfra_magic": {"model": "m"}}
    assert emptied.update and emptied.data == {} and display_id(emptied) == live.display_id
    # A notebook keeps only the end; a frontend that ignores updates prints both lines.
    assert [o.data[PLAIN] for o in notebook_view(recorder.outputs)] == ["done"]
    assert console_view(recorder.outputs) == ["⏳ working", "done"]


def test_a_terminal_gets_the_first_show_printed_once_and_the_end() -> None:
    recorder = Recorder()
    live = Frontend(recorder, live=False).live_output()
    live.show(markdown_bundle("⏳ 0 s"))
    live.show(markdown_bundle("⏳ 1 s"))
    live.update(markdown_bundle("⏳ 2 s"))
    live.finish(markdown_bundle("done"))
    assert not any(o.update for o in recorder.outputs)
    assert console_view(recorder.outputs) == ["⏳ 0 s", "done"]


def test_settle_keeps_the_end_in_place_of_the_live_line_or_as_a_fresh_output() -> None:
    shown_live, never_shown = Recorder(), Recorder()
    live = LiveOutput(shown_live)
    live.show(markdown_bundle("⏳ 3/4 done"))
    live.settle(markdown_bundle("✓ 4 rows"))
    assert [o.update for o in shown_live.outputs] == [False, True]
    LiveOutput(never_shown).settle(markdown_bundle("✓ 4 rows"))
    (fresh,) = never_shown.outputs
    assert not fresh.update and display_id(fresh) is None


def test_finish_live_ends_several_outputs_in_order() -> None:
    recorder = Recorder()
    outputs = [LiveOutput(recorder), LiveOutput(recorder)]
    for output in outputs:
        output.show({})
    finish_live(recorder, [markdown_bundle("answer"), markdown_bundle("footer")], None, outputs)
    ends = recorder.outputs[2:]
    assert [o.data.get(PLAIN) for o in ends[:2]] == ["answer", "footer"]
    assert [display_id(o) for o in ends[2:]] == [o.display_id for o in outputs]
    assert all(o.update and o.data == {} for o in ends[2:])


@pytest.mark.parametrize(
    ("markdown", "text"),
    [
        ("`m` · **interrupted**", "m · interrupted"),
        ("| `a` | \\$0.10 |", "| a | $0.10 |"),
        ("💡 `%deepinfra_explain` asks", "💡 %deepinfra_explain asks"),
    ],
)
def test_plain_drops_code_marks_and_emphasis_and_shows_dollars(markdown: str, text: str) -> None:
    assert plain(markdown) == text
