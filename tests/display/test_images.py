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
    progress.finish("`org/flux` · 2.0 s", 2, {"model": "org/flux"})
    return recorder


def test_a_notebook_keeps_the_progress_line_saying_what_was_made_then_the_caption() -> None:
    recorder = run_progress(live=True)
    assert [o.update for o in recorder.outputs] == [False, True, True, False]
    assert "1 of 2 done" in recorder.outputs[1].data[PLAIN]
    # Nothing is left empty (a saved notebook would keep an empty box), the caption once.
    assert [o.data[PLAIN] for o in notebook_view(recorder.outputs)] == [
        "✓ Generated 2 images with org/flux",
        "org/flux · 2.0 s",
    ]
    assert all(o.data for o in recorder.outputs)


def test_the_progress_line_ends_saying_how_many_images_were_made() -> None:
    def ended(kept: int, total: int) -> str:
        recorder = Recorder()
        progress = ImageProgress(Frontend(recorder, True), "org/flux", total)
        progress.start()
        progress.finish("caption", kept)
        return str(notebook_view(recorder.outputs)[0].data[PLAIN])

    assert ended(1, 1) == "✓ Generated an image with org/flux"
    assert ended(2, 3) == "Generated 2 of 3 images with org/flux"
    assert ended(0, 1) == "Generated no image with org/flux"


def test_a_terminal_prints_the_start_line_once_then_the_caption() -> None:
    recorder = run_progress(live=False)
    assert console_view(recorder.outputs) == [
        "⏳ Generating 2 images with org/flux · 0 s · 0 of 2 done",
        "org/flux · 2.0 s",
    ]
    assert not any(o.update for o in recorder.outputs)
