"""The image progress line (display/images.py) on a notebook and on a terminal, through a
recording publisher."""

from __future__ import annotations

from deepinfra_magic.display import Frontend, ImageProgress
from tests.display.recorder import Recorder
from tests.kernel_helpers import PLAIN, console_view, notebook_view


def run_progress(live: bool) -> Recorder:
    recorder = Recorder()
    progress = ImageProgress(Frontend(recorder, live), "org/flux", 2)
    progress.start()
    progress.tick(1.0, 1)
    progress.finish("`org/flux` · 2.0 s", {"model": "org/flux"})
    return recorder


def test_a_notebook_keeps_only_the_caption_after_the_live_progress_line() -> None:
    recorder = run_progress(live=True)
    assert [o.update for o in recorder.outputs] == [False, True, False, True]
    assert "1 of 2 done" in recorder.outputs[1].data[PLAIN]
    assert [o.data[PLAIN] for o in notebook_view(recorder.outputs)] == ["org/flux · 2.0 s"]


def test_a_terminal_prints_the_start_line_once_then_the_caption() -> None:
    recorder = run_progress(live=False)
    assert console_view(recorder.outputs) == [
        "⏳ Generating 2 images with org/flux · 0 s · 0 of 2 done",
        "org/flux · 2.0 s",
    ]
    assert not any(o.update for o in recorder.outputs)
