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


WIDGET = "application/vnd.jupyter.widget-view+json"


def test_a_widget_bar_is_replaced_by_a_static_line_when_the_run_ends() -> None:
    # A saved notebook keeps no widget state: a bar left in it reads "model not found".
    recorder = Recorder()
    view = MapProgressView(Frontend(recorder, live=True, widgets=True), "org/m")
    view.update(progress(1))
    view.update(progress(4))
    assert WIDGET in recorder.outputs[0].data
    view.finish("**✓ 4 rows** with `org/m`")
    line, summary = notebook_view(recorder.outputs)
    assert WIDGET not in line.data
    assert line.data[PLAIN].startswith("✓ org/m · 4/4 done")
    assert summary.data[PLAIN] == "✓ 4 rows with org/m" and not recorder.outputs[-1].update


def test_a_stopped_run_keeps_no_eta_and_is_not_marked_done() -> None:
    recorder = Recorder()
    view = MapProgressView(Frontend(recorder, live=True, widgets=True), "org/m")
    view.update(progress(2))
    view.finish("**⏹ 4 rows** with `org/m`", stopped=True)
    line, _ = notebook_view(recorder.outputs)
    assert line.data[PLAIN].startswith("⏹ org/m · 2/4 done")
    assert line.data[PLAIN].endswith("· stopped")
    assert "ETA" not in line.data[PLAIN] and "✓" not in line.data[PLAIN]
