"""``%%deepinfra`` when things go wrong: API errors, broken streams, Ctrl-C."""

from __future__ import annotations

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from deepinfra_magic.errors import (
    AuthenticationError,
    MissingAPIKeyError,
    ModelNotFoundError,
    ServerError,
    StreamError,
)
from deepinfra_magic.magics import MAGIC_NAMES
from tests.fake_deepinfra import CANARY_KEY, FakeDeepInfra, default_reply, filler_reply, tokenize
from tests.kernel_helpers import (
    MARKDOWN,
    METADATA_KEY,
    PLAIN,
    InterruptingPublisher,
    Reply,
    all_text,
    chat_bodies,
    console_view,
)

DEFAULT = "meta-llama/Llama-3.3-70B-Instruct-Turbo"


def failing_cell(ip: InteractiveShell, source: str) -> tuple[BaseException | None, Reply, str]:
    """Run a cell in a rich frontend; the exception, the display messages and what IPython
    printed (the traceback, or the one-line error)."""
    with capture_output() as captured:
        result = ip.run_cell(source)
    return result.error_in_exec, Reply(captured.outputs), captured.stdout + captured.stderr


def failing_cell_output(ip: InteractiveShell, source: str) -> tuple[BaseException | None, str]:
    """Like ``failing_cell`` for a cell that shows nothing: the exception and the printout."""
    with capture_output() as captured:
        result = ip.run_cell(source)
    assert captured.outputs == []
    return result.error_in_exec, captured.stdout + captured.stderr


def error_lines(printed: str) -> list[str]:
    return [line for line in printed.splitlines() if line.strip()]


# --- API errors are one line ----------------------------------------------------------------------


