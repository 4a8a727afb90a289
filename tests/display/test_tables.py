"""Tables and the model picker (display/tables.py), through a recording publisher."""

from __future__ import annotations

from types import SimpleNamespace

from deepinfra_magic.catalog import ModelInfo
from deepinfra_magic.display import Frontend, model_picker
from tests.display.recorder import Recorder
from tests.kernel_helpers import PLAIN, notebook_view


def test_a_pick_replaces_the_dropdown_with_text_so_a_saved_notebook_needs_no_kernel() -> None:
    recorder = Recorder()
    settings = SimpleNamespace(default_model="a/first")
    models = [ModelInfo("a/first", "text"), ModelInfo("b/second", "text")]
    dropdown = model_picker(Frontend(recorder, live=True, widgets=True), settings, models, None)
    widget = "application/vnd.jupyter.widget-view+json"
    assert [widget in o.data for o in notebook_view(recorder.outputs)] == [True]

    dropdown.value = "b/second"
    assert settings.default_model == "b/second"
    (shown,) = notebook_view(recorder.outputs)
    assert widget not in shown.data
    assert (
        shown.data[PLAIN] == "default_model = b/second (picked; run the cell again to pick another)"
    )
