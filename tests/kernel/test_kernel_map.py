"""``%%deepinfra_map`` in a real kernel driven over ZMQ: the progress bar is a widget whose
value moves, and an interrupt (the ■ button) stops the run at once, keeps the finished rows
and leaves the kernel usable; running the cell again sends only the rest. (That open
requests are hung up on is checked in tests/clients/test_map.py, where it can be made certain.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fake_deepinfra import CHAT_PATH, FakeDeepInfra
from tests.kernel_helpers import PLAIN, chat_bodies, collect, magic_process_env, run, running_kernel

pytestmark = pytest.mark.kernel

ROWS = 80  # 2 s of work at 4 at once: the interrupt lands well before the end


@pytest.fixture
def kernel(fake_server: FakeDeepInfra, tmp_path: Path) -> Iterator[Any]:
    with running_kernel(magic_process_env(fake_server.api_url, tmp_path)) as client:
        yield client


def _bar_value(message: dict[str, Any]) -> int | None:
    """The progress bar's value in a widget update, if this message is one."""
    if message["msg_type"] != "comm_msg":
        return None
    state = message["content"].get("data", {}).get("state", {})
    value = state.get("value")
    return value if isinstance(value, int) else None


def test_interrupt_keeps_finished_rows_and_a_rerun_sends_the_rest(
    kernel: Any, fake_server: FakeDeepInfra
) -> None:
    assert run(kernel, "%load_ext deepinfra_magic").error is None
    run(kernel, f"items = [f'row {{i}}' for i in range({ROWS})]")
    fake_server.configure(first_byte_delay=0.1)
    cell = "%%deepinfra_map items -o out --concurrency 4 --max-tokens 3\nSay {}"
    msg_id = kernel.execute(cell, allow_stdin=False)
    seen: list[dict[str, Any]] = []
    while True:  # until the bar shows a few rows done
        message = kernel.get_iopub_msg(timeout=30)
        if message["parent_header"].get("msg_id") != msg_id:
            continue
        seen.append(message)
        if (_bar_value(message) or 0) >= 4:
            break
    kernel.manager.interrupt_kernel()
    execution = collect(kernel, msg_id, seen=seen)

    assert execution.reply["content"]["ename"] == "KeyboardInterrupt"
    assert any("widget-view" in str(m["content"].get("data", {})) for m in seen)
    summary = execution.of_type("display_data")[-1]["content"]["data"][PLAIN]
    assert "Interrupted" in summary

    counted = run(kernel, "print(sum(isinstance(v, str) for v in out))")
    answered = int(counted.stdout)
    assert 4 <= answered < ROWS
    assert f"{ROWS - answered} remain" in summary
    missing = run(kernel, "print(*(i for i, v in enumerate(out) if not isinstance(v, str)))")
    fake_server.wait_streams_closed(timeout=5)  # the hung-up requests are all logged
    before = fake_server.count(CHAT_PATH)
    again = run(kernel, cell)
    assert again.error is None
    resent = [body["messages"][-1]["content"] for body in chat_bodies(fake_server)[before:]]
    # Only rows without an answer go out, each once (a row kept on disk just as the
    # interrupt landed may come from there instead).
    assert len(set(resent)) == len(resent)
    assert set(resent) <= {f"Say row {i}" for i in missing.stdout.split()}
    assert len(resent) >= len(missing.stdout.split()) - 1
    final = run(kernel, "print(sum(isinstance(v, str) for v in out))")
    assert final.stdout.strip() == str(ROWS)
