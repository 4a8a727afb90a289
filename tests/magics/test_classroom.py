"""Classroom mode in a real InteractiveShell against the fake server: the teacher mints seats
with ``%deepinfra_classroom`` and watches them; a student logs in with a seat's token, sees
what it allows, is refused in one line that says why (before sending when it can), falls
back to a recording, and sees the seat's spend. No token shows anywhere."""

from __future__ import annotations

import getpass
import json
import re
import stat
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from deepinfra_magic.classroom import read_seats_csv
from deepinfra_magic.errors import (
    ConfigurationError,
    DisallowedModelError,
    TokenBudgetError,
    TokenExpiredError,
)
from tests.fake_deepinfra import CANARY_KEY, FakeDeepInfra
from tests.kernel_helpers import MARKDOWN, all_text, chat_bodies, paths

TEXT_MODEL = "meta-llama/Llama-3.3-70B-Instruct-Turbo"
SMALL_MODEL = "meta-llama/Meta-Llama-3.1-8B-Instruct"
OTHER_MODEL = "Qwen/Qwen2.5-72B-Instruct"


def mint(ip: InteractiveShell, tmp_path: Path, options: str = "") -> tuple[Path, str]:
    """Run the teacher's create; returns the seats file and everything shown."""
    out = tmp_path / "class" / "seats.csv"
    out.parent.mkdir(exist_ok=True)
    with capture_output() as captured:
        ip.run_line_magic(
            "deepinfra_classroom",
            f"create --seats 3 --dollars 2 --hours 2 --models {SMALL_MODEL},{TEXT_MODEL} "
            f"--out {out} {options}",
        )
    return out, all_text(captured.outputs) + captured.stdout + captured.stderr


def first_seat(ip: InteractiveShell, tmp_path: Path, create: str | None = None) -> str:
    """Mint seats (the default class, or ``create``'s options); the first seat's token."""
    if create is None:
        out, _ = mint(ip, tmp_path)
    else:
        out = tmp_path / "seats.csv"
        ip.run_line_magic("deepinfra_classroom", f"create {create} --out {out}")
    return read_seats_csv(out)[0].token


def log_in(ip: InteractiveShell, monkeypatch: pytest.MonkeyPatch, token: str) -> str:
    """The student pastes ``token`` at the hidden prompt; returns the printed line."""
    monkeypatch.setattr(getpass, "getpass", lambda prompt="", stream=None: f" {token}\n")
    with capture_output() as captured:
        ip.run_line_magic("deepinfra_login", "")
    return captured.stdout


def test_the_teacher_mints_seats_into_0600_files_and_sees_only_tails(
    ip: InteractiveShell, fake_server: FakeDeepInfra, tmp_path: Path
) -> None:
    out, shown = mint(ip, tmp_path)
    seats = read_seats_csv(out)
    assert [seat.number for seat in seats] == [1, 2, 3]
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    page = out.with_suffix(".html")
    assert stat.S_IMODE(page.stat().st_mode) == 0o600
    assert all(seat.token in page.read_text() for seat in seats)
    assert all(seat.tail in shown and seat.token not in shown for seat in seats)
    assert "signed by key 'auto'" in shown  # the key in use, named by /v1/api-tokens
    # status: what the API says of each token, and the signing key's spend
    with capture_output() as captured:
        ip.run_line_magic("deepinfra_classroom", f"status {out}")
    status = captured.outputs[-1].data[MARKDOWN]
    assert all(seat.tail in status for seat in seats)
    assert "Key 'auto' spent" in status
    assert not any(seat.token in status for seat in seats)


def test_models_from_a_notebook_and_the_key_in_use_among_several(
    ip: InteractiveShell, fake_server: FakeDeepInfra, tmp_path: Path
) -> None:
    notebook = tmp_path / "lesson.ipynb"
    cell = {"cell_type": "code", "source": f"%%deepinfra -m {OTHER_MODEL}\nhi", "metadata": {}}
    notebook.write_text(json.dumps({"cells": [cell], "nbformat": 4, "nbformat_minor": 5}))
    out = tmp_path / "seats.csv"
    ip.run_line_magic(
        "deepinfra_classroom",
        f"create --seats 1 --dollars 1 --hours 1 --models-from-notebook {notebook} --out {out}",
    )
    assert read_seats_csv(out)[0].scope.models == (OTHER_MODEL,)
    fake_server.configure(
        valid_keys={CANARY_KEY, "sk-other"}, key_names={CANARY_KEY: "main", "sk-other": "ci"}
    )
    with capture_output() as captured:
        ip.run_line_magic(
            "deepinfra_classroom", f"create --seats 1 --dollars 1 --hours 1 --out {out}"
        )
    assert "signed by key 'main'" in captured.outputs[-1].data[MARKDOWN]


