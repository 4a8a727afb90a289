"""The README's settings table says what the magics really default to (one source:
``deepinfra_magic/_config.py``), and the library's defaults are the same values (the g4f
provider sends none unless g4f passes them)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from IPython.core.interactiveshell import InteractiveShell

from deepinfra_magic import _config
from deepinfra_magic.client import AsyncDeepInfraClient, DeepInfraClient

README = Path(__file__).resolve().parents[2] / "README.md"
_ROW = re.compile(r"^\| (`[^|]+`) \| (`[^|]*`(?: / `[^|]*`)?) \| [^|]+ \|$")


def readme_settings() -> dict[str, str]:
    """Setting name -> default as written in the README's Configuration table."""
    section = README.read_text(encoding="utf-8").split("## Configuration", 1)[1]
    table = section[section.index("| Setting | Default |") :].split("\n\n")[0]
    settings: dict[str, str] = {}
    for line in table.splitlines()[2:]:
        match = _ROW.match(line)
        assert match, f"unreadable settings row: {line!r}"
        names = re.findall(r"`([^`]+)`", match[1])
        defaults = re.findall(r"`([^`]*)`", match[2])
        if len(defaults) == 1:
            defaults *= len(names)
        assert len(names) == len(defaults), line
        settings.update(zip(names, defaults, strict=True))
    return settings


def as_written(value: object) -> str:
    """A trait value the way the README writes it."""
    if isinstance(value, str):
        return value or '""'
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def test_readme_settings_table_matches_the_magics_defaults(ip: InteractiveShell) -> None:
    magics = ip.magics_manager.registry["DeepInfraMagics"]
    documented = readme_settings()
    configurable = set(magics.trait_names(config=True))
    assert set(documented) == configurable  # every setting documented, nothing else
    actual = {name: as_written(getattr(magics, name)) for name in documented}
    assert actual == documented


def test_the_library_defaults_to_the_same_values() -> None:
    chat = inspect.signature(DeepInfraClient.chat).parameters
    async_chat = inspect.signature(AsyncDeepInfraClient.chat).parameters
    for parameters in (chat, async_chat):
        assert parameters["temperature"].default == _config.DEFAULT_TEMPERATURE
        assert parameters["max_tokens"].default == _config.DEFAULT_MAX_TOKENS
    init = inspect.signature(DeepInfraClient.__init__).parameters
    assert init["max_retries"].default == _config.DEFAULT_MAX_RETRIES
    assert init["catalog_ttl"].default == _config.DEFAULT_CATALOG_TTL
    assert _config.Timeouts().read == _config.DEFAULT_READ_TIMEOUT
