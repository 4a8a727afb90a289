"""``%deepinfra_record`` and ``%deepinfra_replay``: answers from a file, without key or network."""

from __future__ import annotations

import base64
import json
import re
import socket
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from deepinfra_magic.catalog import CATALOG_CACHE
from deepinfra_magic.errors import ConfigurationError, MissingAPIKeyError, ReplayError
from tests.fake_deepinfra import (
    CANARY_KEY,
    CHAT_PATH,
    FEATURED_PATH,
    INFERENCE_PREFIX,
    FakeDeepInfra,
    default_reply,
)
from tests.kernel_helpers import METADATA_KEY, PLAIN, Reply, images_in, notebook_view

DEFAULT = "meta-llama/Llama-3.3-70B-Instruct-Turbo"
FLUX = "black-forest-labs/FLUX-1-schnell"
PROMPT = "Tell me about lighthouses"


def dead_url() -> str:
    """DeepInfra's API at an address on which nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1/openai"


def record(ip: InteractiveShell, path: Path) -> tuple[str, str, bytes]:
    """Record one chat and one image; their reply text, stdout and the image bytes."""
    with capture_output() as captured:
        ip.run_line_magic("deepinfra_record", str(path))
        with capture_output() as chat:
            ip.run_cell_magic("deepinfra", "--new", PROMPT)
        ip.run_line_magic("deepinfra_image", "--seed 3 -o pic a robot")
        ip.run_line_magic("deepinfra_record", "off")
    return Reply(chat.outputs).final_text, captured.stdout, ip.user_ns["pic"].images[0].data


def offline_without_key(ip: InteractiveShell, monkeypatch: pytest.MonkeyPatch) -> None:
    """A new session with no key and no reachable server."""
    monkeypatch.delenv("DEEPINFRA_API_KEY")
    monkeypatch.setenv("DEEPINFRA_BASE_URL", dead_url())
    CATALOG_CACHE.clear()
    ip.run_line_magic("reload_ext", "deepinfra_magic")


def test_record_then_replay_with_no_key_and_no_network(
    ip: InteractiveShell,
    fake_server: FakeDeepInfra,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    fake_server.configure(token_delay=0.002)
    path = tmp_path / "demo.json"
    text, printed, image = record(ip, path)
    assert text == default_reply(DEFAULT, PROMPT)
    assert printed.splitlines() == [
        "Recording to demo.json (keys and headers are never written).",
        "Recording off.",
    ]
    saved = path.read_text(encoding="utf-8")
    assert CANARY_KEY not in saved and "authorization" not in saved.lower()
    recorded = json.loads(saved)
    assert [e["request"]["path"] for e in recorded["exchanges"]] == [
        FEATURED_PATH,
        CHAT_PATH,
        INFERENCE_PREFIX + FLUX,
    ]

    offline_without_key(ip, monkeypatch)
    with capture_output() as captured:
        ip.run_line_magic("deepinfra_replay", str(path))
        ip.run_cell_magic("deepinfra", "--new -o r", PROMPT)
    assert captured.stdout == (
        "Replaying demo.json: answers come from the recording (no key needed).\n"
    )
    reply = Reply(captured.outputs)
    assert reply.final_text == text
    assert reply.metadata["replayed"] is True
    assert reply.footer_text.endswith("▶ replayed from demo.json")
    assert ip.user_ns["r"].replayed is True

    with capture_output() as captured:
        ip.run_line_magic("deepinfra_image", "--seed 3 a robot")
    (shown,) = images_in(captured.outputs)
    assert shown.metadata[METADATA_KEY]["replayed"] is True
    assert notebook_view(captured.outputs)[-1].data[PLAIN].endswith("▶ replayed from demo.json")
    assert base64.b64decode(shown.data["image/png"]) == image

    # The model list comes from the recording: its status names no server it never asks.
    with capture_output() as captured:
        ip.run_line_magic("deepinfra_models", "")
    status = captured.outputs[0].data[PLAIN].splitlines()[0]
    assert status.startswith("Key: not needed (replaying demo.json) · list from recording")
    assert "DeepInfra at" not in status and "http" not in status

    with capture_output() as captured:
        ip.run_line_magic("deepinfra_replay", "off")
    assert captured.stdout == "Replay off: requests go to the API.\n"
    with pytest.raises(MissingAPIKeyError):
        ip.run_cell_magic("deepinfra", "--new", PROMPT)


def test_replay_a_request_that_was_not_recorded_is_one_line(
    ip: InteractiveShell,
    fake_server: FakeDeepInfra,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    path = tmp_path / "demo.json"
    record(ip, path)
    offline_without_key(ip, monkeypatch)
    ip.run_line_magic("deepinfra_replay", str(path))
    with capture_output() as captured:
        result = ip.run_cell(f"%%deepinfra --new -t 0.1\n{PROMPT}")
    assert isinstance(result.error_in_exec, ReplayError)
    (line,) = [line for line in captured.stdout.splitlines() if line.strip()]
    assert "differs in temperature (recorded 0.7, now 0.1)" in line


def test_if_no_key_replays_only_without_a_key(
    ip: InteractiveShell,
    fake_server: FakeDeepInfra,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "demo.json"
    record(ip, path)
    capsys.readouterr()
    ip.run_line_magic("deepinfra_replay", f"{path} --if-no-key")
    ip.run_line_magic("deepinfra_replay", "")
    assert capsys.readouterr().out.splitlines() == [
        "A key is set, so requests go to the API live (demo.json not used).",
        "Live: requests go to the API (no recording).",
    ]
    ip.run_line_magic("deepinfra_replay", f"{tmp_path / 'not-made-yet.json'} --if-no-key")
    assert "go to the API live" in capsys.readouterr().out

    offline_without_key(ip, monkeypatch)
    ip.run_line_magic("deepinfra_replay", f"{path} --if-no-key --speed 0")
    assert capsys.readouterr().out.startswith("Replaying demo.json")
    with capture_output() as captured:
        ip.run_cell_magic("deepinfra", "--new", PROMPT)
    assert Reply(captured.outputs).metadata["replayed"] is True


def test_replay_from_the_environment(
    ip: InteractiveShell,
    fake_server: FakeDeepInfra,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "demo.json"
    record(ip, path)
    monkeypatch.setenv("DEEPINFRA_MAGIC_REPLAY", str(path))
    monkeypatch.setenv("DEEPINFRA_MAGIC_REPLAY_SPEED", "0")
    offline_without_key(ip, monkeypatch)
    capsys.readouterr()
    ip.run_line_magic("deepinfra_replay", "")
    assert capsys.readouterr().out == f"Replaying {path} at speed 0.\n"
    with capture_output() as captured:
        ip.run_cell_magic("deepinfra", "--new", PROMPT)
    reply = Reply(captured.outputs)
    assert reply.final_text == default_reply(DEFAULT, PROMPT)
    assert "▶ replayed from demo.json" in reply.footer_text


def test_replaying_a_missing_file_is_one_line(
    ip: InteractiveShell, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = ip.run_cell(f"%deepinfra_replay {tmp_path / 'nope.json'}")
    assert isinstance(result.error_in_exec, ConfigurationError)
    (line,) = capsys.readouterr().out.strip().splitlines()
    assert line.startswith("ConfigurationError: Recording ") and "does not exist" in line
    ip.run_line_magic("deepinfra_replay", "")
    assert capsys.readouterr().out.startswith("Live:")


def test_record_and_replay_exclude_each_other(
    ip: InteractiveShell,
    fake_server: FakeDeepInfra,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "demo.json"
    record(ip, path)
    ip.run_line_magic("deepinfra_record", str(tmp_path / "other.json"))
    ip.run_line_magic("deepinfra_replay", str(path))
    capsys.readouterr()
    ip.run_line_magic("deepinfra_record", "")
    assert capsys.readouterr().out == f"Replaying {path} at speed 1.\n"


def test_a_hosted_image_replays_from_the_recording(
    ip: InteractiveShell,
    fake_server: FakeDeepInfra,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    fake_server.configure(image_style="url")
    path = tmp_path / "hosted.json"
    with capture_output():
        ip.run_line_magic("deepinfra_record", str(path))
        ip.run_line_magic("deepinfra_image", "--seed 3 -o pic a hosted robot")
        ip.run_line_magic("deepinfra_record", "off")
    recorded = ip.user_ns["pic"].images[0].data
    offline_without_key(ip, monkeypatch)
    with capture_output() as captured:
        ip.run_line_magic("deepinfra_replay", str(path))
        ip.run_line_magic("deepinfra_image", "--seed 3 a hosted robot")
    (shown,) = images_in(captured.outputs)
    assert base64.b64decode(shown.data["image/png"]) == recorded


def test_a_recording_started_after_the_list_was_loaded_still_has_it(
    ip: InteractiveShell,
    fake_server: FakeDeepInfra,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    path = tmp_path / "late.json"
    with capture_output():
        ip.run_line_magic("deepinfra_models", "")  # the list is in memory before recording
        ip.run_line_magic("deepinfra_record", str(path))
        ip.run_cell_magic("deepinfra", "--new", PROMPT)
        ip.run_line_magic("deepinfra_record", "off")
    offline_without_key(ip, monkeypatch)
    with capture_output() as captured:
        ip.run_line_magic("deepinfra_replay", str(path))
        ip.run_line_magic("deepinfra_models", "--images")
        result = ip.run_cell(f"%%deepinfra -m {FLUX}\na robot")
    # The replayed list tells the image model apart: the cell asked for an image, which this
    # recording does not hold (rather than a chat with an image model).
    assert "list from recording" in captured.outputs[0].data[PLAIN].splitlines()[0]
    assert isinstance(result.error_in_exec, ReplayError)
    assert f"POST {INFERENCE_PREFIX}{FLUX}" in str(result.error_in_exec)


def test_models_in_replay_say_when_the_recording_was_made(
    ip: InteractiveShell,
    fake_server: FakeDeepInfra,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    path = tmp_path / "dated.json"
    record(ip, path)
    saved = json.loads(path.read_text(encoding="utf-8"))
    stamps = [e["response"]["recorded_at"] for e in saved["exchanges"]]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", stamp) for stamp in stamps)
    # As if it had been recorded long ago: replay shows that time, not when it was loaded.
    saved["exchanges"][0]["response"]["recorded_at"] = "2026-01-02T03:04:05Z"
    path.write_text(json.dumps(saved), encoding="utf-8")
    offline_without_key(ip, monkeypatch)
    with capture_output() as captured:
        ip.run_line_magic("deepinfra_replay", str(path))
        ip.run_line_magic("deepinfra_models", "")
    made = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc).timestamp()
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(made))
    status = captured.outputs[0].data[PLAIN].splitlines()[0]
    assert f" · list from recording (recorded {when})" in status


def test_a_bad_replay_speed_in_the_environment_is_the_librarys_one_line_error(
    ip: InteractiveShell,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "demo.json"
    record(ip, path)
    monkeypatch.setenv("DEEPINFRA_MAGIC_REPLAY_SPEED", "-3")  # was taken as 0 here, refused there
    ip.run_line_magic("deepinfra_replay", str(path))
    capsys.readouterr()
    result = ip.run_cell(f"%%deepinfra --new\n{PROMPT}")
    assert isinstance(result.error_in_exec, ConfigurationError)
    (line,) = capsys.readouterr().out.strip().splitlines()
    assert line == (
        "ConfigurationError: DEEPINFRA_MAGIC_REPLAY_SPEED must not be negative, not '-3'."
    )
