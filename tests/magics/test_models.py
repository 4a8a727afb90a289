"""The model catalog shared by every magic, and ``%deepinfra_models``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from deepinfra_magic.catalog import CATALOG_CACHE
from tests.fake_deepinfra import CANARY_KEY, FEATURED_PATH, FakeDeepInfra
from tests.kernel_helpers import MARKDOWN, PLAIN, Reply

TEXT_MODELS = [
    "meta-llama/Llama-3.3-70B-Instruct-Turbo",
    "meta-llama/Meta-Llama-3.1-8B-Instruct",
    "Qwen/Qwen2.5-72B-Instruct",
    "mistralai/Mistral-Small-24B-Instruct-2501",
    "deepseek-ai/DeepSeek-R1",
    "meta-llama/Llama-3.2-11B-Vision-Instruct",
    "google/gemma-3-27b-it",
    "Austism/chronos-hermes-13b-v2",
    "Gryphe/MythoMax-L2-13b",
]
LLAMAS = [*TEXT_MODELS[:2], "meta-llama/Llama-3.2-11B-Vision-Instruct"]
IMAGE_MODELS = [
    "black-forest-labs/FLUX-1-schnell",
    "black-forest-labs/FLUX-1-dev",
    "stabilityai/sd3.5",
    "stability-ai/sdxl",
]
STATUS = re.compile(
    r"^Key: (?P<key>.+) · list from (?P<source>[a-z ]+) \(\d{4}-\d\d-\d\d \d\d:\d\d\)"
    r" · DeepInfra at http://127\.0\.0\.1:\d+$"
)


def models(ip: InteractiveShell, line: str = "") -> tuple[str, str, str]:
    """``%deepinfra_models line`` in a rich frontend: (Markdown, text/plain, stderr)."""
    with capture_output() as captured:
        ip.run_line_magic("deepinfra_models", line)
    (output,) = captured.outputs
    return output.data[MARKDOWN], output.data[PLAIN], captured.stderr


def listed(markdown: str) -> list[str]:
    return re.findall(r"^\| `([^`]+)`", markdown, re.MULTILINE)


def new_session(ip: InteractiveShell) -> None:
    """What a restarted kernel has: no catalog in memory, the extension loaded anew."""
    CATALOG_CACHE.clear()
    ip.run_line_magic("reload_ext", "deepinfra_magic")


# --- the table ------------------------------------------------------------------------------------


def test_table_in_markdown_and_text_with_key_source_and_list_origin(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    markdown, plain, _ = models(ip)
    status = STATUS.match(markdown.splitlines()[0])
    assert status is not None
    assert status["key"] == "DEEPINFRA_API_KEY is set" and status["source"] == "network"
    assert plain.splitlines()[0] == markdown.splitlines()[0]
    assert "| Model | Type | Context | Price |" in markdown
    assert listed(markdown) == TEXT_MODELS + IMAGE_MODELS  # no embeddings or speech models
    llama = "| `meta-llama/Llama-3.3-70B-Instruct-Turbo` | text | 131k |"
    # Dollar signs are escaped in Markdown as the entities of "\\$" (which MathJax shows as
    # "$"), or Jupyter reads "$0.23 … $0.40" as LaTeX; tests/browser checks what renders.
    dollar = "[]()\\$[]()"
    assert f"{llama} {dollar}0.23 in / {dollar}0.40 out per 1M tok |" in markdown
    assert "| `google/gemma-3-27b-it` | text | — | — |" in markdown
    flux = "| `black-forest-labs/FLUX-1-schnell` | image | — |"
    assert f"{flux} {dollar}0.0005 / image |" in markdown
    rows = plain.splitlines()[2:]
    assert rows[0].split() == ["MODEL", "TYPE", "CONTEXT", "PRICE"]
    assert len(rows) == 1 + len(TEXT_MODELS + IMAGE_MODELS)
    assert rows[1].split(maxsplit=3) == [
        "meta-llama/Llama-3.3-70B-Instruct-Turbo",
        "text",
        "131k",
        "$0.23 in / $0.40 out per 1M tok",
    ]
    assert "`" not in plain and "|" not in plain
    assert CANARY_KEY not in markdown + plain
    assert fake_server.count(FEATURED_PATH) == 1


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("--text", TEXT_MODELS),
        ("--images", IMAGE_MODELS),
        ("llama", LLAMAS),
        ("LLAMA", LLAMAS),
        ("*flux*", IMAGE_MODELS[:2]),
        ("--images *sd*", ["stabilityai/sd3.5", "stability-ai/sdxl"]),
        ("--text qwen", ["Qwen/Qwen2.5-72B-Instruct"]),
        ("--images llama", []),
        ("meta-llama/*", LLAMAS),
    ],
)
def test_filters(
    ip: InteractiveShell, fake_server: FakeDeepInfra, line: str, expected: list[str]
) -> None:
    markdown, plain, _ = models(ip, line)
    assert listed(markdown) == expected
    if not expected:
        assert "No models matching" in plain and "can still be used by name" in plain


def test_text_and_images_together_is_a_usage_error(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    with pytest.raises(UsageError, match=r"argument --images: not allowed with argument --text"):
        ip.run_line_magic("deepinfra_models", "--text --images")


def test_refresh_fetches_again(ip: InteractiveShell, fake_server: FakeDeepInfra) -> None:
    models(ip)
    models(ip)
    assert fake_server.count(FEATURED_PATH) == 1
    markdown, _, _ = models(ip, "--refresh")
    assert fake_server.count(FEATURED_PATH) == 2
    assert "list from network" in markdown.splitlines()[0]


def test_pick_falls_back_to_text_without_a_widget_frontend(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    with capture_output() as captured:
        ip.run_line_magic("deepinfra_models", "--pick --images")
    assert len(captured.outputs) == 1  # the table, no widget
    assert "No widget frontend here" in captured.stdout
    assert "%config DeepInfraMagics.default_image_model = '<name>'" in captured.stdout


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({}, "none (DEEPINFRA_API_KEY / DEEPINFRA_API_TOKEN unset; run %deepinfra_login)"),
        ({"DEEPINFRA_API_TOKEN": CANARY_KEY}, "DEEPINFRA_API_TOKEN is set"),
    ],
)
def test_key_source_is_named_never_shown_and_the_list_needs_no_key(
    ip: InteractiveShell,
    fake_server: FakeDeepInfra,
    monkeypatch: pytest.MonkeyPatch,
    variables: dict[str, str],
    expected: str,
) -> None:
    monkeypatch.delenv("DEEPINFRA_API_KEY")
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    ip.run_line_magic("reload_ext", "deepinfra_magic")
    markdown, plain, _ = models(ip)
    status = STATUS.match(markdown.splitlines()[0])
    assert status is not None and status["key"] == expected
    assert CANARY_KEY not in markdown + plain


# --- one catalog for every magic ------------------------------------------------------------------


def test_every_magic_shares_one_catalog_request(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    with capture_output():
        for index in range(4):
            ip.run_cell_magic("deepinfra", "", f"question {index}")
        for index in range(3):
            ip.run_line_magic("deepinfra_image", f"picture {index}")
        for line in ("", "--text", "--images flux"):
            ip.run_line_magic("deepinfra_models", line)
    assert fake_server.count(FEATURED_PATH) == 1
    assert fake_server.count("/v1/*") == 7


def test_a_new_session_with_a_warm_disk_cache_asks_nothing(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    models(ip)
    assert fake_server.count(FEATURED_PATH) == 1
    new_session(ip)
    markdown, _, stderr = models(ip)
    with capture_output():
        ip.run_cell_magic("deepinfra", "", "hi")
    assert fake_server.count(FEATURED_PATH) == 1
    assert "list from disk cache" in markdown.splitlines()[0] and stderr == ""
    assert listed(markdown) == TEXT_MODELS + IMAGE_MODELS


def test_network_down_uses_the_stale_copy_and_warns_once(
    ip: InteractiveShell, magic_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeDeepInfra() as elsewhere:  # a server that will go away
        monkeypatch.setenv("DEEPINFRA_BASE_URL", elsewhere.api_url)
        ip.run_line_magic("reload_ext", "deepinfra_magic")
        models(ip)
        assert elsewhere.count(FEATURED_PATH) == 1
    new_session(ip)  # the server is gone now, and the disk copy is stale
    ip.run_line_magic("config", "DeepInfraMagics.catalog_ttl = 0.001")
    ip.run_line_magic("config", "DeepInfraMagics.max_retries = 0")
    markdown, _, stderr = models(ip)
    assert "list from stale cache" in markdown.splitlines()[0]
    assert listed(markdown) == TEXT_MODELS + IMAGE_MODELS
    (warning,) = stderr.splitlines()
    assert warning.startswith("⚠ Could not refresh the model list (Could not connect to ")
    assert "using the copy cached " in warning
    _, _, again = models(ip)
    assert again == ""  # warned once


def test_no_catalog_at_all_does_not_stop_a_chat(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    fake_server.add_fault(path=FEATURED_PATH, status=404, times=None)
    with capture_output() as captured:
        result = ip.run_cell("%%deepinfra\nhi")
    assert result.success
    footer = Reply(captured.outputs).footer
    assert footer.data[PLAIN].startswith("meta-llama/Llama-3.3-70B-Instruct-Turbo")


def test_config_output_never_holds_the_key(
    ip: InteractiveShell, fake_server: FakeDeepInfra, capsys: pytest.CaptureFixture[str]
) -> None:
    with capture_output():
        ip.run_cell_magic("deepinfra", "", "hi")
    ip.run_line_magic("config", "DeepInfraMagics")
    ip.run_line_magic("config", "")
    out = capsys.readouterr().out
    assert "DeepInfraMagics.default_model" in out and "DeepInfraMagics" in out
    assert "api_key" not in out.lower()
    assert CANARY_KEY not in out
