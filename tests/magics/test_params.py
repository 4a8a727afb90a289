"""``-p KEY=VALUE`` on every magic that takes it: one list of reserved names
(``RESERVED_PARAMS``), each refused in one line before any request, naming the magic's own
option for it when it has one."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from deepinfra_magic.magics import MAGIC_NAMES, DeepInfraMagics
from deepinfra_magic.magics.arguments import RESERVED_PARAMS, parser_of
from tests.fake_deepinfra import FakeDeepInfra

# Every magic whose parser has -p/--param, found from the magics' own declarations.
TAKES_P = sorted(
    {
        name
        for names in MAGIC_NAMES.values()
        for name in names
        if hasattr(getattr(DeepInfraMagics, name), "parser")
        and parser_of(getattr(DeepInfraMagics, name)).has_option("--param")
    }
)
# What each one runs, with the reserved pair put into its line.
RUN = {
    "deepinfra": lambda ip, pair: ip.run_cell_magic("deepinfra", f"-p {pair}", "Hi."),
    "deepinfra_map": lambda ip, pair: ip.run_cell_magic(
        "deepinfra_map", f"rows -p {pair}", "Say {}."
    ),
    "deepinfra_image": lambda ip, pair: ip.run_line_magic("deepinfra_image", f"-p {pair} a fox"),
}


def test_every_magic_that_takes_p_is_covered() -> None:
    assert sorted(RUN) == TAKES_P


@pytest.mark.parametrize("name", sorted(RUN))
@pytest.mark.parametrize("key", sorted(RESERVED_PARAMS))
def test_a_reserved_name_is_one_line_before_any_request(
    ip: InteractiveShell, fake_server: FakeDeepInfra, name: str, key: str
) -> None:
    ip.user_ns["rows"] = ["a", "b"]
    with pytest.raises(UsageError) as caught:
        RUN[name](ip, f"{key}=1")
    message = str(caught.value)
    assert message.startswith(f"-p/--param cannot set {key}: ") and "\n" not in message
    option = RESERVED_PARAMS[key].option
    parser = parser_of(getattr(DeepInfraMagics, name))
    if option is not None and parser.has_option(option.split("/")[-1]):
        assert message.endswith(f"use {option}.")
    assert fake_server.requests == []


def test_map_refuses_messages_in_one_line_instead_of_failing_every_row(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    ip.user_ns["rows"] = ["a", "b"]
    with pytest.raises(UsageError, match=r"^-p/--param cannot set messages: the cell body is"):
        ip.run_cell_magic("deepinfra_map", "rows -p 'messages=[]'", "Say {}.")
    with pytest.raises(UsageError, match=r"^-p/--param cannot set max_tokens: use --max-tokens\.$"):
        ip.run_cell_magic("deepinfra_map", "rows -p max_tokens=5", "Say {}.")
    assert fake_server.requests == []
