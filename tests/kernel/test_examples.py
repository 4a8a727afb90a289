"""Every example notebook runs top to bottom in replay mode, headless, with no key and no
network, and shows what a reader expects: streamed text, decoded images, replay labels."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from deepinfra_magic.images import image_size

pytestmark = pytest.mark.kernel

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NOTEBOOKS = sorted(path.stem for path in EXAMPLES.glob("*.ipynb"))


@pytest.fixture
def offline_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No key, and an API root nobody listens on: any live request would fail loudly."""
    for name in ("DEEPINFRA_API_KEY", "DEEPINFRA_API_TOKEN", "DEEPINFRA_MAGIC_RECORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DEEPINFRA_BASE_URL", "http://127.0.0.1:9/v1/openai")
    monkeypatch.setenv("DEEPINFRA_MAGIC_REPLAY_SPEED", "0")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    yield


def _execute(name: str) -> Any:
    notebook = nbformat.read(EXAMPLES / f"{name}.ipynb", as_version=4)
    NotebookClient(
        notebook,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(EXAMPLES)}},
    ).execute()
    return notebook


def _outputs(cell: Any) -> list[dict[str, Any]]:
    return list(cell.get("outputs", []))


def test_every_example_ships_with_its_recording_and_stripped_outputs() -> None:
    assert NOTEBOOKS == [
        "ask_about_your_plot", "classroom", "label_a_table", "quickstart", "workshop"
    ]  # fmt: skip
    for name in NOTEBOOKS:
        notebook = json.loads((EXAMPLES / f"{name}.ipynb").read_text())
        code = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
        assert all(not cell["outputs"] and cell["execution_count"] is None for cell in code)
        mode_cells = [cell for cell in code if "%deepinfra_replay" in "".join(cell["source"])]
        assert len(mode_cells) == 1, "one clearly marked cell chooses replay or live"
        assert f"{name}.recording.json --if-no-key" in "".join(mode_cells[0]["source"])
        assert (EXAMPLES / f"{name}.recording.json").is_file()


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_example_runs_offline_from_its_recording(name: str, offline_env: None) -> None:
    notebook = _execute(name)
    chats = images = error_lessons = 0
    lessons = False
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        outputs = _outputs(cell)
        errors = [o for o in outputs if o["output_type"] == "error"]
        if "python-error" in cell.metadata.get("tags", []):
            assert len(errors) == 1, cell.source  # a deliberate mistake in the user's code
            continue
        assert not errors, (cell.source, errors)  # so Run All and papermill go on
        if "raise_on_error" in cell.source:
            lessons = not lessons
            continue
        if lessons:
            # An error lesson shows its error as one line of display data, which every
            # frontend shows (Voilà drops stderr), and the run goes on.
            assert not [o for o in outputs if o.get("name") == "stderr"], cell.source
            shown = "".join(
                o["data"]["text/plain"]
                for o in outputs
                if o.get("metadata", {}).get("deepinfra_magic", {}).get("error_line")
            )
            assert re.fullmatch(r"[A-Za-z]+Error: [^\n]+", shown), (cell.source, shown)
            error_lessons += 1
            continue
        for output in outputs:
            data = output.get("data", {})
            info = output.get("metadata", {}).get("deepinfra_magic")
            if info and "finish_reason" in info:  # a reply or its footer
                assert info["replayed"] is True, "nothing may be labelled live"
                assert info["error"] is None and info["interrupted"] is False
            plain = data.get("text/plain", "")
            if "▶ replayed from" in plain and "tokens" in plain:
                chats += 1
            for mime in ("image/png", "image/jpeg", "image/webp"):
                if mime in data:
                    decoded = base64.b64decode(data[mime])
                    size = image_size(decoded)
                    assert size is not None and size[0] >= 64, "a real, decodable image"
                    if info:  # ours, not a plot the notebook draws itself
                        assert data["text/plain"].startswith("[image ")
                    images += 1
        if cell.source.startswith(("%%deepinfra ", "%%deepinfra\n")):
            replies = [o for o in outputs if "text/markdown" in o.get("data", {})]
            assert len(replies) >= 2, "a reply and its footer"
            text = replies[-2]["data"]["text/plain"]
            assert len(text) > 40 and "Markdown object" not in text
    if name == "label_a_table":  # a table, not a chat: see test_label_a_table_...
        return
    if name == "classroom":  # the teacher's notebook asks no model
        _check_classroom(notebook)
        return
    assert chats >= 4
    assert images >= 1
    assert error_lessons == (3 if name == "workshop" else 0)
    # Only plain display data: a saved notebook shows everything without a live kernel.
    widget = "application/vnd.jupyter.widget-view+json"
    assert not [o for c in notebook.cells for o in _outputs(c) if widget in o.get("data", {})]
    if name == "ask_about_your_plot":
        _check_ask_about_your_plot(notebook)


