"""The notebook as context: cell-aware history, ``{In[n]}``/``{Out[n]}``/``{Err[n]}``/``{Err}``,
``%deepinfra_explain``, the ``explain_errors`` hint, and images in recordings. Cells run
through ``InteractiveShell.run_cell`` (with history and cell ids, as a kernel runs them)."""

from __future__ import annotations

import base64
import io
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import matplotlib
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import ExecutionResult, InteractiveShell
from IPython.utils.capture import capture_output
from PIL import Image

from deepinfra_magic.catalog import CATALOG_CACHE
from deepinfra_magic.errors import ReplayError
from deepinfra_magic.notebook import shorten_traceback, strip_ansi
from tests.fake_deepinfra import CANARY_KEY, CHAT_PATH, FakeDeepInfra, default_reply
from tests.kernel_helpers import (
    PLAIN,
    Execution,
    Reply,
    chat_bodies,
    collect,
    magic_process_env,
)
from tests.magics.test_chat_see import VISION, sent_images

matplotlib.use("Agg")

DEFAULT = "meta-llama/Llama-3.3-70B-Instruct-Turbo"


def cell(ip: InteractiveShell, source: str, cell_id: str | None = None) -> ExecutionResult:
    """Run a cell as a kernel does: stored in history, with the frontend's cell id."""
    return ip.run_cell(source, store_history=True, cell_id=cell_id)


def rich_cell(ip: InteractiveShell, source: str, cell_id: str | None = None) -> Any:
    """Run a cell in a rich frontend; its captured outputs."""
    with capture_output() as captured:
        cell(ip, source, cell_id)
    return captured


def user_texts(body: dict[str, Any]) -> list[str]:
    return [m["content"] for m in body["messages"] if m["role"] == "user"]


# --- cell-aware history ---------------------------------------------------------------------


