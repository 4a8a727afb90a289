"""``%deepinfra_login`` and keeping the API key out of everything a user can see or save."""

from __future__ import annotations

import getpass

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from deepinfra_magic.errors import AuthenticationError, MissingAPIKeyError
from tests.fake_deepinfra import CANARY_KEY, RATE_LIMIT_PATH, FakeDeepInfra
from tests.kernel_helpers import MARKDOWN, all_text, chat_bodies, paths

WRONG_KEY = "sk-wrong-key-0000000000000000"


@pytest.fixture
def keyless(ip: InteractiveShell, monkeypatch: pytest.MonkeyPatch) -> InteractiveShell:
    """The shell of a user with no key in the environment."""
    monkeypatch.delenv("DEEPINFRA_API_KEY")
    ip.run_line_magic("reload_ext", "deepinfra_magic")
    return ip


def type_key(monkeypatch: pytest.MonkeyPatch, key: str) -> list[str]:
    """The user types ``key`` at the hidden prompt (the stdlib's getpass); returns prompts."""
    prompts: list[str] = []

    def fake_getpass(prompt: str = "Password: ", stream: object = None) -> str:
        prompts.append(prompt)
        return key

    monkeypatch.setattr(getpass, "getpass", fake_getpass)
    return prompts


def everything_shown(ip: InteractiveShell, captured: object) -> str:
    return "\n".join(
        [
            all_text(captured.outputs),  # type: ignore[attr-defined]
            captured.stdout,  # type: ignore[attr-defined]
            captured.stderr,  # type: ignore[attr-defined]
        ]
    )


def test_login_asks_hidden_checks_once_and_the_key_is_used(
    keyless: InteractiveShell, fake_server: FakeDeepInfra, monkeypatch: pytest.MonkeyPatch
) -> None:
    ip = keyless
    fake_server.configure(valid_keys={CANARY_KEY})
    prompts = type_key(monkeypatch, f"  {CANARY_KEY}\n")
    with capture_output() as captured:
        ip.run_line_magic("deepinfra_login", "")
        ip.run_cell_magic("deepinfra", "-o r", "hello")
        ip.run_line_magic("deepinfra_models", "")
        ip.run_line_magic("config", "DeepInfraMagics")
        ip.run_line_magic("deepinfra_history", "")
    assert prompts == ["DeepInfra API key or classroom token (input hidden): "]
    assert captured.stdout.startswith(
        "✓ Key accepted; kept for this kernel session only (never saved).\n"
    )
    requests = fake_server.requests
    assert paths(fake_server)[0] == f"GET {RATE_LIMIT_PATH}"
    assert [r.path for r in requests].count(RATE_LIMIT_PATH) == 1
    assert requests[0].headers["authorization"] == f"Bearer {CANARY_KEY}"
    chat = [r for r in requests if r.method == "POST"]
    assert [r.headers["authorization"] for r in chat] == [f"Bearer {CANARY_KEY}"]
    assert captured.outputs[-2].data[MARKDOWN].startswith("Key: entered with %deepinfra_login")
    # The key is nowhere a user can see it.
    shown = everything_shown(ip, captured)
    shown += repr(ip.user_ns["r"]) + repr(ip.magics_manager.registry["DeepInfraMagics"])
    shown += "\n".join(ip.history_manager.input_hist_raw) + repr(ip.user_ns.get("_", ""))
    assert CANARY_KEY not in shown


def test_a_rejected_key_is_refused_and_not_kept(
    keyless: InteractiveShell, fake_server: FakeDeepInfra, monkeypatch: pytest.MonkeyPatch
) -> None:
    ip = keyless
    fake_server.configure(valid_keys={CANARY_KEY})
    type_key(monkeypatch, WRONG_KEY)
    with capture_output() as captured:
        result = ip.run_cell("%deepinfra_login")
    assert isinstance(result.error_in_exec, AuthenticationError)
    (line,) = captured.stdout.strip().splitlines()
    assert line.startswith("AuthenticationError: DeepInfra rejected the API key (401")
    assert WRONG_KEY not in line and "✓" not in captured.stdout
    assert paths(fake_server) == [f"GET {RATE_LIMIT_PATH}"]
    with pytest.raises(MissingAPIKeyError):
        ip.run_cell_magic("deepinfra", "", "hi")
    assert chat_bodies(fake_server) == []


def test_a_key_that_cannot_be_checked_is_kept(
    keyless: InteractiveShell, fake_server: FakeDeepInfra, monkeypatch: pytest.MonkeyPatch
) -> None:
    ip = keyless
    fake_server.add_fault(path=RATE_LIMIT_PATH, status=418)
    type_key(monkeypatch, CANARY_KEY)
    with capture_output() as captured:
        ip.run_line_magic("deepinfra_login", "")
        ip.run_cell_magic("deepinfra", "", "hi")
    assert captured.stdout.startswith(
        "Key saved for this kernel session only (never written to disk); it is checked on "
        "first use."
    )
    assert fake_server.requests[-1].headers["authorization"] == f"Bearer {CANARY_KEY}"


def test_login_key_survives_a_settings_change_and_clear_forgets_it(
    keyless: InteractiveShell, fake_server: FakeDeepInfra, monkeypatch: pytest.MonkeyPatch
) -> None:
    ip = keyless
    type_key(monkeypatch, CANARY_KEY)
    with capture_output() as captured:
        ip.run_line_magic("deepinfra_login", "")
        ip.run_line_magic("config", "DeepInfraMagics.timeout = 30.0")
        ip.run_cell_magic("deepinfra", "", "still logged in")
        ip.run_line_magic("deepinfra_login", "--clear")
    assert fake_server.requests[-1].headers["authorization"] == f"Bearer {CANARY_KEY}"
    assert captured.stdout.splitlines()[-1] == "Forgot the key entered with %deepinfra_login."
    with pytest.raises(MissingAPIKeyError):
        ip.run_cell_magic("deepinfra", "", "forgotten")


