"""The magics in a real kernel: a notebook executed by nbclient and saved, and a kernel driven
over ZMQ (jupyter_client) for Ctrl-C, the hidden key prompt and ``-f code``.

Both kernels get the canary key, the fake server's URL, their own IPYTHONDIR and a shared
catalog cache directory through their environment, like a user's kernel would.
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from tests.fake_deepinfra import (
    CANARY_KEY,
    FEATURED_PATH,
    INFERENCE_PREFIX,
    FakeDeepInfra,
    RequestRecord,
    default_reply,
    filler_reply,
)
from tests.kernel_helpers import (
    MARKDOWN,
    METADATA_KEY,
    PLAIN,
    Execution,
    collect,
    magic_process_env,
    run,
    running_kernel,
)

pytestmark = pytest.mark.kernel

DEFAULT = "meta-llama/Llama-3.3-70B-Instruct-Turbo"
FLUX = "black-forest-labs/FLUX-1-schnell"
HELLO = "Say hello from the kernel"

CELLS: list[tuple[str, bool]] = [  # (source, raises)
    ("import sys; print(sys.executable)", False),
    ("%load_ext deepinfra_magic", False),
    (f"%%deepinfra\n{HELLO}", False),
    ("%xmode Verbose", False),
    ("%deepinfra_image --seed 1 this one is refused", True),
    ("%deepinfra_image --seed 7 a red square", False),
    ("%%deepinfra -m meta-llama/Llama-3.3-70B-Instruct\nhi", True),
    ("%config DeepInfraMagics", False),
    ("%deepinfra_models --images", False),
]


@dataclass
class Executed:
    """A notebook run once by nbclient: the saved file, what the server saw, the kernel's dirs."""

    nb: Any
    saved: Path
    requests: list[RequestRecord]
    root: Path

    def outputs(self, index: int) -> list[dict[str, Any]]:
        return list(self.nb.cells[index].outputs)


def history_text(ipython_dir: Path) -> str:
    """Every value in the kernel's IPython history database (all tables)."""
    path = ipython_dir / "profile_default" / "history.sqlite"
    assert path.exists(), "the kernel kept no history"
    connection = sqlite3.connect(path)
    try:
        tables = [row[0] for row in connection.execute("SELECT name FROM sqlite_master")]
        rows = [
            repr(row)
            for table in tables
            if not table.startswith("sqlite_")
            for row in connection.execute(f"SELECT * FROM {table}")
        ]
    finally:
        connection.close()
    return "\n".join(rows)


@pytest.fixture(scope="module")
def executed(
    _fake_server_session: FakeDeepInfra, tmp_path_factory: pytest.TempPathFactory
) -> Executed:
    server = _fake_server_session
    server.wait_streams_closed(timeout=5)
    server.reset()
    server.configure(token_delay=0.005)
    server.add_fault(path=INFERENCE_PREFIX + "*", status=401)  # the first image cell
    root = tmp_path_factory.mktemp("kernel")
    nb = nbformat.v4.new_notebook()
    for source, raises in CELLS:
        cell = nbformat.v4.new_code_cell(source)
        if raises:
            cell.metadata["tags"] = ["raises-exception"]
        nb.cells.append(cell)
    client = NotebookClient(
        nb,
        timeout=60,
        kernel_name="python3",
        resources={"metadata": {"path": str(root)}},
        # nbclient keeps history in memory by default; use the file a user's kernel has.
        ipython_hist_file=str(root / "ipython" / "profile_default" / "history.sqlite"),
    )
    client.execute(env=magic_process_env(server.api_url, root))
    saved = root / "executed.ipynb"
    nbformat.write(nb, saved)
    return Executed(nbformat.read(saved, as_version=4), saved, server.requests, root)


def test_kernel_runs_the_venv_python(executed: Executed) -> None:
    assert executed.outputs(0)[0]["text"].strip() == sys.executable


