"""What the browser kernel (Pyodide, in JupyterLite) needs of the library, on CPython.

Pyodide cannot start threads, and JupyterLite hands the kernel JSON files re-serialised by
JavaScript (``0.0`` becomes ``0``). Images and maps must then run their requests in turn
with the same results, and a recording must replay whatever spelling its numbers have.
The browser itself is tested in tests/browser/test_lite.py.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deepinfra_magic import _pyodide
from deepinfra_magic.client import DeepInfraClient
from deepinfra_magic.errors import ReplayError
from deepinfra_magic.images import ImageArrived
from deepinfra_magic.types import ChatResult
from tests.fake_deepinfra import CANARY_KEY, FakeDeepInfra

pytestmark = pytest.mark.usefixtures("library_env")

CLOSED_URL = "http://127.0.0.1:9/v1/openai"
QUESTION = [{"role": "user", "content": "Name a pet robot."}]


_START = threading.Thread.start


def _refuse_ours(self: threading.Thread) -> None:
    """Thread.start as in Pyodide for the library's threads (the fake server keeps its own)."""
    if self.name.startswith("deepinfra"):
        raise RuntimeError("can't start new thread")
    _START(self)


@pytest.fixture
def no_threads(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A platform where the library can start no thread, as in Pyodide."""
    _pyodide.threads_available.cache_clear()
    monkeypatch.setattr(threading.Thread, "start", _refuse_ours)
    yield
    monkeypatch.undo()
    _pyodide.threads_available.cache_clear()


@pytest.mark.usefixtures("no_threads")
def test_images_without_threads_arrive_one_by_one_in_request_order(
    fake_server: FakeDeepInfra,
) -> None:
    with DeepInfraClient(CANARY_KEY, base_url=fake_server.api_url) as client:
        events = list(client.iter_images("three birds", n=3, seed=10))
        merged = client.generate_image("three birds", n=3, seed=10)
    arrived = [event for event in events if isinstance(event, ImageArrived)]
    assert [(event.result.seed, event.done, event.total) for event in arrived] == [
        (10, 1, 3),
        (11, 2, 3),
        (12, 3, 3),
    ]
    assert [image.seed for image in merged.images] == [10, 11, 12]
    assert [r.json["seed"] for r in fake_server.requests] == [10, 11, 12] * 2


def test_images_with_and_without_threads_are_the_same(
    fake_server: FakeDeepInfra, monkeypatch: pytest.MonkeyPatch
) -> None:
    with DeepInfraClient(CANARY_KEY, base_url=fake_server.api_url) as client:
        threaded = client.generate_image("a fox", n=2, seed=3)
        _pyodide.threads_available.cache_clear()
        monkeypatch.setattr(threading.Thread, "start", _refuse_ours)
        try:
            in_turn = client.generate_image("a fox", n=2, seed=3)
        finally:
            monkeypatch.undo()
            _pyodide.threads_available.cache_clear()
    assert [i.data for i in in_turn.images] == [i.data for i in threaded.images]


@pytest.mark.usefixtures("no_threads")
def test_a_map_without_threads_answers_every_row(fake_server: FakeDeepInfra) -> None:
    with DeepInfraClient(CANARY_KEY, base_url=fake_server.api_url) as client:
        result = client.map(["red", "green", "blue"], "Name a {} fruit.", concurrency=2)
    assert result.answered == 3 and all(isinstance(v, str) and v for v in result.values)
    assert fake_server.count("/v1/openai/chat/completions") == 3


def _recording(tmp_path: Path, fake_server: FakeDeepInfra, **params: Any) -> Path:
    path = tmp_path / "rec.json"
    with DeepInfraClient(CANARY_KEY, base_url=fake_server.api_url, record=path) as client:
        client.chat(QUESTION, stream=False, **params)
    return path


def _as_javascript_saves_it(path: Path) -> None:
    """Re-save the file as ``JSON.stringify(JSON.parse(text))`` does: ``0.0`` becomes ``0``."""
    text = json.dumps(json.loads(path.read_text()), separators=(",", ":"))
    path.write_text(text.replace('"temperature":0.0', '"temperature":0'))


def test_a_recording_resaved_by_javascript_still_replays(
    tmp_path: Path, fake_server: FakeDeepInfra
) -> None:
    path = _recording(tmp_path, fake_server, temperature=0.0)
    _as_javascript_saves_it(path)
    assert '"temperature":0,' in path.read_text() or '"temperature":0}' in path.read_text()
    with DeepInfraClient(base_url=CLOSED_URL, replay=path, replay_speed=0) as client:
        result = client.chat(QUESTION, stream=False, temperature=0.0)
    assert isinstance(result, ChatResult) and result.text


def test_a_mismatch_always_names_what_differs(tmp_path: Path, fake_server: FakeDeepInfra) -> None:
    path = _recording(tmp_path, fake_server, temperature=0.0, logprobs=True)
    with DeepInfraClient(base_url=CLOSED_URL, replay=path, replay_speed=0) as client:
        with pytest.raises(ReplayError) as caught:
            client.chat(QUESTION, stream=False, temperature=0.5, logprobs=True)
        assert "differs in temperature (recorded 0.0, now 0.5)" in str(caught.value)
        # Equal in Python (True == 1) but not in JSON: named, never "nothing visible".
        with pytest.raises(ReplayError) as caught:
            client.chat(QUESTION, stream=False, temperature=0.0, logprobs=1)
    assert "nothing visible" not in str(caught.value)
    assert "logprobs (recorded true, now 1)" in str(caught.value)


def test_inline_executor_runs_one_task_each_time_it_is_asked() -> None:
    pool = _pyodide.InlineExecutor()
    ran: list[int] = []
    futures = [pool.submit(ran.append, n) for n in range(3)]
    assert ran == []
    done, pending = _pyodide.wait_first(pool, futures, None)
    assert ran == [0] and done == {futures[0]} and len(pending) == 2
    pool.shutdown(cancel_futures=True)
    assert all(future.cancelled() for future in futures[1:])
