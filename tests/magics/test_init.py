"""Loading and unloading the extension: registration, cleanup, profile config, light import."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

import deepinfra_magic
from deepinfra_magic.magics import MAGIC_NAMES, DeepInfraMagics
from tests.fake_deepinfra import CANARY_KEY, FakeDeepInfra, filler_reply
from tests.kernel_helpers import chat_bodies, magic_process_env

VENV_BIN = Path(sys.executable).parent


def registered(ip: InteractiveShell) -> dict[str, list[str]]:
    """Our magic names present in the shell, by kind."""
    names = {kind: [n for n in MAGIC_NAMES[kind] if n in ip.magics_manager.magics[kind]]
             for kind in MAGIC_NAMES}  # fmt: skip
    return names


def instances(ip: InteractiveShell) -> list[DeepInfraMagics]:
    return [c for c in ip.configurables if isinstance(c, DeepInfraMagics)]


def test_loading_registers_every_magic_and_asks_nothing(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    assert registered(ip) == {kind: list(names) for kind, names in MAGIC_NAMES.items()}
    assert len(instances(ip)) == 1
    assert fake_server.requests == []


def test_unload_removes_every_magic_and_closes_the_client(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    magics = ip.magics_manager.registry["DeepInfraMagics"]
    with capture_output():
        ip.run_cell_magic("deepinfra", "", "hi")
    client = magics.client()
    ip.run_line_magic("unload_ext", "deepinfra_magic")
    assert registered(ip) == {"cell": [], "line": []}
    assert "DeepInfraMagics" not in ip.magics_manager.registry
    assert instances(ip) == []
    with pytest.raises(RuntimeError, match="client has been closed"):
        client.chat([{"role": "user", "content": "x"}], stream=False)
    with pytest.raises(UsageError, match="Cell magic `%%deepinfra` not found"):
        ip.run_cell_magic("deepinfra", "", "hi")
    assert len(chat_bodies(fake_server)) == 1


def test_reload_leaves_one_registration(ip: InteractiveShell, fake_server: FakeDeepInfra) -> None:
    ip.run_line_magic("reload_ext", "deepinfra_magic")
    ip.run_line_magic("reload_ext", "deepinfra_magic")
    deepinfra_magic.load_ipython_extension(ip)  # a second load without the manager
    (only,) = instances(ip)
    assert ip.magics_manager.registry["DeepInfraMagics"] is only
    for kind, names in MAGIC_NAMES.items():
        for name in names:
            assert ip.magics_manager.magics[kind][name].__self__ is only
    with capture_output():
        ip.run_cell_magic("deepinfra", "", "once")
    assert len(chat_bodies(fake_server)) == 1


def test_a_reload_starts_a_fresh_conversation(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    with capture_output():
        ip.run_cell_magic("deepinfra", "", "first")
        ip.run_line_magic("reload_ext", "deepinfra_magic")
        ip.run_cell_magic("deepinfra", "", "second")
    assert chat_bodies(fake_server)[-1]["messages"] == [{"role": "user", "content": "second"}]


def test_a_reload_keeps_the_configured_system_prompt_and_history(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    # %config merges into the shell's config, so the reloaded instance is built with it
    # (as one configured in a profile is): the conversation follows it from the start.
    ip.run_line_magic("config", "DeepInfraMagics.system_prompt = 'Be terse.'")
    ip.run_line_magic("config", "DeepInfraMagics.max_history = 1")
    ip.run_line_magic("reload_ext", "deepinfra_magic")
    with capture_output():
        for prompt in ("one", "two", "three"):
            ip.run_cell_magic("deepinfra", "", prompt)
    messages = chat_bodies(fake_server)[-1]["messages"]
    assert messages[0] == {"role": "system", "content": "Be terse."}
    assert [m["content"] for m in messages if m["role"] == "user"] == ["two", "three"]


def test_load_ext_imports_no_httpx_and_makes_no_request(
    fake_server: FakeDeepInfra, tmp_path: Path
) -> None:
    code = textwrap.dedent(
        """
        import sys
        from IPython.core.interactiveshell import InteractiveShell
        ip = InteractiveShell.instance()
        ip.run_line_magic("load_ext", "deepinfra_magic")
        print("after load:", "httpx" in sys.modules)
        heavy = ("numpy", "PIL", "matplotlib", "pandas")
        print("heavy after load:", [name for name in heavy if name in sys.modules])
        ip.run_line_magic("config", "DeepInfraMagics.default_model = 'google/gemma-3-27b-it'")
        ip.run_line_magic("deepinfra_history", "")
        ip.run_line_magic("deepinfra_reset", "")
        print("after settings:", "httpx" in sys.modules)
        ip.run_cell_magic("deepinfra", "", "hi")
        print("after a chat:", "httpx" in sys.modules)
        """
    )
    env = magic_process_env(fake_server.api_url, tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "after load: False" in lines and "after settings: False" in lines
    assert "heavy after load: []" in lines  # --see imports them only when handed such a value
    assert "after a chat: True" in lines  # the first request is where httpx comes in
    assert [r.path for r in fake_server.requests][-1] == "/v1/openai/chat/completions"
    assert chat_bodies(fake_server)[0]["model"] == "google/gemma-3-27b-it"


# What %load_ext must not bring in: each family's machinery loads on its first use, and
# the sans-I/O core, the result types, the usage ledger and the conversation with it.
MACHINERY = (
    "httpx",
    "deepinfra_magic._protocol",
    "deepinfra_magic._status",
    "deepinfra_magic.types",
    "deepinfra_magic.usage",
    "deepinfra_magic.conversation",
    "deepinfra_magic.client",
    "deepinfra_magic._http",
    "deepinfra_magic.display",
    "deepinfra_magic.map_display",
    "deepinfra_magic.maps",
    "deepinfra_magic.mapping",
    "deepinfra_magic.batches",
    "deepinfra_magic.attachments",
    "deepinfra_magic.catalog",
)


def test_load_ext_registers_declarations_only(fake_server: FakeDeepInfra, tmp_path: Path) -> None:
    code = textwrap.dedent(
        f"""
        import sys
        from IPython.core.interactiveshell import InteractiveShell
        ip = InteractiveShell.instance()
        ip.run_line_magic("load_ext", "deepinfra_magic")
        machinery = {MACHINERY!r}
        print("after load:", sorted(
            name for name in sys.modules if name.startswith(machinery)
        ))
        print("registered:", "deepinfra_map" in ip.magics_manager.magics["cell"])
        print("usage shown:", "usage: %%deepinfra_map" in ip.object_inspect_text("%%deepinfra_map"))
        """
    )
    env = magic_process_env(fake_server.api_url, tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "after load: []" in lines
    assert "registered: True" in lines and "usage shown: True" in lines
    assert fake_server.requests == []


def test_profile_config_loads_the_extension_in_terminal_ipython(
    fake_server: FakeDeepInfra, tmp_path: Path
) -> None:
    profile = tmp_path / "profile"
    profile.mkdir()
    (profile / "ipython_config.py").write_text(
        'c.InteractiveShellApp.extensions = ["deepinfra_magic"]\n'
        'c.DeepInfraMagics.default_model = "Qwen/Qwen2.5-72B-Instruct"\n'
        "c.DeepInfraMagics.update_interval = 0.01\n"
    )
    fake_server.configure(reply_tokens=150, token_delay=0.002)
    env = magic_process_env(fake_server.api_url, tmp_path)
    done = subprocess.run(
        [
            str(VENV_BIN / "ipython"),
            f"--profile-dir={profile}",
            "--no-banner",
            "--colors=nocolor",
            "-c",
            "%%deepinfra\nHello from the terminal",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    text = filler_reply(150)
    assert out.count(text) == 1  # printed once: no redraws, no repeated updates
    assert out.startswith("⏳ Qwen/Qwen2.5-72B-Instruct…\n")
    assert out.rstrip().splitlines()[-1].startswith("Qwen/Qwen2.5-72B-Instruct · ")
    assert "Markdown object" not in out and "Traceback" not in done.stderr
    assert len(out) < len(text) + 300
    assert CANARY_KEY not in out + done.stderr
    assert chat_bodies(fake_server)[0]["model"] == "Qwen/Qwen2.5-72B-Instruct"


@pytest.mark.parametrize(
    ("magic", "options"),
    [
        ("%%deepinfra", ["--model", "--system", "--see", "--no-stream", "--vars", "--format"]),
        ("%deepinfra_image", ["--width", "--num-images", "--negative", "--save"]),
        ("%%deepinfra_map", ["DATA", "--column", "--batch-api", "--yes"]),
        ("%deepinfra_replay", ["--speed", "--if-no-key"]),
    ],
)
def test_help_shows_the_usage_generated_from_the_parser(
    ip: InteractiveShell, magic: str, options: list[str]
) -> None:
    text = ip.object_inspect_text(magic)
    assert f"usage: {magic}" in text
    assert all(option in text for option in options)