def test_saved_reply_is_the_final_text_with_markdown_and_plain(executed: Executed) -> None:
    answer, footer = executed.outputs(2)  # the reply ended in its live output: none is empty
    text = default_reply(DEFAULT, HELLO)
    assert answer["output_type"] == "display_data"
    assert answer["data"] == {MARKDOWN: text, PLAIN: text}
    info = answer["metadata"][METADATA_KEY]
    assert info["model"] == DEFAULT and info["finish_reason"] == "stop"
    assert info["interrupted"] is False and info["usage"]["completion_tokens"] > 0
    assert footer["data"][PLAIN].startswith(f"{DEFAULT} · ")
    assert "tok/s" in footer["data"][PLAIN]
    assert "Markdown object" not in executed.saved.read_text(encoding="utf-8")


def test_saved_image_and_its_caption(executed: Executed) -> None:
    done, image, caption = executed.outputs(5)  # the progress line says what was made
    assert done["data"][PLAIN] == f"✓ Generated an image with {FLUX}"
    assert set(image["data"]) == {"image/png", PLAIN}
    assert image["data"][PLAIN] == "[image 64×64 image/png, seed 7: a red square]"
    assert image["metadata"][METADATA_KEY]["seed"] == 7
    assert caption["data"][PLAIN].startswith(f"{FLUX} · seed 7 · 64×64 · ")


def test_errors_are_saved_as_one_line_even_under_verbose_tracebacks(executed: Executed) -> None:
    refused, missing = executed.outputs(4)[-1], executed.outputs(6)[-1]
    assert refused["output_type"] == "error" and refused["ename"] == "AuthenticationError"
    assert len(refused["traceback"]) == 1 and "\n" not in refused["traceback"][0]
    assert refused["traceback"][0].startswith("AuthenticationError: DeepInfra rejected the API key")
    assert missing["ename"] == "ModelNotFoundError"
    (line,) = missing["traceback"]
    assert f"Did you mean: {DEFAULT}" in line
    # The refused image left a note, not a stuck progress line nor an empty one.
    assert executed.outputs(4)[0]["data"][PLAIN] == f"Generated no image with {FLUX}"
    assert "No image" in executed.outputs(4)[1]["data"][PLAIN]


def test_the_key_is_nowhere_in_the_notebook_or_the_history(executed: Executed) -> None:
    saved = executed.saved.read_text(encoding="utf-8")
    assert "DeepInfraMagics.default_model" in saved  # the %config help was saved
    assert CANARY_KEY not in saved
    history = history_text(executed.root / "ipython")
    assert "%%deepinfra" in history or "run_cell_magic" in history
    assert CANARY_KEY not in history
    # The key did travel, in the Authorization header only.
    posts = [r for r in executed.requests if r.method == "POST"]
    assert len(posts) == 4
    assert all(r.headers["authorization"] == f"Bearer {CANARY_KEY}" for r in posts)


def test_one_catalog_request_for_the_whole_notebook(executed: Executed) -> None:
    assert sum(r.path == FEATURED_PATH for r in executed.requests) == 1


# --- a kernel over ZMQ ----------------------------------------------------------------------------


@pytest.fixture
def kernel(
    executed: Executed, fake_server: FakeDeepInfra, tmp_path: Path
) -> Iterator[tuple[Any, Path]]:
    """A kernel with no key in its environment, sharing the first kernel's catalog cache."""
    env = magic_process_env(fake_server.api_url, tmp_path, key=None)
    env["XDG_CACHE_HOME"] = str(executed.root / "xdg-cache")
    with running_kernel(env) as client:
        yield client, tmp_path / "ipython"


def login(kc: Any, key: str) -> Execution:
    """``%deepinfra_login``, answering the hidden prompt on the stdin channel."""
    msg_id = kc.execute("%deepinfra_login", allow_stdin=True)
    request = kc.get_stdin_msg(timeout=30)
    assert request["msg_type"] == "input_request"
    assert request["content"]["password"] is True
    kc.input(key)
    return collect(kc, msg_id)


def displayed(message: dict[str, Any]) -> str:
    return str(message["content"]["data"].get(MARKDOWN, ""))


