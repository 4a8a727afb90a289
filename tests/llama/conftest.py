"""Real llama.cpp servers on a tiny random model, for the session: llama-cpp-python's
(``llama``), llama.cpp's native ``llama-server`` (``native_llama``), and LiteLLM's proxy
in front of the native one (``litellm``).

Nothing is skipped: without the ``llama`` extra (``make test`` installs it, building
llama-cpp-python, which needs a C++ compiler and cmake) every test here fails, saying so;
the native server is built once by ``scripts/ensure-llama-server`` (``make test`` runs it
first) and cached, and a failed build fails its tests with the build's output.
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


@pytest.fixture(scope="session")
def native_llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """llama.cpp's own ``llama-server``, running."""
    _require("gguf")
    from tests.llama.server import native_server_command, running_server

    directory = tmp_path_factory.mktemp("llama-native")
    with running_server(directory, native_server_command) as server:
        yield server


@pytest.fixture(scope="session")
def litellm(
    native_llama: LlamaServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LlamaServer]:
    """LiteLLM's proxy routing ``tiny`` to llama.cpp's native server (installed once into
    its own venv by ``scripts/ensure-litellm``, which ``make test`` runs first)."""
    from tests.llama.server import running_litellm

    with running_litellm(tmp_path_factory.mktemp("litellm"), native_llama) as proxy:
        yield proxy


def _no_key_env(url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    from deepinfra_magic.catalog import CATALOG_CACHE

    for name in MAGIC_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("DEEPINFRA_FLAVOUR", raising=False)
    monkeypatch.setenv("DEEPINFRA_BASE_URL", url)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    CATALOG_CACHE.clear()
    yield tmp_path
    CATALOG_CACHE.clear()


@pytest.fixture
def no_key_env(
    llama: LlamaServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Path]:
    """A user with no key whose DEEPINFRA_BASE_URL is llama-cpp-python's server."""
    yield from _no_key_env(llama.url, monkeypatch, tmp_path)


@pytest.fixture
def native_env(
    native_llama: LlamaServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Path]:
    """A user with no key whose DEEPINFRA_BASE_URL is llama.cpp's native server."""
    yield from _no_key_env(native_llama.url, monkeypatch, tmp_path)


@pytest.fixture
def litellm_env(
    litellm: LlamaServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Path]:
    """A user whose DEEPINFRA_BASE_URL is the LiteLLM proxy and whose key is its master key."""
    from tests.llama.server import LITELLM_MASTER_KEY

    for path in _no_key_env(litellm.url, monkeypatch, tmp_path):
        monkeypatch.setenv("DEEPINFRA_API_KEY", LITELLM_MASTER_KEY)
        yield path
