"""``%%deepinfra`` in a real IPython shell against the fake DeepInfra server.

Rich frontends are IPython's capturing publisher (``capture_output``); the terminal case
is the shell's plain ``DisplayPublisher`` with stdout captured.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from deepinfra_magic.client import DeepInfraClient
from deepinfra_magic.magics.chat import ChatCall, reply_ending, stream_reply
from deepinfra_magic.types import ChatResult
from tests.fake_deepinfra import (
    CANARY_KEY,
    INFERENCE_PREFIX,
    FakeDeepInfra,
    default_reasoning,
    default_reply,
    filler_reply,
)
from tests.kernel_helpers import (
    MARKDOWN,
    METADATA_KEY,
    PLAIN,
    Reply,
    all_text,
    chat_bodies,
    console_view,
    display_id,
    images_in,
)

DEFAULT = "meta-llama/Llama-3.3-70B-Instruct-Turbo"
REASONER = "deepseek-ai/DeepSeek-R1"
DEFAULT_MODEL = DEFAULT
MakeClient = Callable[..., DeepInfraClient]


def chat(ip: InteractiveShell, cell: str, line: str = "") -> Reply:
    """Run ``%%deepinfra line`` with ``cell`` in a rich frontend; its display messages."""
    with capture_output() as captured:
        ip.run_cell_magic("deepinfra", line, cell)
    return Reply(captured.outputs)


def user_messages(body: dict) -> list[str]:
    return [m["content"] for m in body["messages"] if m["role"] == "user"]


# --- the display messages -------------------------------------------------------------------------


def test_reply_grows_in_place_then_ends_in_place_and_the_footer_follows(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    # An interval no stream can reach: exactly one live update, then the finished reply.
    ip.run_line_magic("config", "DeepInfraMagics.update_interval = 3600")
    fake_server.configure(token_delay=0.002)
    reply = chat(ip, "Hello there")
    expected = default_reply(DEFAULT, "Hello there")

    first = reply.placeholder
    assert first.update is False
    assert DEFAULT in first.data[PLAIN] and DEFAULT in first.data[MARKDOWN]
    ident = display_id(first)
    assert ident is not None
    # Placeholder, one live update of it, the finished reply in its place (no output is
    # left empty); then the footer, fresh, and brought to its own text.
    footer_id = display_id(reply.outputs[3])
    assert [(display_id(o), o.update) for o in reply.outputs] == [
        (ident, False),
        (ident, True),
        (ident, True),
        (footer_id, False),
        (footer_id, True),
    ]
    live, final, caught_up, footer = reply.outputs[1:]
    assert set(live.data) == {MARKDOWN}  # live updates skip the text/plain copy
    assert expected.startswith(live.data[MARKDOWN]) and live.data[MARKDOWN] != expected
    assert final.data == {MARKDOWN: expected, PLAIN: expected}
    assert caught_up.data[PLAIN] == f"{expected}\n{footer.data[PLAIN]}"
    info = final.metadata[METADATA_KEY]
    assert info["model"] == DEFAULT
    assert info["finish_reason"] == "stop"
    assert info["interrupted"] is False and info["error"] is None
    assert info["usage"]["completion_tokens"] > 0
    # What a notebook shows, and what jupyter console (which ignores updates) prints.
    assert [o.data for o in reply.shown] == [final.data, footer.data]
    assert console_view(reply.outputs) == [
        f"⏳ Asking {DEFAULT}…",
        f"{expected}\n{reply.footer_text}",
    ]


def test_updates_are_throttled_far_below_the_token_count(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    tokens = 200
    fake_server.configure(reply_tokens=tokens, token_delay=0.005)  # at least 1 s of stream
    started = time.monotonic()
    reply = chat(ip, "Talk for a while", "-o r")
    elapsed = time.monotonic() - started
    text = filler_reply(tokens)

    assert reply.final_text == text
    assert ip.user_ns["r"].usage.completion_tokens == tokens
    # The throttle's invariant (interval 0.1 s), whatever the machine's speed...
    assert len(reply.live) <= elapsed / 0.1 + 2
    # ...live (several updates over a second) yet far fewer messages than tokens.
    assert len(reply.live) >= 3
    assert len(reply.live) * 5 < tokens
    # Each live update shows a piece of the reply; together they only ever grow it.
    assert all(o.data[MARKDOWN] in text for o in reply.live)


def test_a_long_reply_freezes_finished_parts_and_each_update_resends_only_a_tail(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    ip.run_line_magic("config", "DeepInfraMagics.update_interval = 0.002")
    fake_server.configure(token_delay=0.0005)
    text = "".join(f"Line {i}: " + "word " * 8 + "\n" for i in range(200))  # about 10 KB
    fake_server.script_reply(text)
    reply = chat(ip, "Write at length")

    assert reply.final_text == text
    assert "".join(str(part.data[MARKDOWN]) for part in reply.answer) == text
    ids = list(dict.fromkeys(display_id(o) for o in reply.live))
    # Parts were frozen into outputs, and merged eight at a time so they stay few: at
    # most 200 parts (one per line) need three levels of seven outputs, and the tail.
    assert 2 < len(ids) <= 7 * 3 + 1
    # No live update resent the reply from its start once it was long.
    late = [o for o in reply.live if "Line 199" in o.data[MARKDOWN]]
    assert late and all(not o.data[MARKDOWN].startswith("Line 0:") for o in late)
    # Every live output ends holding a part: the notebook shows the reply once, then the
    # footer, and no output is left empty.
    assert reply.shown == [*reply.answer, reply.footer]
    assert len(reply.answer) == len(ids)


def test_footer_names_model_tokens_first_token_speed_and_cost(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    fake_server.configure(reply_tokens=40, token_delay=0.002)
    reply = chat(ip, "Hello", "-m Qwen/Qwen2.5-72B-Instruct -o r")
    result: ChatResult = ip.user_ns["r"]
    usage = result.usage
    assert usage is not None and usage.estimated_cost is not None
    footer = reply.footer_text
    assert footer.startswith("Qwen/Qwen2.5-72B-Instruct · ")
    assert f"{usage.prompt_tokens} in / 40 out tokens" in footer
    assert "first token " in footer and " s · " in footer
    assert "tok/s" in footer
    assert "$" in footer
    assert "\n" not in footer
    # The Markdown footer has the same words, with the model as code.
    assert "`Qwen/Qwen2.5-72B-Instruct`" in reply.footer.data[MARKDOWN]
    assert reply.footer.metadata[METADATA_KEY]["usage"]["completion_tokens"] == 40


def test_reasoning_is_shown_apart_quoted_and_labelled_and_kept_out_of_the_conversation(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    reply = chat(ip, "Why is the sky blue?", f"-m {REASONER} -o r")
    reasoning = default_reasoning("Why is the sky blue?")
    answer = default_reply(REASONER, "Why is the sky blue?")

    reasoning_final, final, footer = reply.shown  # the reasoning in its own output first
    assert footer is reply.footer
    assert final is reply.final
    assert reasoning_final.data[MARKDOWN] == "💭 **Reasoning**\n\n> " + reasoning
    assert reasoning_final.data[PLAIN] == "💭 Reasoning:\n" + reasoning
    assert reply.final.data[PLAIN] == answer
    assert reasoning not in reply.final.data[MARKDOWN]
    result = ip.user_ns["r"]
    assert (result.text, result.reasoning) == (answer, reasoning)

    chat(ip, "And at sunset?", f"-m {REASONER}")
    second = chat_bodies(fake_server)[-1]["messages"]
    assert second[1] == {"role": "assistant", "content": answer}
    assert all(reasoning not in m["content"] for m in second)


# --- the conversation -----------------------------------------------------------------------------


def test_each_cell_continues_the_conversation(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    chat(ip, "What is 2+2?")
    chat(ip, "And times 3?")
    first, second = chat_bodies(fake_server)
    assert first["messages"] == [{"role": "user", "content": "What is 2+2?"}]
    assert second["messages"] == [
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": default_reply(DEFAULT, "What is 2+2?")},
        {"role": "user", "content": "And times 3?"},
    ]


def test_max_history_sends_only_the_last_exchanges(
    ip: InteractiveShell, fake_server: FakeDeepInfra, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.run_line_magic("config", "DeepInfraMagics.max_history = 1")
    for prompt in ("one", "two", "three"):
        chat(ip, prompt)
    assert user_messages(chat_bodies(fake_server)[-1]) == ["two", "three"]

    with capture_output() as captured:
        ip.run_line_magic("deepinfra_history", "")
    shown = captured.outputs[0].data[PLAIN]
    assert shown.startswith("3 exchanges, the last one is sent with the next cell.")
    assert "You (not sent): one" in shown and "You (not sent): two" in shown
    assert "You: three" in shown
    assert f"{DEFAULT}: " + default_reply(DEFAULT, "three") in shown  # asterisks kept


def test_history_shows_prompts_verbatim_and_replies_as_markdown(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    prompt = "Fix this:\n    def f(x):\n        return 2*x  # **not bold**\ncosts $5"
    chat(ip, prompt)
    with capture_output() as captured:
        ip.run_line_magic("deepinfra_history", "")
    markdown = captured.outputs[0].data[MARKDOWN]
    # The prompt is a fenced block, so newlines, indentation and asterisks show as typed
    # (and its dollar, being code, is not escaped).
    assert f"**You**:\n\n```text\n{prompt}\n```" in markdown
    assert f"**{DEFAULT}**:\n\n" in markdown
    assert f"You: {prompt}" in captured.outputs[0].data[PLAIN]


def test_new_and_reset_start_over(
    ip: InteractiveShell, fake_server: FakeDeepInfra, capsys: pytest.CaptureFixture[str]
) -> None:
    chat(ip, "first")
    chat(ip, "fresh", "--new")
    assert user_messages(chat_bodies(fake_server)[-1]) == ["fresh"]
    chat(ip, "continued")
    assert user_messages(chat_bodies(fake_server)[-1]) == ["fresh", "continued"]

    ip.run_line_magic("deepinfra_reset", "")
    assert capsys.readouterr().out == "Conversation cleared (2 exchanges forgotten).\n"
    ip.run_line_magic("deepinfra_history", "")
    assert "No conversation yet" in capsys.readouterr().out
    chat(ip, "after reset")
    assert len(chat_bodies(fake_server)[-1]["messages"]) == 1


def test_system_prompt_setting_and_per_cell_system_option(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    ip.run_line_magic("config", "DeepInfraMagics.system_prompt = 'Be terse.'")
    chat(ip, "hi")
    chat(ip, "hi again", "-s 'Talk like a pirate'")
    chat(ip, "and again", "--system=Be\\ kind.")
    systems = [body["messages"][0] for body in chat_bodies(fake_server)]
    assert systems == [
        {"role": "system", "content": "Be terse."},
        {"role": "system", "content": "Talk like a pirate"},
        {"role": "system", "content": "Be kind."},
    ]


# --- options reaching the request -----------------------------------------------------------------


def test_sampling_options_and_params_reach_the_request(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    line = (
        "-t 0.2 --max-tokens 3 -p top_p=0.9 -p 'stop=[\"\\n\\n\"]' -p user=alice "
        '-p seed=3 -p \'response_format={"type": "text"}\' -o r'
    )
    reply = chat(ip, "Tell me a long story", line)
    body = chat_bodies(fake_server)[0]
    assert body["temperature"] == 0.2
    assert body["max_tokens"] == 3
    assert body["top_p"] == 0.9
    assert body["stop"] == ["\n\n"]
    assert body["user"] == "alice"
    assert body["seed"] == 3
    assert body["response_format"] == {"type": "text"}
    assert body["stream"] is True
    assert ip.user_ns["r"].finish_reason == "length"
    assert "cut off at max_tokens" in reply.footer_text


def test_settings_are_the_defaults_for_every_cell(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    ip.run_line_magic("config", "DeepInfraMagics.temperature = 1.5")
    ip.run_line_magic("config", "DeepInfraMagics.max_tokens = 64")
    ip.run_line_magic("config", "DeepInfraMagics.default_model = 'google/gemma-3-27b-it'")
    chat(ip, "hi")
    body = chat_bodies(fake_server)[0]
    assert (body["temperature"], body["max_tokens"], body["model"]) == (
        1.5,
        64,
        "google/gemma-3-27b-it",
    )


def test_no_stream_asks_for_one_answer_and_shows_it(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    reply = chat(ip, "Hi", "--no-stream -o r")
    body = chat_bodies(fake_server)[0]
    assert body["stream"] is False and "stream_options" not in body
    expected = default_reply(DEFAULT, "Hi")
    assert reply.final.data == {MARKDOWN: expected, PLAIN: expected}
    assert ip.user_ns["r"].text == expected
    assert "in / " in reply.footer_text


def test_format_text_sends_plain_text_only(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    fake_server.configure(token_delay=0.002)
    reply = chat(ip, "Hi", "-f text")
    assert reply.live and all(set(o.data) == {PLAIN} for o in reply.live)
    assert reply.final.data == {PLAIN: default_reply(DEFAULT, "Hi")}


def test_format_code_puts_the_first_code_block_into_the_next_cell(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    fake_server.script_reply(
        "Try this:\n\n```python\nx = 1\nprint(x)\n```\n\nor\n\n```\ny = 2\n```\n"
    )
    reply = chat(ip, "Write code", "-f code")
    assert ip.rl_next_input == "x = 1\nprint(x)"
    assert "first code block was put into the next cell" in reply.final.data[PLAIN]

    ip.rl_next_input = None
    fake_server.script_reply("No code here, just prose.")
    reply = chat(ip, "Write prose", "-f code")
    assert ip.rl_next_input is None
    assert "No code block in the reply" in reply.final.data[PLAIN]


def test_out_variable_holds_the_result(ip: InteractiveShell, fake_server: FakeDeepInfra) -> None:
    returned = ip.run_cell_magic("deepinfra", "-m deepseek-ai/DeepSeek-R1 --out answer", "Hi")
    assert returned is None  # nothing lands in Out[n]
    result = ip.user_ns["answer"]
    assert isinstance(result, ChatResult)
    assert result.text == default_reply(REASONER, "Hi")
    assert result.reasoning == default_reasoning("Hi")
    assert result.model == REASONER
    assert result.usage is not None and result.usage.completion_tokens > 0
    assert result.finish_reason == "stop"
    assert result.interrupted is False and result.error is None
    assert ip.magics_manager.registry["DeepInfraMagics"].last_response is result


# --- usage errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "cell", "message"),
    [
        ("--bogus", "hi", r"%%deepinfra: unrecognized arguments: --bogus\. Usage: %%deepinfra \["),
        ("-t 3", "hi", r"-t/--temperature: expected a number from 0 to 2, got '3'"),
        ("-t warm", "hi", r"-t/--temperature: expected a number from 0 to 2, got 'warm'"),
        ("--max-tokens 0", "hi", r"--max-tokens: expected a whole number ≥ 1, got '0'"),
        (
            "-f html",
            "hi",
            r"-f/--format: invalid choice: 'html' \(choose from 'markdown', 'text', 'code'\)",
        ),
        ("-p top_p", "hi", r"-p/--param expects KEY=VALUE \(e\.g\. -p top_p=0\.9\), got 'top_p'"),
        ("-p =1", "hi", r"-p/--param expects KEY=VALUE"),
        # Fields the magic sets itself name their own option (not a TypeError traceback).
        ("-p temperature=0.2", "hi", r"-p/--param cannot set temperature: use -t/--temperature"),
        ("-p max_tokens=9", "hi", r"-p/--param cannot set max_tokens: use --max-tokens"),
        ("-p model=x", "hi", r"-p/--param cannot set model: use -m/--model"),
        ("-p 'messages=[]'", "hi", r"-p/--param cannot set messages: the cell body is the prompt"),
        ("-p stream=false", "hi", r"-p/--param cannot set stream: use --no-stream"),
        ("-o 1x", "hi", r"-o/--out needs a Python variable name, got '1x'"),
        ("-o class", "hi", r"-o/--out needs a Python variable name, got 'class'"),
        ("-o", "hi", r"-o/--out: expected one argument"),
        ("-s 'unclosed", "hi", r"cannot read the options .*check the quotes"),
        ("", "   \n\n  ", r"the cell is empty; write the prompt below the magic line"),
        ("--vars", "Hi {nobody}", r"--vars: \{nobody\} is not defined in the notebook"),
        ("--vars", "Hi {0}", r"--vars: \{0\} is not a variable name"),
    ],
)
def test_usage_errors_name_the_option_and_what_is_allowed(
    ip: InteractiveShell, fake_server: FakeDeepInfra, line: str, cell: str, message: str
) -> None:
    with pytest.raises(UsageError, match=message) as caught:
        ip.run_cell_magic("deepinfra", line, cell)
    assert "\n" not in str(caught.value)
    assert fake_server.requests == []


def test_a_usage_error_prints_one_line_without_traceback(
    ip: InteractiveShell, fake_server: FakeDeepInfra, capsys: pytest.CaptureFixture[str]
) -> None:
    result = ip.run_cell("%%deepinfra -t 9\nhi")
    assert isinstance(result.error_in_exec, UsageError)
    captured = capsys.readouterr()
    printed = (captured.out + captured.err).strip()
    assert printed.startswith("UsageError: %%deepinfra: argument -t/--temperature")
    assert "Traceback" not in printed and len(printed.splitlines()) == 1


# --- the prompt is literal ------------------------------------------------------------------------


def test_no_variable_expansion_in_the_line_or_the_cell(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    ip.user_ns.update(x="SECRET_X", y="SECRET_Y")
    result = ip.run_cell('%%deepinfra -s "{x} $y"\nTell me about {x} and $y and $$z')
    assert result.success
    body = chat_bodies(fake_server)[0]
    assert body["messages"] == [
        {"role": "system", "content": "{x} $y"},
        {"role": "user", "content": "Tell me about {x} and $y and $$z"},
    ]
    assert "SECRET" not in repr(body)


def test_vars_fills_names_from_the_notebook(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    ip.user_ns.update(name="Ada", data={"n": 3})
    chat(ip, "Hello {name}, n={data[n]}, {{literal}} and $name", "--vars")
    assert user_messages(chat_bodies(fake_server)[0]) == ["Hello Ada, n=3, {literal} and $name"]


# --- an image model -------------------------------------------------------------------------------


def test_an_image_model_turns_the_cell_into_an_image(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    with capture_output() as captured:
        ip.run_cell_magic("deepinfra", "-m black-forest-labs/FLUX-1-schnell", "a red fox")
    images = images_in(captured.outputs)
    assert len(images) == 1
    assert "a red fox" in images[0].data[PLAIN]
    assert [r.path for r in fake_server.requests if r.method == "POST"] == [
        INFERENCE_PREFIX + "black-forest-labs/FLUX-1-schnell"
    ]
    assert chat_bodies(fake_server) == []


# --- terminal IPython -----------------------------------------------------------------------------


def test_terminal_prints_the_reply_once(
    ip: InteractiveShell, fake_server: FakeDeepInfra, capsys: pytest.CaptureFixture[str]
) -> None:
    text = filler_reply(120)
    fake_server.configure(reply_tokens=120, token_delay=0.002)
    ip.run_cell_magic("deepinfra", "", "Talk")
    out = capsys.readouterr().out
    assert out.count(text) == 1
    assert out.count("alpha bravo") == text.count("alpha bravo")  # no redraws of any part
    assert out.startswith(f"⏳ {DEFAULT}…\n")
    footer = out.rstrip("\n").splitlines()[-1]
    assert footer.startswith(f"{DEFAULT} · ") and "120 out tokens" in footer
    assert "Markdown object" not in out and "`" not in footer
    assert len(out) < len(text) + 300


def test_terminal_reasoning_is_printed_under_its_own_header(
    ip: InteractiveShell, fake_server: FakeDeepInfra, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.run_cell_magic("deepinfra", f"-m {REASONER}", "Why?")
    out = capsys.readouterr().out
    reasoning, answer = default_reasoning("Why?"), default_reply(REASONER, "Why?")
    assert f"💭 Reasoning:\n{reasoning}\n\n{answer}" in out
    assert out.count(answer) == 1


def test_display_mode_text_forces_plain_output_in_a_rich_frontend(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    ip.run_line_magic("config", "DeepInfraMagics.display_mode = 'text'")
    with capture_output() as captured:
        ip.run_cell_magic("deepinfra", "", "Hi")
    assert captured.outputs == []
    assert captured.stdout.count(default_reply(DEFAULT, "Hi")) == 1


def test_no_key_is_echoed_anywhere_in_a_chat(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    with capture_output() as captured:
        ip.run_cell_magic("deepinfra", "-o r", "What is my API key?")
    assert fake_server.requests[-1].headers["authorization"] == f"Bearer {CANARY_KEY}"
    everything = all_text(captured.outputs) + captured.stdout + captured.stderr
    everything += repr(ip.user_ns["r"]) + repr(ip.magics_manager.registry["DeepInfraMagics"])
    assert CANARY_KEY not in everything


def test_currency_is_escaped_in_the_markdown_only_and_math_is_kept(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    text = "It costs $0.03 per million and $0.05, and grows as $x^2$:\n\n$$\\int f$$"
    fake_server.script_reply(text)
    final = chat(ip, "price?").final
    dollar = "[]()\\$[]()"  # reads "$" in every renderer, pairs with no other dollar
    assert final.data[MARKDOWN] == (
        f"It costs {dollar}0.03 per million and {dollar}0.05, and grows as $x^2$:\n\n$$\\int f$$"
    )
    assert final.data[PLAIN] == text  # the text/plain fallback reads as written


# --- run_chat's two steps without a shell: the stream (Ctrl-C kept) and the ending ---


class ChatView:
    """A reply view that keeps what it is given; Ctrl-C on the n-th piece of answer."""

    def __init__(self, interrupt_on: int | None = None) -> None:
        self.answer: list[str] = []
        self.interrupt_on = interrupt_on

    def start(self) -> None:
        pass

    def add_reasoning(self, text: str) -> None:
        pass

    def add_answer(self, text: str) -> None:
        self.answer.append(text)
        if len(self.answer) == self.interrupt_on:
            raise KeyboardInterrupt


def test_ctrl_c_mid_reply_keeps_the_text_shown_so_far_and_says_so(
    make_sync_client: MakeClient, fake_server: FakeDeepInfra
) -> None:
    view = ChatView(interrupt_on=2)
    call = ChatCall([{"role": "user", "content": "Hello"}], DEFAULT_MODEL, 0.7, 64)
    outcome = stream_reply(make_sync_client(), view, call)  # type: ignore[arg-type]
    result = outcome.value
    assert outcome.interrupted and result.interrupted and not result.complete
    assert result.text == "".join(view.answer) != ""
    note, footer, code = reply_ending(result, "code", timing=True)
    assert "Llama-3.3-70B" in footer
    assert note.startswith("*⏹ Interrupted: the partial reply is kept") and code is None


def test_code_format_hands_back_the_first_code_block() -> None:
    result = ChatResult("Try:\n\n```python\nprint(1)\n```\n\nor not.", DEFAULT_MODEL)
    assert reply_ending(result, "code", timing=True)[2] == "print(1)"
    assert reply_ending(result, "markdown", timing=True)[2] is None
