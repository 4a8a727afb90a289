"""A real llama.cpp server (llama-cpp-python's) on a tiny random model, for the session.

Nothing is skipped: without the ``llama`` extra (``make test`` installs it, building
llama-cpp-python, which needs a C++ compiler and cmake) every test here fails, saying so.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.kernel_helpers import MAGIC_ENV_VARS

if TYPE_CHECKING:
    from tests.llama.server import LlamaServer

MISSING = (
    "{name} is not installed: run `make test` (it installs the llama extra, building "
    "llama-cpp-python from source with build-essential and cmake)."
)


def _require(*names: str) -> None:
    for name in names:
        if importlib.util.find_spec(name) is None:
            pytest.fail(MISSING.format(name=name), pytrace=False)


@pytest.fixture(scope="session")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """The running server."""
    _require("llama_cpp", "gguf", "openai", "sse_starlette")
    from tests.llama.server import running_server

    with running_server(tmp_path_factory.mktemp("llama")) as server:
        yield server


@pytest.fixture
def no_key_env(
    llama: LlamaServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Path]:
    """A user with no key whose DEEPINFRA_BASE_URL is the llama.cpp server."""
    from deepinfra_magic.catalog import CATALOG_CACHE

    for name in MAGIC_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("DEEPINFRA_FLAVOUR", raising=False)
    monkeypatch.setenv("DEEPINFRA_BASE_URL", llama.url)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    CATALOG_CACHE.clear()
    yield tmp_path
    CATALOG_CACHE.clear()
