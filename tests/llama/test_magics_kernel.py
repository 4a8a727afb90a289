"""The magics in a real kernel whose environment has no key and DEEPINFRA_BASE_URL set to
a real llama.cpp server: %deepinfra_models, %%deepinfra with -o, the history, and Ctrl-C
mid-reply (the server must see the hang-up)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.kernel_helpers import MARKDOWN, PLAIN, collect, magic_process_env, run, running_kernel
from tests.llama.server import MODEL, LlamaServer

pytestmark = pytest.mark.kernel


@pytest.fixture(scope="module")
def kc(llama: LlamaServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A kernel with the extension loaded, no key, and the llama.cpp server as its API."""
    root: Path = tmp_path_factory.mktemp("llama-kernel")
    with running_kernel(magic_process_env(llama.url, root, key=None), load=True) as client:
        yield client


def markdown(message: dict[str, Any]) -> str:
    return str(message["content"]["data"].get(MARKDOWN, ""))


def test_models_lists_the_servers_models_and_says_which_server(kc: Any, llama: LlamaServer) -> None:
    done = run(kc, "%deepinfra_models")
    assert done.error is None
    (table,) = done.of_type("display_data")
    text = markdown(table)
    status = text.splitlines()[0]
    assert status.startswith("Key: none sent (none set) · list from network")
    assert status.endswith(f" · OpenAI-compatible server at {llama.url}")
    assert f"| `{MODEL}` | text |" in text


def test_chat_with_no_key_stores_the_result_and_history(kc: Any) -> None:
    done = run(kc, "%%deepinfra -o r --max-tokens 20 -t 0\nTell me about rivers.")
    assert done.error is None
    # the footer comes fresh after the reply (its first text/plain also carries the reply, for
    # frontends that ignore updates), then is updated to the footer alone
    footer = done.of_type("display_data", "update_display_data")[-1]["content"]["data"][PLAIN]
    assert footer.startswith(f"{MODEL} · ") and "cut off at max_tokens" in footer
    shown = run(kc, "print(r.model, r.finish_reason, bool(r.text.strip()), r.interrupted)")
    assert shown.stdout.split() == [MODEL, "length", "True", "False"]
    history = run(kc, "%deepinfra_history")
    (listing,) = history.of_type("display_data")
    assert f"**{MODEL}**:" in markdown(listing)


def test_ctrl_c_mid_reply_keeps_the_text_and_the_server_sees_the_hang_up(
    kc: Any, llama: LlamaServer
) -> None:
    mark = llama.mark()
    msg_id = kc.execute("%%deepinfra --max-tokens 30000 -o cut\nGo on forever.", allow_stdin=False)
    seen: list[dict[str, Any]] = []
    while True:  # until reply text is on screen
        message = kc.get_iopub_msg(timeout=60)
        if message["parent_header"].get("msg_id") != msg_id:
            continue
        seen.append(message)
        text = markdown(message) if message["msg_type"] == "update_display_data" else ""
        if text and not text.startswith("⏳"):
            break
    kc.manager.interrupt_kernel()
    execution = collect(kc, msg_id, seen=seen)
    assert execution.reply["content"]["ename"] == "KeyboardInterrupt"
    assert llama.wait_for_line("Disconnected from client", after=mark, timeout=30)
    kept = run(kc, "print(cut.interrupted, len(cut.text) > 0, cut.model)")
    assert kept.stdout.split() == ["True", "True", MODEL]


def test_a_conversation_over_the_context_is_one_line_that_says_what_to_do(
    kc: Any, llama: LlamaServer
) -> None:
    mark = llama.mark()
    assert run(kc, 'big = "bada " * 33000').error is None
    done = run(kc, "%%deepinfra --vars --max-tokens 10\n{big}")
    error = done.error
    assert error is not None and error["ename"] == "ContextLengthError"
    (line,) = error["traceback"]
    assert "--new" in line and "--max-tokens" in line and "max_history" in line
    assert "run the cell again" not in line.lower()
    assert llama.wait_for_line("exceed context window", after=mark)
    assert sum('"POST /v1/chat/completions' in x for x in llama.log.splitlines()[mark:]) == 1