def test_interrupt_keeps_partial_text_and_the_kernel_stays_usable(
    kernel: tuple[Any, Path], fake_server: FakeDeepInfra
) -> None:
    kc, ipython_dir = kernel
    fake_server.configure(valid_keys={CANARY_KEY})
    assert run(kc, "%load_ext deepinfra_magic").error is None
    done = login(kc, CANARY_KEY)
    assert done.stdout.startswith("✓ Key accepted; kept for this kernel session only")
    run(kc, "%xmode Verbose")

    text = filler_reply(2000)
    fake_server.configure(reply_tokens=2000, token_delay=0.01)  # 20 s if nobody stops it
    msg_id = kc.execute("%%deepinfra\nCount to two thousand", allow_stdin=False)
    seen: list[dict[str, Any]] = []
    while True:  # wait until text is on screen
        message = kc.get_iopub_msg(timeout=30)
        if message["parent_header"].get("msg_id") != msg_id:
            continue
        seen.append(message)
        if message["msg_type"] == "update_display_data" and "alpha" in displayed(message):
            break
    kc.manager.interrupt_kernel()
    execution = collect(kc, msg_id, seen=seen)

    assert execution.reply["content"]["status"] == "error"
    assert execution.reply["content"]["ename"] == "KeyboardInterrupt"
    assert execution.error is not None and execution.error["ename"] == "KeyboardInterrupt"
    assert CANARY_KEY not in "\n".join(execution.error["traceback"])
    *_, last, _ = execution.notebook_outputs()[:-1]  # the kept text, the footer, the error
    final = last["data"][PLAIN]
    partial, _, note = final.partition("\n\n⏹ Interrupted")
    assert partial and text.startswith(partial) and len(partial) < len(text)
    assert note.startswith(": the partial reply is kept")
    assert last["metadata"][METADATA_KEY]["interrupted"] is True
    assert fake_server.wait_for_disconnect(timeout=10)

    after = run(kc, "1 + 1")
    (result,) = after.of_type("execute_result")
    assert result["content"]["data"][PLAIN] == "2"
    # The second kernel found the catalog on disk.
    assert fake_server.count(FEATURED_PATH) == 0
    assert all(
        r.headers.get("authorization") == f"Bearer {CANARY_KEY}"
        for r in fake_server.requests
        if r.path != FEATURED_PATH
    )

    fake_server.configure(reply_tokens=None, token_delay=0.0)
    fake_server.script_reply("Here:\n\n```python\nprint('next cell')\n```\n")
    code = run(kc, "%%deepinfra -f code\nWrite code")
    assert code.reply["content"]["payload"] == [
        {"source": "set_next_input", "text": "print('next cell')", "replace": False}
    ]
    config = run(kc, "%config DeepInfraMagics")
    assert "DeepInfraMagics.default_model" in config.stdout
    assert CANARY_KEY not in config.stdout + done.stdout

    # Ctrl-C while images are made: the one that arrived is kept, one line says so, and
    # the interrupt's traceback is the cell's, not the worker threads' (%xmode Verbose on).
    fake_server.configure(image_delay_by_seed={1: 0.0, 2: 30.0, 3: 30.0})
    msg_id = kc.execute("%deepinfra_image -n 3 --seed 1 three owls", allow_stdin=False)
    seen = []
    while True:  # wait until the first image is on screen
        message = kc.get_iopub_msg(timeout=30)
        if message["parent_header"].get("msg_id") != msg_id:
            continue
        seen.append(message)
        if message["msg_type"] == "display_data" and "image/png" in message["content"]["data"]:
            break
    kc.manager.interrupt_kernel()
    images = collect(kc, msg_id, seen=seen)
    assert images.error is not None and images.error["ename"] == "KeyboardInterrupt"
    # One line, not the magic's frames (and never the worker threads'), even under Verbose.
    assert images.error["traceback"] == ["KeyboardInterrupt: stopped; what arrived is kept above"]
    caption = images.notebook_outputs()[-2]["data"][PLAIN]  # the interrupt's error last
    assert caption.endswith("⏹ interrupted: 1 of 3 images kept")
    assert fake_server.wait_for_disconnect(timeout=10, count=2)

    kc.manager.shutdown_kernel(now=False)  # the history is written out
    history = history_text(ipython_dir)
    assert "deepinfra_login" in history
    assert CANARY_KEY not in history