def test_another_server_is_refused_in_one_line(
    ip: InteractiveShell, fake_server: FakeDeepInfra, tmp_path: Path
) -> None:
    ip.run_line_magic("config", "DeepInfraMagics.flavour = 'generic'")
    with pytest.raises(ConfigurationError, match="needs DeepInfra's API"):
        ip.run_line_magic(
            "deepinfra_classroom", f"create --seats 1 --dollars 1 --hours 1 --out {tmp_path}/s"
        )
    assert not [p for p in paths(fake_server) if "scoped-jwt" in p]


def test_a_student_logs_in_sees_the_scope_and_is_refused_in_one_line(
    ip: InteractiveShell,
    fake_server: FakeDeepInfra,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = first_seat(ip, tmp_path)
    with capture_output() as captured:
        line = log_in(ip, monkeypatch, token)
        assert line.startswith(f"✓ Token for {SMALL_MODEL} and 1 more · expires ")
        assert "· up to $2.00; kept for this kernel session only" in line
        ip.run_line_magic("deepinfra_models", "")
        ip.run_cell_magic("deepinfra", "", "hello")  # the default model is allowed
        with pytest.raises(DisallowedModelError, match=f"allows {SMALL_MODEL}, {TEXT_MODEL}"):
            ip.run_cell_magic("deepinfra", f"-m {OTHER_MODEL}", "hello")
        ip.run_line_magic("deepinfra_usage", "")
        ip.run_line_magic("config", "DeepInfraMagics")
    listing = captured.outputs[0].data[MARKDOWN]
    assert f"✓ `{SMALL_MODEL}`" in listing and f'color:gray">{OTHER_MODEL}' in listing
    assert "classroom token entered with %deepinfra_login" in listing
    assert [body["model"] for body in chat_bodies(fake_server)] == [TEXT_MODEL]  # none sent
    assert "of its $2.0000 cap spent" in captured.outputs[-1].data["text/plain"]
    shown = all_text(captured.outputs) + captured.stdout + captured.stderr
    shown += "\n".join(ip.history_manager.input_hist_raw)
    assert token not in shown and token.removeprefix("jwt:") not in shown


def test_with_no_model_a_cell_uses_the_tokens_first_model(
    ip: InteractiveShell,
    fake_server: FakeDeepInfra,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    create = f"--seats 1 --dollars 1 --hours 1 --models {SMALL_MODEL}"
    log_in(ip, monkeypatch, first_seat(ip, tmp_path, create))
    ip.run_cell_magic("deepinfra", "", "hello")
    assert chat_bodies(fake_server)[-1]["model"] == SMALL_MODEL


@pytest.mark.parametrize("shape", ["by_reason", "401", "403", "openai_403"])
def test_a_spent_token_says_so_and_falls_back_to_the_recording(
    ip: InteractiveShell,
    fake_server: FakeDeepInfra,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    shape: str,
) -> None:
    recording = tmp_path / "class.recording.json"
    ip.run_line_magic("deepinfra_record", str(recording))
    ip.run_cell_magic("deepinfra", "", "second question")
    ip.run_line_magic("deepinfra_record", "off")
    token = first_seat(ip, tmp_path, "--seats 1 --dollars 0.000001 --hours 1")
    fake_server.configure(scoped_refusal=shape)
    log_in(ip, monkeypatch, token)
    ip.run_line_magic("deepinfra_reset", "")
    ip.run_cell_magic("deepinfra", "", "first question")  # spends the whole cap
    ip.run_line_magic("deepinfra_reset", "")
    with pytest.raises(TokenBudgetError, match="spending limit is used up"):
        ip.run_cell_magic("deepinfra", "", "second question")
    ip.run_line_magic("deepinfra_replay", f"--if-refused {recording}")
    with capture_output() as captured:
        ip.run_cell_magic("deepinfra", "", "second question")
    assert "spending limit is used up" in captured.stderr
    assert "Answered from class.recording.json instead (replayed)" in captured.stderr
    footers = [o.data[MARKDOWN] for o in captured.outputs if MARKDOWN in o.data]
    assert "You wrote:\n\n> second question" in all_text(captured.outputs)
    assert any("replayed" in footer for footer in footers)
    assert token not in recording.read_text() + captured.stderr + all_text(captured.outputs)


def test_an_expired_token_says_when(
    ip: InteractiveShell,
    fake_server: FakeDeepInfra,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log_in(ip, monkeypatch, first_seat(ip, tmp_path))
    fake_server.configure(clock_offset=3 * 3600, scoped_refusal="402")
    with pytest.raises(TokenExpiredError, match=r"This token expired at (\d+ \w+ )?\d\d:\d\d"):
        ip.run_cell_magic("deepinfra", "", "hello")


def test_a_token_in_the_environment_is_used_as_a_seat(
    ip: InteractiveShell,
    fake_server: FakeDeepInfra,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out, _ = mint(ip, tmp_path)
    monkeypatch.setenv("DEEPINFRA_API_KEY", read_seats_csv(out)[0].token)
    with capture_output() as captured:
        ip.run_line_magic("deepinfra_models", "")
    status = captured.outputs[0].data[MARKDOWN].splitlines()[0]
    assert status.startswith("Key: classroom token DEEPINFRA_API_KEY is set · Token for ")
    with pytest.raises(DisallowedModelError):
        ip.run_cell_magic("deepinfra", f"-m {OTHER_MODEL}", "hello")
    with pytest.raises(ConfigurationError, match="not a classroom token"):
        ip.run_line_magic("deepinfra_classroom", f"status {out}")


def test_recordings_of_minting_and_status_hold_no_token_and_replay(
    ip: InteractiveShell, fake_server: FakeDeepInfra, tmp_path: Path
) -> None:
    recording = tmp_path / "teacher.recording.json"
    ip.run_line_magic("deepinfra_record", str(recording))
    out, _ = mint(ip, tmp_path)
    ip.run_line_magic("deepinfra_classroom", f"status {out}")
    ip.run_line_magic("deepinfra_record", "off")
    text = recording.read_text()
    for seat in read_seats_csv(out):
        assert seat.token not in text and seat.token.removeprefix("jwt:") not in text
    assert CANARY_KEY not in text and "redacted-" in text
    # Offline, the same cells answer from the recording (placeholder tokens, same tails).
    ip.run_line_magic("deepinfra_replay", str(recording))
    fake_server.reset()
    replayed, _ = mint(ip, tmp_path)
    with capture_output() as captured:
        ip.run_line_magic("deepinfra_classroom", f"status {replayed}")
    assert fake_server.requests == []
    status = captured.outputs[-1].data[MARKDOWN]
    assert "Key 'auto' spent" in status and "⚠" not in status
    assert status.count(SMALL_MODEL) == 3


# --- another server (a LiteLLM proxy's virtual keys) ---------------------------------------


@pytest.mark.parametrize(
    ("status", "words", "says"),
    [
        (
            400,
            "Budget has been exceeded! Current cost: 0.52, Max budget: 0.5",
            r"spending limit is used up \(\$0.52 of \$0.50 spent\)",
        ),
        (
            401,
            "key not allowed to access model. This key can only access models=['a', 'b']. "
            "Tried to access c",
            r"does not allow 'c'; it allows a, b",
        ),
    ],
)
def test_a_proxys_refusals_are_one_line_with_the_reason(
    ip: InteractiveShell, fake_server: FakeDeepInfra, status: int, words: str, says: str
) -> None:
    ip.run_line_magic("config", "DeepInfraMagics.flavour = 'generic'")
    fake_server.add_fault(status=status, body_style="error_obj", message=words)
    result = ip.run_cell("%%deepinfra -m c\nhello")
    assert result.error_in_exec is not None
    rendered = result.error_in_exec._render_traceback_()  # type: ignore[attr-defined]
    assert len(rendered) == 1
    assert re.search(says, rendered[0]), rendered[0]


def test_on_another_server_login_leaves_the_budget_out(
    ip: InteractiveShell,
    fake_server: FakeDeepInfra,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = first_seat(ip, tmp_path)
    ip.run_line_magic("config", "DeepInfraMagics.flavour = 'generic'")
    line = log_in(ip, monkeypatch, token)
    assert line.startswith("✓ Token for ") and " · expires " in line
    assert "$" not in line and "spending" not in line


# --- security: a canary token is nowhere a user can see or save ----------------------------


def test_no_token_in_config_tracebacks_history_or_a_recording(
    ip: InteractiveShell,
    fake_server: FakeDeepInfra,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    canary = first_seat(ip, tmp_path)  # the fake's tokens are canaries
    recording = tmp_path / "student.recording.json"
    with capture_output() as captured:
        ip.run_line_magic("xmode", "Verbose")
        try:
            log_in(ip, monkeypatch, canary)
            ip.run_line_magic("deepinfra_record", str(recording))
            ip.run_cell("%%deepinfra\nhello")
            ip.run_cell(f"%%deepinfra -m {OTHER_MODEL}\nhello")  # refused before sending
            fake_server.configure(clock_offset=3 * 3600)
            ip.run_cell("%%deepinfra\nhello again")  # refused by the server: expired
            ip.run_line_magic("deepinfra_record", "off")
            ip.run_cell("%config DeepInfraMagics")
            ip.run_cell("%deepinfra_models")
            ip.run_cell("%deepinfra_usage")
        finally:
            ip.run_line_magic("xmode", "Context")
    shown = "\n".join([all_text(captured.outputs), captured.stdout, captured.stderr])
    assert "DisallowedModelError" in shown and "TokenExpiredError" in shown
    shown += recording.read_text() + "\n".join(ip.history_manager.input_hist_raw)
    shown += repr(ip.magics_manager.registry["DeepInfraMagics"].__dict__)
    for piece in (canary, canary.removeprefix("jwt:"), canary.split(".")[2]):
        assert piece not in shown


def test_a_spent_tokens_image_cell_falls_back_to_the_recording(
    ip: InteractiveShell,
    fake_server: FakeDeepInfra,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    image_model = "black-forest-labs/FLUX-1-schnell"
    recording = tmp_path / "class.recording.json"
    ip.run_line_magic("deepinfra_record", str(recording))
    ip.run_line_magic("deepinfra_image", f"-m {image_model} --seed 1 a red fox")
    ip.run_line_magic("deepinfra_record", "off")
    log_in(ip, monkeypatch, first_seat(ip, tmp_path, "--seats 1 --dollars 0.000001 --hours 1"))
    ip.run_line_magic("deepinfra_image", f"-m {image_model} --seed 2 a blue fox")  # spends it
    ip.run_line_magic("config", f"DeepInfraMagics.fallback_replay = '{recording}'")
    with capture_output() as captured:
        ip.run_line_magic("deepinfra_image", f"-m {image_model} --seed 1 a red fox")
    assert "Answered from class.recording.json instead (replayed)" in captured.stderr
    assert any("image/png" in o.data or "image/jpeg" in o.data for o in captured.outputs)


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ("--seats 2 --hours 1", "needs --seats N, --dollars D and --hours H or --until TIME"),
        ("--seats 2 --dollars 1 --until 25:99", "--until '25:99': expected HH:MM"),
        ("--seats 2 --dollars 1 --until 2001-01-01T10:00", "that is not in the future"),
        ("--seats 2 --dollars 1 --hours 1 --until 10:00", "not allowed with argument"),
    ],
)
def test_a_bad_create_line_is_one_line_and_mints_nothing(
    ip: InteractiveShell, fake_server: FakeDeepInfra, tmp_path: Path, options: str, says: str
) -> None:
    result = ip.run_cell(f"%deepinfra_classroom create {options} --out {tmp_path}/seats.csv")
    assert says in str(result.error_in_exec)
    assert not [p for p in paths(fake_server) if "scoped-jwt" in p]
    assert not (tmp_path / "seats.csv").exists()