def _check_classroom(notebook: Any) -> None:
    """Five seats were minted for the quickstart's models and shown by their last 4
    characters; their status came back; no token is anywhere (the recording's are
    placeholders, and no output shows more than a tail)."""
    code = [c for c in notebook.cells if c.cell_type == "code"]
    text = {
        c.source: "\n".join(o.get("data", {}).get("text/plain", "") for o in _outputs(c))
        for c in code
    }
    created = next(v for k, v in text.items() if "%deepinfra_classroom create" in k)
    assert "5 seats signed by key 'auto'" in created and "both 0600" in created
    assert created.count("…") == 5 and "meta-llama/Llama-3.3-70B-Instruct-Turbo" in created
    status = next(v for k, v in text.items() if "%deepinfra_classroom status" in k)
    assert status.count("…") == 5 and "Key 'auto' spent $0.00 this month" in status
    assert status.count("meta-llama/Llama-3.3-70B-Instruct-Turbo") == 5 and "⚠" not in status
    saved = json.dumps(notebook) + (EXAMPLES / "classroom.recording.json").read_text()
    assert not re.search(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.", saved)


def _check_ask_about_your_plot(notebook: Any) -> None:
    """The figure and the table were attached, the caught error was explained, and the
    explanation and the history name the cells."""
    code = [c for c in notebook.cells if c.cell_type == "code"]
    text = {
        c.source: "\n".join(o.get("data", {}).get("text/plain", "") for o in _outputs(c))
        for c in code
    }

    def shown(start: str) -> str:
        return next(value for source, value in text.items() if source.startswith(start))

    assert "meta-llama/Llama-3.2-11B-Vision-Instruct" in shown("%deepinfra_models --vision")
    assert "text, vision" in shown("%deepinfra_models --vision")
    assert "· 1 image 800×400" in shown("%%deepinfra --see fig")
    assert "August" in shown("%%deepinfra --see fig")
    assert "· 1 image " in shown("%%deepinfra --see plt")  # the plot shown inline
    assert "· 1 table 12×3" in shown("%%deepinfra --see sales")
    assert 'august["price"]' in shown("august = ")  # explained inside its except block
    history = shown("%deepinfra_history")
    assert "You (In [6]): What does this plot show?" in history
    assert "You (In [9]): Explain the error of In [9]" in history


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_example_runs_clean_under_papermill(name: str, offline_env: None, tmp_path: Path) -> None:
    out = tmp_path / f"{name}.ipynb"
    command = [sys.executable, "-m", "papermill", "--cwd", str(EXAMPLES), "-k", "python3"]
    done = subprocess.run(
        [*command, "--no-progress-bar", str(EXAMPLES / f"{name}.ipynb"), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    executed = nbformat.read(out, as_version=4)
    code = [cell for cell in executed.cells if cell.cell_type == "code"]
    assert all(cell.execution_count for cell in code)
    assert not [o for c in code for o in _outputs(c) if o["output_type"] == "error"]


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_example_runs_clean_under_nbconvert_execute(
    name: str, offline_env: None, tmp_path: Path
) -> None:
    # No --allow-errors: like Run All, nbconvert stops at the first cell that fails.
    command = [sys.executable, "-m", "nbconvert", "--to", "notebook", "--execute"]
    done = subprocess.run(
        [*command, "--output-dir", str(tmp_path), str(EXAMPLES / f"{name}.ipynb")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=EXAMPLES,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    executed = nbformat.read(tmp_path / f"{name}.ipynb", as_version=4)
    assert all(cell.execution_count for cell in executed.cells if cell.cell_type == "code")


def test_quickstart_reply_text_is_the_recorded_one(offline_env: None) -> None:
    notebook = _execute("quickstart")
    streamed = [
        o["data"]["text/plain"]
        for cell in notebook.cells
        if cell.cell_type == "code" and cell.source.startswith("%%deepinfra")
        for o in _outputs(cell)
        if "text/markdown" in o.get("data", {})
    ]
    recording = json.loads((EXAMPLES / "quickstart.recording.json").read_text())
    first_chat = next(
        e for e in recording["exchanges"] if e["request"]["path"].endswith("/chat/completions")
    )
    first_words = "".join(
        json.loads(line[6:])["choices"][0]["delta"].get("content", "")
        for _, chunk in first_chat["response"]["chunks"]
        for line in chunk.split("\n")
        if line.startswith("data: {") and '"choices": [{' in line
    )[:60]
    assert streamed[0].startswith(first_words)


def test_label_a_table_fills_the_column_from_the_recording(offline_env: None) -> None:
    notebook = _execute("label_a_table")
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    mapped = [cell for cell in code if cell.source.startswith("%%deepinfra_map")]
    assert len(mapped) == 3
    for cell in mapped:
        summary = _outputs(cell)[-1]["data"]["text/plain"]
        assert "6 rows" in summary and "6 answered" in summary, summary
    assert (
        "replayed from label_a_table.recording.json"
        in _outputs(mapped[0])[-1]["data"]["text/plain"]
    )
    assert "Batch API job" in _outputs(mapped[2])[-1]["data"]["text/plain"]
    typed = next(cell for cell in code if "label_confidence" in cell.source)
    shown = _outputs(typed)[0]["data"]["text/plain"]
    assert "0.96" in shown and "mixed" in shown  # the typed columns, from the recording
    plot = next(cell for cell in code if ".plot.bar" in cell.source)
    assert any("image/png" in output.get("data", {}) for output in _outputs(plot))
    counts = next(cell for cell in code if "value_counts" in cell.source)
    shown = _outputs(counts)[0]["data"]["text/plain"]
    assert "positive" in shown and "negative" in shown and "mixed" in shown
    summaries = next(cell for cell in code if cell.source == "summaries")
    assert "Crushes ice well, but loud." in _outputs(summaries)[0]["data"]["text/plain"]
    usage = _outputs(code[-1])[0]["data"]["text/plain"]
    assert "map" in usage and "batch" in usage