def test_running_a_cell_again_replaces_its_exchange(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    rich_cell(ip, "%%deepinfra\nName a colour.", cell_id="cell-a")
    second = cell(ip, "%%deepinfra\nName a fruit.", cell_id="cell-b").execution_count
    rerun = cell(ip, "%%deepinfra\nName a colour, in French.", cell_id="cell-a")
    bodies = chat_bodies(fake_server)
    # The re-run is not fed its own stale exchange; the other cell's exchange stays.
    assert user_texts(bodies[2]) == ["Name a fruit.", "Name a colour, in French."]
    assert [m["content"] for m in bodies[2]["messages"] if m["role"] == "assistant"] == [
        default_reply(DEFAULT, "Name a fruit.")
    ]
    with capture_output() as shown:
        ip.run_line_magic("deepinfra_history", "")
    text = shown.outputs[0].data[PLAIN]
    assert text.startswith("2 exchanges")
    assert f"You (In [{second}]): Name a fruit." in text
    assert f"You (In [{rerun.execution_count}]): Name a colour, in French." in text
    assert "Name a colour.\n" not in text


def test_outside_a_notebook_the_same_source_run_again_replaces_its_exchange(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    for _ in range(2):
        rich_cell(ip, "%%deepinfra\nTell me a joke.")
    rich_cell(ip, "%%deepinfra\nAnother one.")
    bodies = chat_bodies(fake_server)
    assert user_texts(bodies[1]) == ["Tell me a joke."]
    assert user_texts(bodies[2]) == ["Tell me a joke.", "Another one."]


def test_a_failed_rerun_keeps_the_earlier_exchange(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    rich_cell(ip, "%%deepinfra\nFirst.", cell_id="c1")
    fake_server.add_fault(status=400, message="bad request")
    rich_cell(ip, "%%deepinfra\nFirst, again.", cell_id="c1")
    magics = ip.magics_manager.registry["DeepInfraMagics"]
    assert [e.prompt for e in magics.conversation.exchanges] == ["First."]


# --- {In[n]}, {Out[n]}, {Err[n]} and {Err} -------------------------------------------------


def test_notebook_references_fill_the_prompt(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    source = "def ratio(a, b):\n    return a / b\n\nratio(1, 0)"
    failed = rich_cell(ip, source)
    fail_count = ip.execution_count - 1
    code_count = cell(ip, "x = 41 + 1").execution_count
    ip.user_ns["pd"] = __import__("pandas")
    out_count = cell(ip, "pd.DataFrame({'a': [1, 2], 'b': ['x', 'y']})").execution_count
    assert "ZeroDivisionError" in failed.stdout + failed.stderr
    prompt = (
        f"Code: {{In[{code_count}]}}\nTable: {{Out[{out_count}]}}\n"
        f"Error: {{Err[{fail_count}]}}\nLast: {{Err}}\nVariable: {{x}}"
    )
    rich_cell(ip, f"%%deepinfra --vars\n{prompt}")
    sent = user_texts(chat_bodies(fake_server)[-1])[-1]
    assert "Code: x = 41 + 1" in sent
    assert "Table: DataFrame table: 2 rows × 2 columns." in sent and "| 1 | 2 | y |" in sent
    error = sent.split("Error: ")[1].split("\nLast: ")[0]
    assert "ZeroDivisionError" in error and "return a / b" in error and "\x1b[" not in error
    assert sent.split("Last: ")[1].startswith(error)
    assert sent.endswith("Variable: 42")


def test_a_traceback_field_mid_line_is_still_a_fenced_block(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    rich_cell(ip, "1 / 0")
    failed = ip.execution_count - 1
    rich_cell(ip, f"%%deepinfra --vars\nWhy does this fail: {{Err}} and {{Err[{failed}]}}? Short.")
    sent = user_texts(chat_bodies(fake_server)[-1])[-1]
    lines = sent.splitlines()
    # Each fence stands at the start of its own line (else Markdown shows it as text).
    assert lines[0] == "Why does this fail: " and lines[1] == "```"
    fences = [n for n, line in enumerate(lines) if line.startswith("```")]
    assert len(fences) == 4 and all(lines[n] == "```" for n in fences)
    assert lines[fences[1] + 1] == " and " and lines[-1] == "? Short."
    assert "ZeroDivisionError" in lines[fences[1] - 1]


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("{Out[999]}", r"\{Out\[999\]\} does not exist; cells that have an output: \d+"),
        ("{Err[999]}", r"\{Err\[999\]\} does not exist; no cell has failed yet"),
        ("{In[999]}", r"\{In\[999\]\} does not exist; cells that ran: "),
        ("{Err}", r"\{Err\} has nothing to show: no cell has failed yet"),
        ("{Out}", r"\{Out\} needs a cell number, e\.g\. \{Out\[3\]\}"),
    ],
)
def test_a_reference_to_nothing_is_one_line_naming_what_exists(
    ip: InteractiveShell, fake_server: FakeDeepInfra, reference: str, message: str
) -> None:
    cell(ip, "40 + 2")
    with pytest.raises(UsageError, match=message) as caught:
        ip.run_cell_magic("deepinfra", "--vars", f"Look at {reference}")
    assert "\n" not in str(caught.value)
    assert chat_bodies(fake_server) == []


def test_without_vars_references_are_sent_as_typed(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    rich_cell(ip, "%%deepinfra\nWhat does {Err} mean in {In[3]}?")
    assert user_texts(chat_bodies(fake_server)[0]) == ["What does {Err} mean in {In[3]}?"]


def test_tracebacks_lose_colour_codes_and_keep_their_end_within_the_budget() -> None:
    coloured = "\x1b[31mTraceback\x1b[0m\n" + "\n".join(f"  frame {i}" for i in range(500))
    coloured += "\n\x1b[1;31mValueError\x1b[0m: the real problem"
    short = shorten_traceback(coloured, 400)
    assert strip_ansi("\x1b[38;5;12mblue\x1b[39m") == "blue"
    assert len(short) <= 460 and "\x1b" not in short
    assert short.startswith("Traceback") and short.endswith("ValueError: the real problem")
    assert "characters cut" in short


# --- %deepinfra_explain and explain_errors ------------------------------------------------


def test_explain_sends_the_cell_and_its_traceback_and_can_put_the_fix_below(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    rich_cell(ip, "items = [1, 2, 3]\nitems[10]")
    first = ip.execution_count - 1
    rich_cell(ip, "ok = True")
    rich_cell(ip, "undefined_name + 1")
    second = ip.execution_count - 1
    fake_server.script_reply("The list has 3 items.\n\n```python\nitems = [1, 2, 3]\nitems[2]\n```")
    with capture_output() as captured:
        ip.run_line_magic("deepinfra_explain", f"{first} -f code")
    sent = user_texts(chat_bodies(fake_server)[-1])[-1]
    assert f"The cell (In [{first}]):\n```python\nitems = [1, 2, 3]\nitems[10]\n```" in sent
    assert "IndexError" in sent and "list index out of range" in sent and "\x1b[" not in sent
    assert ip.rl_next_input == "items = [1, 2, 3]\nitems[2]"
    reply = Reply(captured.outputs)
    assert "next cell" in reply.final_text and reply.footer_text.startswith(DEFAULT)
    # Without N: the last error.
    with capture_output():
        ip.run_line_magic("deepinfra_explain", "")
    sent = user_texts(chat_bodies(fake_server)[-1])[-1]
    assert f"In [{second}]" in sent and "NameError" in sent
    with pytest.raises(UsageError, match=rf"Cell 999 has no recorded error; .*: {first}, {second}"):
        ip.run_line_magic("deepinfra_explain", "999")


def test_explain_inside_except_explains_the_handled_error_and_the_cell_succeeds(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    source = 'row = {"units": 3}\ntry:\n    row["revenue"]\nexcept KeyError:\n'
    source += "    %deepinfra_explain"
    fake_server.script_reply("There is no `revenue` key.")
    result = cell(ip, source)
    assert result.success, "a caught error does not fail the cell (Run All, papermill go on)"
    count = result.execution_count
    sent = user_texts(chat_bodies(fake_server)[-1])[-1]
    assert f"The cell (In [{count}]):\n```python\n{source}\n```" in sent
    assert "KeyError" in sent and "'revenue'" in sent
    # Its own traceback: the line that raised, not the magic's call below it.
    error = sent.split("The error:\n```\n")[1]
    assert f'File "Cell In[{count}]", line 3, in <module>\n    row["revenue"]\n' in error
    assert "run_line_magic" not in error and "deepinfra_explain" not in error
    # The handled error is this cell's: {Err} and %deepinfra_explain N find it afterwards.
    with capture_output():
        ip.run_line_magic("deepinfra_explain", str(count))
    assert "KeyError" in user_texts(chat_bodies(fake_server)[-1])[-1]


def test_explain_with_no_error_yet_is_one_line(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    with pytest.raises(UsageError, match="No error to explain yet: no cell has failed"):
        ip.run_line_magic("deepinfra_explain", "")
    assert fake_server.requests == []


def test_explain_errors_adds_a_hint_to_failing_cells_without_a_request(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    quiet = rich_cell(ip, "1 / 0")
    assert not any("deepinfra_explain" in o.data.get(PLAIN, "") for o in quiet.outputs)
    ip.run_line_magic("config", "DeepInfraMagics.explain_errors = True")
    loud = rich_cell(ip, "1 / 0")
    hints = [o.data for o in loud.outputs if "deepinfra_explain" in o.data.get(PLAIN, "")]
    assert hints == [
        {
            "text/markdown": "💡 `%deepinfra_explain` asks the model why this cell failed.",
            "text/plain": "💡 %deepinfra_explain asks the model why this cell failed.",
        }
    ]
    fine = rich_cell(ip, "1 + 1")
    assert not any("deepinfra_explain" in o.data.get(PLAIN, "") for o in fine.outputs)
    assert fake_server.requests == []


# --- images in recordings ------------------------------------------------------------------


def dead_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}/v1/openai"


def test_recordings_store_each_image_once_and_replay_matches_on_it(
    ip: InteractiveShell,
    fake_server: FakeDeepInfra,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = tmp_path / "vision.json"

    def session(colour: tuple[int, int, int], size: tuple[int, int] = (200, 100)) -> list[str]:
        ip.run_line_magic("config", f"DeepInfraMagics.default_model = {VISION!r}")
        ip.user_ns["pic"] = Image.new("RGB", size, colour)
        texts = []
        for prompt in ("What colour is it?", "And its shape?"):
            with capture_output() as captured:
                ip.run_cell_magic("deepinfra", "--see pic", prompt)
            texts.append(Reply(captured.outputs).final_text)
        return texts

    ip.run_line_magic("deepinfra_record", str(path))
    recorded = session((255, 0, 0))
    ip.run_line_magic("deepinfra_record", "off")
    data = json.loads(path.read_text())
    assert len(data["images"]) == 1  # sent in both requests, stored once
    (name,) = data["images"]
    assert name.startswith("sha256:") and data["images"][name].startswith("data:image/png;base64,")
    chats = [e for e in data["exchanges"] if e["request"]["path"].endswith("/chat/completions")]
    urls = [
        part["image_url"]["url"]
        for exchange in chats
        for message in exchange["request"]["json"]["messages"]
        if isinstance(message["content"], list)
        for part in message["content"]
        if part["type"] == "image_url"
    ]
    assert urls == [name, name]
    assert CANARY_KEY not in path.read_text()

    monkeypatch.delenv("DEEPINFRA_API_KEY")
    monkeypatch.setenv("DEEPINFRA_BASE_URL", dead_url())
    CATALOG_CACHE.clear()
    ip.run_line_magic("reload_ext", "deepinfra_magic")
    ip.run_line_magic("config", "DeepInfraMagics.replay_speed = 0")
    ip.run_line_magic("deepinfra_replay", str(path))
    assert session((255, 0, 0)) == recorded
    # Other bytes in the same place (a plot drawn by another matplotlib) still match...
    ip.run_line_magic("reload_ext", "deepinfra_magic")
    ip.run_line_magic("config", "DeepInfraMagics.replay_speed = 0")
    ip.run_line_magic("deepinfra_replay", str(path))
    assert session((254, 0, 0)) == recorded
    # ... but a request without the image does not.
    with pytest.raises(
        ReplayError, match=r"No recorded answer.*'What colour is it\? \[\+1 image\]'"
    ):
        ip.run_cell_magic("deepinfra", "--new", "What colour is it?")


def test_explaining_another_error_from_the_same_source_adds_an_exchange(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    rich_cell(ip, "1 / 0")
    rich_cell(ip, "%deepinfra_explain")
    rich_cell(ip, "%deepinfra_explain")  # the same error again: a re-run, replaced
    rich_cell(ip, "[][1]")
    rich_cell(ip, "%deepinfra_explain")  # another error: another exchange
    magics = ip.magics_manager.registry["DeepInfraMagics"]
    prompts = [e.prompt for e in magics.conversation.exchanges]
    first, second = (ip.execution_count - n for n in (5, 2))
    assert prompts == [f"Explain the error of In [{first}]", f"Explain the error of In [{second}]"]
    assert all(e.label.startswith("In [") for e in magics.conversation.exchanges)


# --- in a real kernel: the frontend's cell ids, and plots shown inline ----------------------


@pytest.fixture
def kernel(fake_server: FakeDeepInfra, tmp_path: Path) -> Iterator[Any]:
    """A kernel with the canary key and the fake server, as a user's kernel would have."""
    from jupyter_client.manager import KernelManager

    manager = KernelManager(kernel_name="python3")
    manager.start_kernel(env=magic_process_env(fake_server.api_url, tmp_path))
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        yield client
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def in_cell(kc: Any, code: str, cell_id: str) -> Execution:
    """Execute ``code`` as JupyterLab does: the cell's id in the request metadata."""
    content = {
        "code": code,
        "silent": False,
        "store_history": True,
        "user_expressions": {},
        "allow_stdin": False,
        "stop_on_error": True,
    }
    message = kc.session.msg("execute_request", content, metadata={"cellId": cell_id})
    kc.shell_channel.send(message)
    return collect(kc, message["header"]["msg_id"])


@pytest.mark.kernel
def test_in_a_kernel_cell_ids_and_inline_plots_are_followed(
    kernel: Any, fake_server: FakeDeepInfra
) -> None:
    assert in_cell(kernel, "%load_ext deepinfra_magic", "load").error is None
    in_cell(kernel, f"%config DeepInfraMagics.default_model = {VISION!r}", "config")
    plot = in_cell(
        kernel,
        "import matplotlib.pyplot as plt\nplt.figure(figsize=(3, 2), dpi=50)\nplt.plot([1, 2])\n"
        "plt.show()",
        "plot",
    )
    (shown,) = plot.of_type("display_data")  # the inline backend showed the plot
    png = base64.b64decode(shown["content"]["data"]["image/png"])
    size = Image.open(io.BytesIO(png)).size
    count = plot.reply["content"]["execution_count"]
    in_cell(kernel, f"%%deepinfra --see cell:{count}\nWhat is it?", "ask")
    in_cell(kernel, "%%deepinfra\nAnd the colour?", "follow-up")
    rerun = in_cell(kernel, f"%%deepinfra --see cell:{count}\nWhat is it, in short?", "ask")
    assert rerun.error is None
    first, _, third = chat_bodies(fake_server)
    assert sent_images(first) == sent_images(third) == [("image/png", size)]
    # The re-run of "ask" is not fed its own earlier exchange; the follow-up stays.
    assert [m["role"] for m in third["messages"]] == ["user", "assistant", "user"]
    assert third["messages"][0]["content"] == "And the colour?"


# --- no credential leaves with notebook text (the key, a scoped token, an Authorization) ---

SECRET_KEY = "canary0f3a9c2e7b51d864"  # no known key shape: only the client knows it is one
SCOPED = "jwt:eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJzZWF0LTcifQ.c2lnbmF0dXJlLW9mLXNlYXQ"
BASIC = "Basic dXNlcjpzM2NyZXQtcGFzcw=="
LEAKY = (
    "import os\n"
    "key = os.environ['DEEPINFRA_API_KEY']\n"
    f"config = {{'token': {SCOPED!r}, 'Authorization': {BASIC!r}}}\n"
    "raise ConnectionError('GET https://api.example.com/v1/data?api_key=' + key + ' failed')"
)


def _key_path(ip: InteractiveShell, path: str) -> None:
    """Send notebook text holding the key by one of the ways a chat cell sends it."""
    ip.run_line_magic("xmode", "Verbose")  # the traceback shows every local, the key too
    try:
        if path == "explain inside except":
            rich_cell(ip, f"try:\n    {LEAKY.replace(chr(10), chr(10) + '    ')}\n"
                      "except ConnectionError:\n    %deepinfra_explain")  # fmt: skip
            return
        failed = rich_cell(ip, LEAKY)
        count = ip.execution_count - 1
        assert SECRET_KEY in failed.stdout + failed.stderr  # IPython itself shows it
        pandas = __import__("pandas")
        values = {"k": [ip.user_ns["key"]], "t": [ip.user_ns["config"]["token"]]}
        ip.user_ns["table"] = pandas.DataFrame(values)
        cells = {
            "explain": "%deepinfra_explain",
            "{Err}": "%%deepinfra --vars\nWhy? {Err}",
            "{Err[n]} and {In[n]}": f"%%deepinfra --vars\n{{In[{count}]}} {{Err[{count}]}}",
            "--vars variable": "%%deepinfra --vars\nIs {config} right for {key}?",
            "--see table": "%%deepinfra --see table\nSummarise.",
            "-s system": "%%deepinfra -s 'Your key is canary0f3a9c2e7b51d864.'\nHi.",
        }
        rich_cell(ip, cells[path])
    finally:
        ip.run_line_magic("xmode", "Context")


@pytest.mark.parametrize(
    "path",
    [
        "explain",
        "explain inside except",
        "{Err}",
        "{Err[n]} and {In[n]}",
        "--vars variable",
        "--see table",
        "-s system",
    ],
)
def test_no_key_token_or_authorization_value_leaves_with_notebook_text(
    ip: InteractiveShell, fake_server: FakeDeepInfra, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    monkeypatch.setenv("DEEPINFRA_API_KEY", SECRET_KEY)
    ip.run_line_magic("reload_ext", "deepinfra_magic")
    _key_path(ip, path)
    bodies = [json.dumps(record.json) for record in fake_server.requests if record.json]
    assert len(chat_bodies(fake_server)) == 1, path
    for secret in (SECRET_KEY, SCOPED.removeprefix("jwt:"), BASIC.split()[1]):
        assert not any(secret in body for body in bodies), (path, secret)
    assert "***" in bodies[-1]
    # The request still carried the key, in its header only.
    chat = next(r for r in fake_server.requests if r.path == CHAT_PATH)
    assert chat.headers["authorization"] == f"Bearer {SECRET_KEY}"


@pytest.mark.kernel
def test_in_a_kernel_explain_inside_except_sends_the_line_that_raised(
    kernel: Any, fake_server: FakeDeepInfra
) -> None:
    in_cell(kernel, "%load_ext deepinfra_magic", "load")
    source = (
        'row = {"units": 3}\ntry:\n    row["revenue"]\nexcept KeyError:\n    %deepinfra_explain'
    )
    ran = in_cell(kernel, source, "lesson")
    assert ran.error is None
    sent = user_texts(chat_bodies(fake_server)[-1])[-1]
    error = sent.split("The error:\n```\n")[1]
    # IPython's own formatter showed this frame at the magic's call ("line 5") in a kernel.
    assert ', line 3, in <module>\n    row["revenue"]\n' in error
    assert "line 5" not in error and "run_line_magic" not in error
    assert error.rstrip("`\n").endswith("KeyError: 'revenue'")