def test_clear_says_when_the_environment_key_remains(
    ip: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.run_line_magic("deepinfra_login", "--clear")
    assert capsys.readouterr().out == (
        "Forgot the key entered with %deepinfra_login; DEEPINFRA_API_KEY from the environment "
        "is still used.\n"
    )


def test_an_empty_entry_changes_nothing(
    keyless: InteractiveShell, fake_server: FakeDeepInfra, monkeypatch: pytest.MonkeyPatch
) -> None:
    type_key(monkeypatch, "   ")
    with pytest.raises(UsageError, match="no key entered; nothing changed"):
        keyless.run_line_magic("deepinfra_login", "")
    assert fake_server.requests == []


@pytest.mark.parametrize(
    ("kind", "name", "line"),
    [
        ("line", "deepinfra_login", CANARY_KEY),
        ("line", "deepinfra_login", f"--key {CANARY_KEY}"),
        ("cell", "deepinfra", f"--api-key {CANARY_KEY}"),
        ("cell", "deepinfra", f"--key={CANARY_KEY}"),
        ("line", "deepinfra_image", f"--api-key {CANARY_KEY} a cat"),
        ("line", "deepinfra_models", f"--api-key {CANARY_KEY}"),
        ("line", "deepinfra_replay", f"x.json --api-key {CANARY_KEY}"),
    ],
)
def test_no_magic_takes_a_key_and_the_error_does_not_repeat_it(
    ip: InteractiveShell, fake_server: FakeDeepInfra, kind: str, name: str, line: str
) -> None:
    with pytest.raises(UsageError) as caught:
        if kind == "line":
            ip.run_line_magic(name, line)
        else:
            ip.run_cell_magic(name, line, "hi")
    assert CANARY_KEY not in str(caught.value)
    assert fake_server.requests == []


def test_a_key_set_after_load_ext_is_used_on_the_next_call(
    keyless: InteractiveShell, fake_server: FakeDeepInfra, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As `os.environ["DEEPINFRA_API_KEY"] = ...` or load_dotenv() in a cell would do it.
    ip = keyless
    with capture_output():
        failed = ip.run_cell("%%deepinfra\nhello")
    assert isinstance(failed.error_in_exec, MissingAPIKeyError)
    monkeypatch.setenv("DEEPINFRA_API_KEY", CANARY_KEY)
    with capture_output():
        ip.run_cell_magic("deepinfra", "", "hello")
    monkeypatch.setenv("DEEPINFRA_API_KEY", WRONG_KEY)  # replaced by a later cell
    with capture_output():
        ip.run_cell_magic("deepinfra", "", "again")
    sent = [r.headers["authorization"] for r in fake_server.requests if r.method == "POST"]
    assert sent == [f"Bearer {CANARY_KEY}", f"Bearer {WRONG_KEY}"]


def test_a_login_key_wins_over_a_key_set_later_in_the_environment(
    keyless: InteractiveShell, fake_server: FakeDeepInfra, monkeypatch: pytest.MonkeyPatch
) -> None:
    ip = keyless
    type_key(monkeypatch, CANARY_KEY)
    with capture_output():
        ip.run_line_magic("deepinfra_login", "")
    monkeypatch.setenv("DEEPINFRA_API_KEY", WRONG_KEY)
    with capture_output():
        ip.run_cell_magic("deepinfra", "", "hello")
    chat = [r for r in fake_server.requests if r.method == "POST"]
    assert [r.headers["authorization"] for r in chat] == [f"Bearer {CANARY_KEY}"]


@pytest.mark.parametrize("new_key", ["login", "environment"])
def test_a_refused_model_list_is_named_and_a_new_key_asks_again(
    keyless: InteractiveShell,
    fake_server: FakeDeepInfra,
    monkeypatch: pytest.MonkeyPatch,
    new_key: str,
) -> None:
    # Another server started with a key (vLLM's --api-key, LiteLLM's proxy) refuses its
    # model list to a notebook that has none yet.
    ip = keyless
    fake_server.configure(models_need_key=True, valid_keys={CANARY_KEY})
    monkeypatch.setenv("DEEPINFRA_FLAVOUR", "generic")
    for cell in ("%deepinfra_models", "%%deepinfra\nhello"):  # the second names no model
        with capture_output() as captured:
            refused = ip.run_cell(cell)
        assert isinstance(refused.error_in_exec, AuthenticationError)
        (line,) = captured.stdout.strip().splitlines()
        assert line.startswith("AuthenticationError: The server at ") and "No model" not in line
        assert "refused the key (403: Not authenticated)" in line
    assert paths(fake_server) == ["GET /v1/openai/models"]  # asked once, then remembered

    if new_key == "login":
        type_key(monkeypatch, CANARY_KEY)
        with capture_output():
            ip.run_line_magic("deepinfra_login", "")
    else:
        monkeypatch.setenv("DEEPINFRA_API_KEY", CANARY_KEY)
    with capture_output() as captured:
        ip.run_line_magic("deepinfra_models", "")
        ip.run_cell_magic("deepinfra", "-o r", "hello")
    assert paths(fake_server)[1] == "GET /v1/openai/models"  # the new key asked again
    listed = captured.outputs[0].data[MARKDOWN]
    assert ip.user_ns["r"].model in listed and not ip.user_ns["r"].interrupted
    chat = [r for r in fake_server.requests if r.method == "POST"]
    assert [r.headers["authorization"] for r in chat] == [f"Bearer {CANARY_KEY}"]
