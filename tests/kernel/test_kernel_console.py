"""What every frontend ends with, in a real kernel driven over ZMQ.

A notebook applies display updates; jupyter console ignores ``update_display_data`` and
prints only fresh outputs. Both must end showing the whole reply once: the reasoning, the
answer, the text kept after Ctrl-C, image captions, and notices printed earlier.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fake_deepinfra import (
    FEATURED_PATH,
    FakeDeepInfra,
    default_reasoning,
    default_reply,
    filler_reply,
)
from tests.kernel_helpers import (
    METADATA_KEY,
    PLAIN,
    Execution,
    collect,
    magic_process_env,
    run,
    running_kernel,
)

pytestmark = pytest.mark.kernel

REASONER = "deepseek-ai/DeepSeek-R1"
FLUX = "black-forest-labs/FLUX-1-schnell"


@pytest.fixture
def kc(fake_server: FakeDeepInfra, tmp_path: Path) -> Iterator[Any]:
    """A kernel with the key and the fake server, the extension loaded."""
    env = magic_process_env(fake_server.api_url, tmp_path)
    with running_kernel(env, load=True) as client:
        yield client


def texts(outputs: list[dict[str, Any]]) -> list[str]:
    """The plain text of each output a notebook shows."""
    return [o["text"] if o["output_type"] == "stream" else o["data"][PLAIN] for o in outputs]


def test_a_reasoning_reply_ends_shown_once_in_the_notebook_and_in_the_console(
    kc: Any, fake_server: FakeDeepInfra
) -> None:
    fake_server.configure(token_delay=0.002)
    prompt = "Why is the sky blue?"
    execution = run(kc, f"%%deepinfra -m {REASONER}\n{prompt}")
    reasoning, answer = default_reasoning(prompt), default_reply(REASONER, prompt)

    shown = execution.notebook_outputs()
    assert [o["output_type"] for o in shown] == ["display_data"] * 3
    thinking, final, footer = texts(shown)
    assert thinking == "💭 Reasoning:\n" + reasoning
    assert final == answer
    assert footer.startswith(f"{REASONER} · ")
    assert shown[1]["metadata"][METADATA_KEY]["finish_reason"] == "stop"
    # The console, which ignores updates, prints the same three after the placeholder.
    assert execution.console_text() == (
        f"⏳ Asking {REASONER}…\n💭 Reasoning:\n{reasoning}\n{answer}\n{footer}\n"
    )


def test_ctrl_c_leaves_the_kept_text_in_the_notebook_and_in_the_console(
    kc: Any, fake_server: FakeDeepInfra
) -> None:
    text = filler_reply(2000)
    fake_server.configure(reply_tokens=2000, token_delay=0.01)  # 20 s if nobody stops it
    msg_id = kc.execute("%%deepinfra\nCount to two thousand", allow_stdin=False)
    seen: list[dict[str, Any]] = []
    while True:  # wait until text is on screen
        message = kc.get_iopub_msg(timeout=30)
        if message["parent_header"].get("msg_id") != msg_id:
            continue
        seen.append(message)
        if message["msg_type"] == "update_display_data" and "alpha" in str(
            message["content"]["data"]
        ):
            break
    kc.manager.interrupt_kernel()
    execution = collect(kc, msg_id, seen=seen)

    assert execution.error is not None and execution.error["ename"] == "KeyboardInterrupt"
    final, footer, error = execution.notebook_outputs()
    kept, _, note = final["data"][PLAIN].partition("\n\n⏹ Interrupted")
    assert kept and text.startswith(kept) and len(kept) < len(text)
    assert note == ": the partial reply is kept (not added to the conversation)."
    assert final["metadata"][METADATA_KEY]["interrupted"] is True
    assert footer["data"][PLAIN].startswith("⏹ interrupted · ")
    assert error["output_type"] == "error"
    assert error["traceback"] == ["KeyboardInterrupt: stopped; what arrived is kept above"]
    console = execution.console_text()
    assert final["data"][PLAIN] in console and footer["data"][PLAIN] in console
    assert console.index(kept) < console.index("KeyboardInterrupt")


def test_an_image_caption_reaches_the_console_too(kc: Any, fake_server: FakeDeepInfra) -> None:
    execution = run(kc, "%deepinfra_image --seed 7 a red square")
    done, image, caption = execution.notebook_outputs()
    assert done["data"][PLAIN] == f"✓ Generated an image with {FLUX}"
    assert "image/png" in image["data"]
    assert caption["data"][PLAIN].startswith(f"{FLUX} · seed 7 · 64×64 · ")
    console = execution.console_text()
    assert caption["data"][PLAIN] in console
    assert console.index(image["data"][PLAIN]) < console.index(caption["data"][PLAIN])


def test_a_notice_printed_before_the_reply_survives_it(kc: Any, fake_server: FakeDeepInfra) -> None:
    # Cache the model list on disk, then start over with it stale and the list unreachable:
    # the chat prints a one-time notice on stderr before the reply.
    assert run(kc, "%deepinfra_models").error is None
    run(kc, "%reload_ext deepinfra_magic")
    run(kc, "%config DeepInfraMagics.catalog_ttl = 0.001")
    run(kc, "%config DeepInfraMagics.max_retries = 0")
    run(kc, "from deepinfra_magic.catalog import CATALOG_CACHE; CATALOG_CACHE.clear()")
    fake_server.add_fault(path=FEATURED_PATH, status=503, times=None)
    execution: Execution = run(
        kc, "print('my own line')\nget_ipython().run_cell_magic('deepinfra', '', 'Hello')"
    )
    mine, notice, answer, footer = execution.notebook_outputs()
    assert mine["output_type"] == "stream" and mine["text"] == "my own line\n"
    assert notice["output_type"] == "stream" and notice["name"] == "stderr"
    assert notice["text"].startswith("⚠ Could not refresh the model list")
    assert answer["data"][PLAIN] == default_reply(
        "meta-llama/Llama-3.3-70B-Instruct-Turbo", "Hello"
    )
    assert footer["data"][PLAIN].startswith("meta-llama/Llama-3.3-70B-Instruct-Turbo · ")
