"""What a frontend receives from a LiveOutput (display/output.py): the display message,
the updates in place, the end settled in place with fresh closing outputs, or on a
terminal the one print. A recording publisher keeps every message as IPython's capturing one does.
"""

from __future__ import annotations

import pytest

from deepinfra_magic.display import Frontend, LiveOutput, markdown_bundle, plain, settle_live
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


def test_settle_live_ends_in_place_then_a_fresh_closing_output() -> None:
    recorder = Recorder()
    live = LiveOutput(recorder)
    live.show(markdown_bundle("⏳ working"))
    settle_live(
        recorder, [(live, markdown_bundle("✓ worked"))], [markdown_bundle("done")], {"model": "m"}
    )
    _, placed, final = recorder.outputs
    assert placed.update and display_id(placed) == live.display_id
    assert not final.update and display_id(final) is None
    assert final.metadata == {"deepinfra_magic": {"model": "m"}}
    # A notebook keeps both, none empty; a frontend that ignores updates prints the first
    # line and the end.
    assert [o.data[PLAIN] for o in notebook_view(recorder.outputs)] == ["✓ worked", "done"]
    assert console_view(recorder.outputs) == ["⏳ working", "done"]


def test_a_terminal_gets_the_first_show_printed_once_and_the_end() -> None:
    recorder = Recorder()
    live = Frontend(recorder, live=False).live_output()
    live.show(markdown_bundle("⏳ 0 s"))
    live.show(markdown_bundle("⏳ 1 s"))
    live.update(markdown_bundle("⏳ 2 s"))
    settle_live(recorder, [(live, markdown_bundle("✓ 2 s"))], [markdown_bundle("done")], None)
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
