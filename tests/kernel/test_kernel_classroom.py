"""A whole class in real kernels: the teacher's kernel mints 5 seats with
``%deepinfra_classroom``; five student kernels, one after another (a 2-core machine), log in
with them (four paste their token at the hidden prompt, one has it in DEEPINFRA_API_KEY)
and chat. One seat hits its cap and is answered from the class's recording, one asks for a
model its token does not allow (refused before sending), one outlives its expiry (the fake
server's clock moves on). No token appears in any output of any kernel."""

from __future__ import annotations

import queue
import time
from pathlib import Path
from typing import Any

import pytest

from deepinfra_magic.classroom import Seat, read_seats_csv
from tests.fake_deepinfra import CANARY_KEY, FakeDeepInfra
from tests.kernel_helpers import (
    MARKDOWN,
    PLAIN,
    Execution,
    chat_bodies,
    collect,
    magic_process_env,
    run,
    running_kernel,
)

pytestmark = pytest.mark.kernel

TEXT_MODEL = "meta-llama/Llama-3.3-70B-Instruct-Turbo"
SMALL_MODEL = "meta-llama/Meta-Llama-3.1-8B-Instruct"
OTHER_MODEL = "Qwen/Qwen2.5-72B-Instruct"
QUESTION = "What is a Python generator?"
FOLLOW_UP = "And an iterator?"


def paste_token(kernel: Any, token: str) -> Execution:
    """``%deepinfra_login`` with the token typed at the hidden prompt, as a student does."""
    msg_id = kernel.execute("%deepinfra_login", allow_stdin=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            request = kernel.get_stdin_msg(timeout=1)
        except queue.Empty:
            continue
        assert request["content"]["password"] is True  # no echo
        kernel.input(token)
        break
    return collect(kernel, msg_id)


def everything(executions: list[Execution]) -> str:
    """Every byte of every message the kernels sent for these cells."""
    return "\n".join(repr(m["content"]) for e in executions for m in e.messages) + "\n".join(
        repr(e.reply["content"]) for e in executions
    )


def one_error_line(execution: Execution) -> str:
    assert execution.error is not None
    (line,) = execution.error["traceback"]
    return str(line)


def test_a_class_of_five(fake_server: FakeDeepInfra, tmp_path: Path) -> None:
    executions: list[Execution] = []
    seats_file = tmp_path / "teacher" / "seats.csv"
    seats_file.parent.mkdir()
    recording = tmp_path / "class.recording.json"

    # The teacher records the lesson's answers (the fallback), then mints the seats.
    with running_kernel(magic_process_env(fake_server.api_url, tmp_path), load=True) as teacher:
        executions.append(run(teacher, f"%deepinfra_record {recording}"))
        executions.append(run(teacher, f"%%deepinfra --new\n{FOLLOW_UP}"))
        executions.append(run(teacher, "%deepinfra_record off"))
        created = run(
            teacher,
            f"%deepinfra_classroom create --seats 5 --dollars 0.00001 --hours 2 "
            f"--models {TEXT_MODEL},{SMALL_MODEL} --out {seats_file}",
        )
        executions.append(created)
        assert created.error is None, created.error
    seats = read_seats_csv(seats_file)
    assert len(seats) == 5
    summary = created.of_type("display_data")[-1]["content"]["data"][MARKDOWN]
    assert all(seat.tail in summary for seat in seats)

    def student(seat: Seat, *cells: str, env_token: bool = False) -> list[Execution]:
        key = seat.token if env_token else None
        env = magic_process_env(fake_server.api_url, tmp_path / f"seat{seat.number}", key=key)
        with running_kernel(env, load=True) as kernel:
            done = [] if env_token else [paste_token(kernel, seat.token)]
            done += [run(kernel, cell) for cell in cells]
        executions.extend(done)
        return done

    sent_before = len(chat_bodies(fake_server))
    # Seat 1 chats and checks its spend.
    login, chat, usage = student(seats[0], f"%%deepinfra\n{QUESTION}", "%deepinfra_usage")
    assert login.stdout.startswith(f"✓ Token for {TEXT_MODEL} and 1 more · expires ")
    assert chat.error is None and QUESTION in everything([chat])
    assert "This seat:" in usage.of_type("display_data")[-1]["content"]["data"][PLAIN]

    # Seat 2 spends its cap; its next cell is refused, then answered from the recording.
    _, first, refused, fallback, replayed = student(
        seats[1],
        f"%%deepinfra\n{QUESTION}",
        f"%%deepinfra --new\n{FOLLOW_UP}",
        f"%deepinfra_replay --if-refused {recording}",
        f"%%deepinfra --new\n{FOLLOW_UP}",
    )
    assert first.error is None
    assert one_error_line(refused).startswith("TokenBudgetError: This token's spending limit")
    assert fallback.error is None and replayed.error is None
    assert "Answered from class.recording.json instead (replayed)" in everything([replayed])
    assert "replayed" in everything([replayed]) and FOLLOW_UP in everything([replayed])

    # Seat 3 asks for a model its token does not allow: one line, nothing sent.
    sent = len(chat_bodies(fake_server))
    _, wrong = student(seats[2], f"%%deepinfra -m {OTHER_MODEL}\n{QUESTION}")
    line = one_error_line(wrong)
    assert line.startswith(f"DisallowedModelError: This token does not allow '{OTHER_MODEL}'")
    assert f"it allows {TEXT_MODEL}, {SMALL_MODEL}" in line
    assert len(chat_bodies(fake_server)) == sent

    # Seat 4 outlives its expiry: the server's clock is past it.
    fake_server.configure(clock_offset=3 * 3600)
    _, late = student(seats[3], f"%%deepinfra\n{QUESTION}")
    assert one_error_line(late).startswith("TokenExpiredError: This token expired at ")
    fake_server.configure(clock_offset=0.0)

    # Seat 5 has its token in DEEPINFRA_API_KEY: the listing marks what it allows.
    models, chat = student(
        seats[4], "%deepinfra_models", f"%%deepinfra\n{QUESTION}", env_token=True
    )
    listing = models.of_type("display_data")[-1]["content"]["data"][MARKDOWN]
    assert f"✓ `{TEXT_MODEL}`" in listing and "classroom token DEEPINFRA_API_KEY" in listing
    assert chat.error is None

    # Seats 1 to 5 sent 1, 3 (the last two refused: the fallback answers after the server
    # refuses), 0, 1 (refused) and 1 requests.
    assert len(chat_bodies(fake_server)) - sent_before == 6
    shown = everything(executions) + recording.read_text()
    for seat in seats:
        for piece in (seat.token, seat.token.removeprefix("jwt:"), seat.token.split(".")[2]):
            assert piece not in shown
    assert CANARY_KEY not in shown
