"""The fault matrix at the user's level: interrupts in a real kernel, the canary key through
every failure, and awkward magic input. Each case checks what the user sees and that
nothing already received is lost."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from nbclient import NotebookClient

from tests.fake_deepinfra import CANARY_KEY, FakeDeepInfra, filler_reply
from tests.kernel_helpers import collect, magic_process_env, run, running_kernel

MARKDOWN, PLAIN, KEY = "text/markdown", "text/plain", "deepinfra_magic"


# --- 20 interrupts at random points of streams, in one real kernel -------------------------------


@pytest.fixture
def kernel(fake_server: FakeDeepInfra, tmp_path: Path) -> Iterator[Any]:
    with running_kernel(magic_process_env(fake_server.api_url, tmp_path)) as client:
        yield client


def _display_messages(kc: Any, msg_id: str, count: int) -> list[dict[str, Any]]:
    """IOPub messages of ``msg_id`` until ``count`` display messages have arrived."""
    seen: list[dict[str, Any]] = []
    displays = 0
    while displays < count:
        message = kc.get_iopub_msg(timeout=30)
        if message["parent_header"].get("msg_id") != msg_id:
            continue
        seen.append(message)
        displays += message["msg_type"] in ("display_data", "update_display_data")
    return seen


@pytest.mark.kernel
def test_twenty_interrupts_at_random_points_keep_text_and_close_connections(
    kernel: Any, fake_server: FakeDeepInfra
) -> None:
    kc = kernel
    assert run(kc, "%load_ext deepinfra_magic").error is None
    full = filler_reply(600)
    run(kc, "%deepinfra_models")  # the catalog is fetched once, outside the interrupted cells
    fake_server.configure(reply_tokens=600, token_delay=0.004)  # ~2.4 s per reply
    rng = random.Random(20261124)
    for attempt in range(20):
        # The placeholder is display message 1; later ones are the growing reply.
        stop_after = rng.randint(1, 9)
        code = f"%%deepinfra --new -o reply_{attempt}\nCount for me."
        msg_id = kc.execute(code, allow_stdin=False)
        seen = _display_messages(kc, msg_id, stop_after)
        kc.manager.interrupt_kernel()
        execution = collect(kc, msg_id, seen=seen)

        assert execution.reply["content"]["ename"] == "KeyboardInterrupt", attempt
        finals = [
            m["content"]
            for m in execution.of_type("display_data", "update_display_data")
            if KEY in m["content"]["metadata"] and m["content"]["data"].get(MARKDOWN)
        ]
        kinds = [m["msg_type"] for m in execution.messages]
        trace = "\n".join(execution.error["traceback"]) if execution.error else ""
        assert len(finals) >= 2, (attempt, stop_after, kinds, trace)
        # The finished reply, in the parts it streamed in, then the footer under it.
        *parts, footer = finals
        assert footer["data"][PLAIN].startswith("⏹ interrupted")
        assert parts[-1]["metadata"][KEY]["interrupted"] is True
        shown = "".join(part["data"][PLAIN] for part in parts)
        partial = shown.partition("\n\n⏹ Interrupted")[0]
        assert "⏹ Interrupted" in shown
        check = run(kc, f"print(repr(reply_{attempt}.text), reply_{attempt}.interrupted)")
        kept, interrupted = check.stdout.rsplit(" ", 1)
        assert interrupted.strip() == "True"
        kept_text = eval(kept)  # the repr printed by the kernel
        assert full.startswith(kept_text) and len(kept_text) < len(full)
        if kept_text:
            assert partial == kept_text, "what is on screen is what was kept"
        # The kernel answers the next cell, and no response is left open on the server.
        assert run(kc, "1 + 1").of_type("execute_result")[0]["content"]["data"][PLAIN] == "2"
        assert fake_server.wait_streams_closed(timeout=10), attempt
    assert fake_server.disconnects >= 15, "most interrupts land mid-stream and hang up"


# --- the canary through every failure, then a scan of everything written --------------------------

FAULT_CELLS: list[tuple[str, dict[str, Any] | None]] = [
    ("%%deepinfra\nfirst", {"status": 401, "body_style": "detail_str"}),
    ("%%deepinfra\nsecond", {"status": 402, "body_style": "detail_obj"}),
    ("%%deepinfra\nthird", {"status": 403, "body_style": "error_obj"}),
    ("%%deepinfra -m meta-llama/Llama-3.3-70B-Instruct\nfourth", None),  # a real 404
    ("%%deepinfra\nfifth", {"status": 422, "body_style": "detail_list"}),
    (
        "%%deepinfra\nsixth",
        {"status": 429, "body_style": "detail_str", "times": 2, "headers": {"Retry-After": "0"}},
    ),
    ("%%deepinfra\nseventh", {"status": 503, "body_style": "html", "times": 2}),
    ("%%deepinfra\neighth", {"status": 500, "body_style": "text", "times": 2}),
    ("%%deepinfra\nninth", {"status": 502, "body_style": "empty", "times": 2}),
    ("%%deepinfra\ntenth", {"disconnect_after": 5}),
    ("%%deepinfra\neleventh", {"malformed_after": 3}),
    ("%%deepinfra\ntwelfth", {"error_event_after": 4}),
    ("%%deepinfra\nthirteenth", {"first_byte_delay": 3.0}),
    ("%deepinfra_image a cat", {"path": "/v1/inference/*", "image_fault": "invalid_base64"}),
    ("%deepinfra_image a dog", {"path": "/v1/inference/*", "image_fault": "zero_images"}),
    ("%deepinfra_image a cow", {"path": "/v1/inference/*", "image_fault": "url_404"}),
    ("%deepinfra_image -m meta-llama/Llama-3.3-70B-Instruct-Turbo a hen", None),
    ("%%deepinfra --temperature 9\nbad value", None),
]


def _cell(source: str, raises: bool = True) -> Any:
    cell = nbformat.v4.new_code_cell(source)
    if raises:
        cell.metadata["tags"] = ["raises-exception"]
    return cell


@pytest.mark.kernel
def test_the_canary_key_appears_nowhere_across_the_fault_matrix(
    fake_server: FakeDeepInfra, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for _source, fault in FAULT_CELLS:
        if fault is not None:
            fault = dict(fault)
            fake_server.add_fault(path=fault.pop("path", "/v1/openai/chat/completions"), **fault)
    setup = [
        "import logging; logging.basicConfig(level=logging.DEBUG)  # httpx/httpcore logs too",
        "%load_ext deepinfra_magic",
        "%xmode Verbose",
        "%config DeepInfraMagics.timeout = 1.0",
        "%config DeepInfraMagics.max_retries = 1",
    ]
    cells = [_cell(code, raises=False) for code in setup]
    cells += [_cell(source) for source, _ in FAULT_CELLS]
    cells += [_cell("%config DeepInfraMagics", raises=False), _cell("%deepinfra_models", False)]
    notebook = nbformat.v4.new_notebook(cells=cells)
    history = tmp_path / "history.sqlite"
    env = magic_process_env(fake_server.api_url, tmp_path)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    log = tmp_path / "kernel.log"
    with log.open("w") as kernel_output:
        NotebookClient(
            notebook,
            timeout=120,
            kernel_name="python3",
            extra_arguments=[f"--HistoryManager.hist_file={history}"],
            resources={"metadata": {"path": str(tmp_path)}},
        ).execute(stdout=kernel_output, stderr=kernel_output)
    saved = tmp_path / "matrix.ipynb"
    nbformat.write(notebook, saved)

    errors = [
        output
        for cell in notebook.cells[len(setup) :]
        for output in cell.outputs
        if output.output_type == "error" or output.get("name") == "stderr"
    ]
    assert len(errors) >= len(FAULT_CELLS), "every fault case failed visibly"
    for output in errors:
        if output.output_type == "error":
            assert len(output.traceback) == 1, output.traceback  # one line, even Verbose
    # Text that arrived before a stream broke is still on screen.
    broken = notebook.cells[len(setup) + 9].outputs
    assert any("Run the cell again" in str(o) for o in broken)
    assert any(o.get("data", {}).get(PLAIN, "").strip() for o in broken if o.output_type != "error")

    written = saved.read_text() + log.read_text()
    with sqlite3.connect(history) as db:
        written += "\n".join(str(row) for row in db.execute("SELECT * FROM history"))
    assert "%deepinfra_image" in written and "DEBUG" in written  # the scan saw real content
    assert CANARY_KEY not in written
    assert CANARY_KEY[-12:] not in written


# --- awkward input to the magics ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "cell", "expected"),
    [
        ("--model", "hi", "expected one argument"),
        ("-t warm", "hi", "-t/--temperature: expected a number from 0 to 2"),
        ("--max-tokens 0", "hi", "--max-tokens: expected a whole number ≥ 1"),
        ("-f html", "hi", "-f/--format: invalid choice"),
        ("--shout", "hi", "unrecognized arguments: --shout"),
        ("-s 'unclosed", "hi", "check the quotes"),
        ("", "   \n\t\n", "the cell is empty"),
    ],
)
def test_bad_chat_input_is_a_one_line_usage_error(
    ip: InteractiveShell, fake_server: FakeDeepInfra, line: str, cell: str, expected: str
) -> None:
    with pytest.raises(UsageError) as caught:
        ip.run_cell_magic("deepinfra", line, cell)
    assert expected in str(caught.value)
    assert "\n" not in str(caught.value)
    assert not [r for r in fake_server.requests if r.path.startswith("/v1/")]


def test_huge_prompt_with_braces_dollars_and_quotes_is_sent_as_typed(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    tricky = "f'{x}' $HOME ${y} {{z}} \"quoted\" 'single' \\n `tick`\n"
    prompt = (tricky * 6000).rstrip("\n")  # ~300 KB
    with capture_output():
        ip.run_cell_magic("deepinfra", "--new", prompt)
    sent = [r for r in fake_server.requests if r.path == "/v1/openai/chat/completions"][-1]
    assert sent.json is not None
    assert sent.json["messages"][-1]["content"] == prompt
    magics = ip.magics_manager.registry["DeepInfraMagics"]
    assert magics.last_response.complete
