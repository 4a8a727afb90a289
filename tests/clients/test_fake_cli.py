"""``python -m tests.fake_deepinfra --help``: what a person needs to use the fake server
out of process (which URL a client takes, the ``/_fake/*`` controls), and its catalog."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.fake_deepinfra import CONTROL_PREFIX, DEFAULT_CATALOG, FakeDeepInfra
from tests.fake_deepinfra.cli import CONTROL_ENDPOINTS

ROOT = Path(__file__).resolve().parents[2]
# Arguments that let each control run at once (the waits return at once when idle).
ARGUMENTS: dict[str, dict[str, Any]] = {
    "fault": {"status": 502},
    "script": {"text": "Hi"},
    "wait_for_disconnect": {"timeout": 0, "count": 0},
    "wait_streams_closed": {"timeout": 0},
}


def test_help_says_which_url_to_use_and_lists_the_controls() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tests.fake_deepinfra", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    text = done.stdout
    assert "FAKE_DEEPINFRA_URL=http://127.0.0.1:PORT" in text
    assert "DEEPINFRA_BASE_URL=http://127.0.0.1:PORT/v1/openai" in text
    for endpoint in CONTROL_ENDPOINTS:
        assert endpoint in text
    assert "vision: meta-llama/Llama-3.2-11B-Vision-Instruct" in text


def test_every_listed_control_is_one_the_server_answers() -> None:
    listed = {tuple(endpoint.split(" ")) for endpoint in CONTROL_ENDPOINTS}
    assert all(path.startswith(CONTROL_PREFIX) for _, path in listed)
    with FakeDeepInfra() as server:
        for method, path in sorted(listed):
            name = path.removeprefix(CONTROL_PREFIX)
            assert server.control(method, path, ARGUMENTS.get(name, {})) is not None, path
        assert server.control("POST", f"{CONTROL_PREFIX}no_such_control", {}) is None


def test_the_default_catalog_has_a_vision_model() -> None:
    vision = [entry.name for entry in DEFAULT_CATALOG if entry.is_vision]
    assert vision == ["meta-llama/Llama-3.2-11B-Vision-Instruct"]
    assert all(entry.is_text for entry in DEFAULT_CATALOG if entry.is_vision)
