"""Every example notebook runs top to bottom in replay mode, headless, with no key and no
network, and shows what a reader expects: streamed text, decoded images, replay labels."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from deepinfra_magic.images import image_size

pytestmark = pytest.mark.kernel

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
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
    assert NOTEBOOKS == ["ask_about_your_plot", "quickstart", "workshop"]
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
    chats = images = 0
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        outputs = _outputs(cell)
        tags = cell.metadata.get("tags", [])
        errors = [o for o in outputs if o["output_type"] == "error"]
        if "python-error" in tags:  # a deliberate mistake in the user's own code
            assert len(errors) == 1, cell.source
            continue
        if "raises-exception" in tags:
            # API errors are error outputs of one line; usage errors are IPython's one-line
            # "UsageError: ..." on stderr.
            usage = [o for o in outputs if o.get("name") == "stderr" and "UsageError:" in o["text"]]
            assert len(errors) + len(usage) == 1, cell.source
            shown = errors[0]["traceback"] if errors else usage[0]["text"].strip().splitlines()
            assert len(shown) == 1, "errors render as one line"
            continue
        assert not errors, (cell.source, errors)
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
        if cell.source.startswith("%%deepinfra"):
            replies = [o for o in outputs if "text/markdown" in o.get("data", {})]
            assert len(replies) >= 2, "a reply and its footer"
            text = replies[-2]["data"]["text/plain"]
            assert len(text) > 40 and "Markdown object" not in text
    assert chats >= 4
    assert images >= 1
    widget = "application/vnd.jupyter.widget-view+json"
    grids = [
        o
        for c in notebook.cells
        if c.cell_type == "code"
        for o in _outputs(c)
        if widget in o.get("data", {})
    ]
    if name == "workshop":  # the three lighthouses also come as a compact grid (a widget) ...
        assert len(grids) == 1 and "grid of the 3 images" in grids[0]["data"]["text/plain"]
    # ... but never as the only copy: each image is plain display data as well (counted above).
    if name == "ask_about_your_plot":
        _check_ask_about_your_plot(notebook)


def _check_ask_about_your_plot(notebook: Any) -> None:
    """The figure and the table were attached, the failing cell got its hint, and the
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
    assert "💡 %deepinfra_explain" in shown("august = ")
    assert 'august["price"]' in shown("%deepinfra_explain")
    history = shown("%deepinfra_history")
    assert "You (In [6]): What does this plot show?" in history
    assert "You (In [10]): Explain the error of In [9]" in history


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