def test_rejected_key_is_one_line_without_traceback_or_key(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    fake_server.configure(valid_keys={"sk-the-only-valid-key-123456"})
    error, reply, printed = failing_cell(ip, "%%deepinfra\nHello")
    assert isinstance(error, AuthenticationError)
    assert error_lines(printed) == [f"AuthenticationError: {error}"]
    assert "401" in printed and "DEEPINFRA_API_KEY" in printed and "%deepinfra_login" in printed
    assert "Traceback" not in printed
    assert CANARY_KEY not in printed + all_text(reply.outputs)
    # The placeholder does not stay "Asking…": it says there is no reply, once.
    assert "Asking" not in reply.final.data[PLAIN]
    assert len(chat_bodies(fake_server)) == 1


def test_unknown_model_suggests_close_matches(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    error, _, printed = failing_cell(ip, "%%deepinfra -m meta-llama/Llama-3.3-70B-Instruct\nHi")
    assert isinstance(error, ModelNotFoundError)
    (line,) = error_lines(printed)
    assert line.startswith("ModelNotFoundError: Model 'meta-llama/Llama-3.3-70B-Instruct' was not")
    assert f"Did you mean: {DEFAULT}" in line
    assert "%deepinfra_models" in line


def test_server_error_after_retries_is_one_line(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    # Retry-After: 0 keeps the retries instant; the magic tries 1 + max_retries (2) times.
    fake_server.add_fault(status=503, times=3, headers={"Retry-After": "0"}, body_style="html")
    error, _, printed = failing_cell(ip, "%%deepinfra\nHi")
    assert isinstance(error, ServerError)
    (line,) = error_lines(printed)
    assert line.startswith("ServerError: DeepInfra had a server error after 3 attempts (503")
    assert len(chat_bodies(fake_server)) == 3


def test_a_retried_server_error_that_recovers_shows_the_reply(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    fake_server.add_fault(status=503, times=2, headers={"Retry-After": "0"})
    error, reply, printed = failing_cell(ip, "%%deepinfra\nHi")
    assert error is None and printed == ""
    assert reply.final_text == default_reply(DEFAULT, "Hi")


def test_mid_stream_error_keeps_the_text_that_arrived(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    text = filler_reply(50)
    fake_server.add_fault(reply_tokens=50, error_event_after=10, token_delay=0.002)
    ip.run_cell("%%deepinfra\nfirst")  # takes the fault
    partial = "".join(tokenize(text)[:10])
    namespace = ip.magics_manager.registry["DeepInfraMagics"]
    assert isinstance(namespace.last_response.error, str)

    fake_server.add_fault(reply_tokens=50, error_event_after=10, token_delay=0.002)
    error, reply, printed = failing_cell(ip, "%%deepinfra -o r\nsecond")
    assert isinstance(error, StreamError)
    (line,) = error_lines(printed)
    assert line.startswith("StreamError: The model stopped with an error: Internal error")
    assert f"{len(partial)} characters received are kept" in line
    final = reply.final
    assert final.data[PLAIN].startswith(partial + "\n\n")
    assert "stopped early" in final.data[PLAIN] and "stopped early" in final.data[MARKDOWN]
    assert final.metadata[METADATA_KEY]["error"] == error.message
    assert reply.footer_text.startswith("⚠ stopped by an error")
    result = ip.user_ns["r"]
    assert result.text == partial and result.error == error.message and not result.complete
    # Failed turns are not part of the conversation.
    chat_bodies_now = chat_bodies(fake_server)
    assert [m["content"] for m in chat_bodies_now[-1]["messages"]] == ["second"]


def test_text_read_together_with_the_error_is_shown(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    # Three deltas and the error event in one network read: all three reach the screen.
    fake_server.add_fault(reply_tokens=20, error_event_after=3, one_write=True)
    error, reply, printed = failing_cell(ip, "%%deepinfra\nHi")
    assert isinstance(error, StreamError)
    partial = "".join(tokenize(filler_reply(20))[:3])
    assert f"the {len(partial)} characters received are kept" in printed
    assert reply.final.data[PLAIN].startswith(partial + "\n\n")
    assert reply.final.data[MARKDOWN].startswith(partial + "\n\n")


def test_connection_dropped_mid_reply_keeps_the_text(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    fake_server.add_fault(reply_tokens=40, disconnect_after=8, token_delay=0.002)
    error, reply, printed = failing_cell(ip, "%%deepinfra\nHi")
    assert isinstance(error, StreamError)
    assert len(error_lines(printed)) == 1
    partial = "".join(tokenize(filler_reply(40))[:8])
    assert reply.final.data[PLAIN].startswith(partial)


def test_missing_key_fails_before_anything_is_shown_or_sent(
    ip: InteractiveShell, fake_server: FakeDeepInfra, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DEEPINFRA_API_KEY")
    ip.run_line_magic("reload_ext", "deepinfra_magic")
    error, printed = failing_cell_output(ip, "%%deepinfra\nHi")
    assert isinstance(error, MissingAPIKeyError)
    (line,) = error_lines(printed)
    assert "DEEPINFRA_API_KEY" in line and "%deepinfra_login" in line
    assert fake_server.requests == []


def test_error_under_verbose_xmode_stays_one_line(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    ip.run_line_magic("xmode", "Verbose")
    try:
        fake_server.configure(valid_keys={"sk-the-only-valid-key-123456"})
        error, _, printed = failing_cell(ip, "%%deepinfra\nHi")
    finally:
        ip.run_line_magic("xmode", "Context")
    assert isinstance(error, AuthenticationError)
    assert len(error_lines(printed)) == 1
    assert CANARY_KEY not in printed


# --- Ctrl-C -------------------------------------------------------------------------------------


def interrupted_chat(
    ip: InteractiveShell, line: str, cell: str, interrupt_at: int = 3
) -> tuple[InterruptingPublisher, str]:
    publisher = InterruptingPublisher(interrupt_at, shell=ip)
    ip.display_pub = publisher  # the fixture puts the shell's own back
    with capture_output(display=False) as captured:
        ip.run_cell_magic("deepinfra", line, cell)
    return publisher, captured.stdout


def test_interrupt_keeps_the_partial_reply_and_propagates(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    fake_server.configure(reply_tokens=400, token_delay=0.005)
    publisher = InterruptingPublisher(3, shell=ip)
    ip.display_pub = publisher
    with pytest.raises(KeyboardInterrupt):
        ip.run_cell_magic("deepinfra", "-o r", "Count slowly")

    result = ip.user_ns["r"]
    magics = ip.magics_manager.registry["DeepInfraMagics"]
    assert magics.last_response is result
    assert result.interrupted and not result.complete
    assert result.text and filler_reply(400).startswith(result.text)
    assert len(result.text) < len(filler_reply(400))
    reply = Reply(publisher.rich_outputs)
    final = reply.final
    assert final.data[PLAIN] == (
        result.text + "\n\n⏹ Interrupted: the partial reply is kept (not added to the "
        "conversation)."
    )
    assert final.data[MARKDOWN].endswith(
        "\n\n*⏹ Interrupted: the partial reply is kept (not added to the conversation).*"
    )
    assert reply.shown == [final, reply.footer]  # the text in its live output, no empty one
    # A frontend that ignores updates gets the kept text with the footer, fresh.
    assert console_view(publisher.rich_outputs)[1:] == [f"{final.data[PLAIN]}\n{reply.footer_text}"]
    assert final.metadata[METADATA_KEY]["interrupted"] is True
    assert reply.footer_text.startswith("⏹ interrupted · ")
    # The connection was closed, so the server stopped generating.
    assert fake_server.wait_for_disconnect(timeout=10)
    # Not added to the conversation.
    ip.display_pub = InterruptingPublisher(0, shell=ip)
    fake_server.configure(reply_tokens=None, token_delay=0.0)
    ip.run_cell_magic("deepinfra", "", "Next")
    assert chat_bodies(fake_server)[-1]["messages"] == [{"role": "user", "content": "Next"}]


def test_interrupt_in_run_cell_shows_keyboardinterrupt(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    fake_server.configure(reply_tokens=300, token_delay=0.005)
    ip.display_pub = InterruptingPublisher(2, shell=ip)
    with capture_output(display=False) as captured:
        result = ip.run_cell("%%deepinfra\nCount")
    assert isinstance(result.error_in_exec, KeyboardInterrupt)
    assert "KeyboardInterrupt" in captured.stdout
    assert CANARY_KEY not in captured.stdout
    assert fake_server.wait_for_disconnect(timeout=10)


def test_raise_on_interrupt_off_keeps_the_reply_without_raising(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    ip.run_line_magic("config", "DeepInfraMagics.raise_on_interrupt = False")
    fake_server.configure(reply_tokens=300, token_delay=0.005)
    publisher = InterruptingPublisher(2, shell=ip)
    ip.display_pub = publisher
    ip.run_cell_magic("deepinfra", "-o r", "Count")
    assert ip.user_ns["r"].interrupted
    assert "Interrupted" in Reply(publisher.rich_outputs).final.data[MARKDOWN]
    assert fake_server.wait_for_disconnect(timeout=10)


def test_error_after_the_reasoning_but_before_the_answer_still_says_so(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    fake_server.add_fault(error_event_after=0)
    error, reply, printed = failing_cell(ip, "%%deepinfra -m deepseek-ai/DeepSeek-R1 -o r\nWhy?")
    assert isinstance(error, StreamError)
    assert len(error_lines(printed)) == 1
    texts = [o.data[PLAIN] for o in reply.outputs if PLAIN in o.data]
    assert any(t.startswith("💭 Reasoning:\nThe user sent") for t in texts)
    assert any("stopped early" in t for t in texts)
    assert reply.footer_text.startswith("⚠ stopped by an error")
    assert ip.user_ns["r"].reasoning and ip.user_ns["r"].text == ""


def test_error_before_anything_arrived_leaves_a_short_note_and_no_footer(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    fake_server.add_fault(status=400, message="temperature: bad value")
    error, reply, printed = failing_cell(ip, "%%deepinfra\nHi")
    assert error is not None and len(error_lines(printed)) == 1
    # The note takes the placeholder's place: nothing claims text was kept, nothing is empty.
    assert len(reply.outputs) == 2 and reply.outputs[-1].update
    assert reply.shown == [reply.final]
    assert reply.final.data == {
        MARKDOWN: "*⚠ No reply: the request failed (the error is below).*",
        PLAIN: "⚠ No reply: the request failed (the error is below).",
    }


def test_raise_on_error_false_prints_the_one_line_and_the_cell_ends_normally(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    # For notebooks that teach errors: Run All and papermill go on past them.
    ip.run_line_magic("config", "DeepInfraMagics.raise_on_error = False")
    for source, start in [
        ("%%deepinfra -m meta-llama/Llama-3.3-70B-Instruct-Trubo\nHi", "ModelNotFoundError: "),
        ("%%deepinfra -t hot\nHi", "UsageError: %%deepinfra: argument -t/--temperature"),
    ]:
        with capture_output() as captured:
            result = ip.run_cell(source)
        assert result.error_in_exec is None and result.success
        assert captured.stdout == "" and captured.stderr.startswith(start)
        assert len(captured.stderr.splitlines()) == 1


@pytest.mark.parametrize(
    ("kind", "name"), [(kind, name) for kind, names in MAGIC_NAMES.items() for name in names]
)
def test_every_magic_prints_its_error_when_raise_on_error_is_false(
    ip: InteractiveShell, fake_server: FakeDeepInfra, kind: str, name: str
) -> None:
    ip.run_line_magic("config", "DeepInfraMagics.raise_on_error = False")
    with capture_output() as captured:
        if kind == "cell":
            ip.run_cell_magic(name, "--no-such-option", "hi")
        else:
            ip.run_line_magic(name, "--no-such-option x")
    assert captured.stderr.startswith("UsageError: ") and len(captured.stderr.splitlines()) == 1
