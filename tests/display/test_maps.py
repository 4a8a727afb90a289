"""A map run's progress (display/maps.py) in each form the frontend chooses, through a
recording publisher and a text stream."""

from __future__ import annotations

import io

from deepinfra_magic.display import Frontend, MapProgressView
from deepinfra_magic.maps import MapProgress
from tests.display.recorder import Recorder
from tests.kernel_helpers import PLAIN, notebook_view


def progress(done: int) -> MapProgress:
    return MapProgress(4, done, 0, 0, 10 * done, 5 * done, None, 1.0, 2, done)


def test_a_notebook_without_widgets_ends_with_the_summary_in_place_of_the_line() -> None:
    recorder = Recorder()
    view = MapProgressView(Frontend(recorder, live=True), "org/m")
    view.update(progress(1))
    view.update(progress(4))
    view.finish("**✓ 4 rows** with `org/m`")
    assert [o.update for o in recorder.outputs] == [False, True, True]
    (shown,) = notebook_view(recorder.outputs)
    assert shown.data[PLAIN] == "✓ 4 rows with org/m"


def test_a_terminal_rewrites_one_line_then_gets_the_summary() -> None:
    recorder, out = Recorder(), io.StringIO()
    view = MapProgressView(Frontend(recorder, live=False, stream=out), "org/m")
    view.update(progress(4))
    view.finish("**✓ 4 rows** with `org/m`")
    assert out.getvalue().startswith("\r⏳ org/m · 4/4 done") and out.getvalue().endswith("\n")
    (summary,) = recorder.outputs
    assert not summary.update and summary.data[PLAIN] == "✓ 4 rows with org/m"
