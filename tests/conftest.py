"""Shared pytest fixtures."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.both_clients import CLIENT_KINDS, BlockingAsyncClient
from tests.fake_deepinfra import CANARY_KEY, FakeDeepInfra
from tests.kernel_helpers import MAGIC_ENV_VARS

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

    from deepinfra_magic.client import DeepInfraClient

# ---- Fake DeepInfra server (tests/fake_deepinfra/) ---------------------------------------------
# One in-process server for the whole session; each test gets it reset to a clean state.


@pytest.fixture(scope="session")
def _fake_server_session() -> Iterator[FakeDeepInfra]:
    with FakeDeepInfra() as server:
        yield server


@pytest.fixture
def fake_server(_fake_server_session: FakeDeepInfra) -> FakeDeepInfra:
    """The session's fake DeepInfra server with no faults, scripts or logs and default config."""
    # Let responses left over from the previous test finish, so they cannot log into this one.
    _fake_server_session.wait_streams_closed(timeout=5)
    _fake_server_session.reset()
    return _fake_server_session


# ---- end of fake DeepInfra server fixtures ----------------------------------------------------


# ---- IPython shell and kernel environment for the magics (tests/magics/, tests/kernel/) -------
# The magics run in IPython's real InteractiveShell against the fake server: the key (the canary)
# and the server URL come from the environment as for a user, and the catalog's disk cache lives
# in a per-test directory. The shell is IPython's singleton, so the fixture loads the extension
# fresh for each test and puts back everything it changed.


@pytest.fixture
def magic_env(
    fake_server: FakeDeepInfra, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Path]:
    """Environment of a user with a key and the fake server; yields the catalog cache dir.

    The process-wide in-memory catalog is cleared before and after, so every test starts
    like a new session (the disk cache directory is the test's own).
    """
    from deepinfra_magic.catalog import CATALOG_CACHE

    for name in MAGIC_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DEEPINFRA_API_KEY", CANARY_KEY)
    monkeypatch.setenv("DEEPINFRA_BASE_URL", fake_server.api_url)
    cache = tmp_path / "xdg-cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    CATALOG_CACHE.clear()
    yield cache
    CATALOG_CACHE.clear()


def _interactive_shell() -> InteractiveShell:
    """IPython's singleton shell, created without the history database if it is new."""
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    if InteractiveShell.initialized():
        return InteractiveShell.instance()
    config = Config()
    config.HistoryManager.enabled = False  # no SQLite per test ("too many open files")
    return InteractiveShell.instance(config=config)


@pytest.fixture
def ip(magic_env: Path) -> Iterator[InteractiveShell]:
    """The shell with ``deepinfra_magic`` freshly loaded (new DeepInfraMagics, default settings).

    Its display publisher is IPython's plain one (what terminal IPython uses); wrap a call in
    ``IPython.utils.capture.capture_output()`` for a rich frontend. Markdown is an active
    format, as in Jupyter. Teardown unloads the extension and restores the shell.
    """
    shell = _interactive_shell()
    formatter = shell.display_formatter
    saved_types = list(formatter.active_types)
    saved_publisher = shell.display_pub
    saved_names = set(shell.user_ns)
    # ``%config`` merges into the shell's config, which every later instance inherits.
    saved_config = copy.deepcopy(dict.get(shell.config, "DeepInfraMagics"))
    formatter.active_types = list(formatter.format_types)
    manager = shell.extension_manager
    if "deepinfra_magic" in manager.loaded:
        manager.unload_extension("deepinfra_magic")
    manager.load_extension("deepinfra_magic")
    try:
        yield shell
    finally:
        if "deepinfra_magic" in manager.loaded:
            manager.unload_extension("deepinfra_magic")
        shell.display_pub = saved_publisher
        formatter.active_types = saved_types
        shell.rl_next_input = None
        shell.config.pop("DeepInfraMagics", None)
        if saved_config is not None:
            shell.config["DeepInfraMagics"] = saved_config
        for name in set(shell.user_ns) - saved_names:
            del shell.user_ns[name]


# ---- end of IPython shell and kernel fixtures -------------------------------------------------


# ---- Library tests (tests/unit/, tests/clients/: on the fake server) -------------------
# Each client test runs with no DeepInfra variables from the developer's shell, with the model
# catalog's disk cache under tmp_path (never the real home) and an empty process-wide catalog.


@pytest.fixture
def library_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """A clean environment for the library; yields the catalog cache directory's parent."""
    from deepinfra_magic.catalog import CATALOG_CACHE

    for name in MAGIC_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    cache_home = tmp_path / "xdg-cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache_home))
    CATALOG_CACHE.clear()
    yield cache_home
    CATALOG_CACHE.clear()


def _client_maker(
    factory: Callable[..., Any], fake_server: FakeDeepInfra
) -> Iterator[Callable[..., DeepInfraClient]]:
    clients: list[Any] = []

    def make(api_key: str | None = CANARY_KEY, **kwargs: Any) -> DeepInfraClient:
        kwargs.setdefault("base_url", fake_server.api_url)
        client = factory(api_key, **kwargs)
        clients.append(client)
        return client  # type: ignore[no-any-return]

    yield make
    for client in clients:
        client.close()


@pytest.fixture(params=CLIENT_KINDS)
def make_client(
    request: pytest.FixtureRequest, library_env: Path, fake_server: FakeDeepInfra
) -> Iterator[Callable[..., DeepInfraClient]]:
    """``make_client(**kwargs)``: a client on the fake server with the canary key (override
    either by keyword), once a DeepInfraClient and once an AsyncDeepInfraClient behind the
    same blocking face (tests/both_clients.py); every client made is closed after the test."""
    from deepinfra_magic.client import DeepInfraClient

    factory = DeepInfraClient if request.param == "sync" else BlockingAsyncClient
    yield from _client_maker(factory, fake_server)


@pytest.fixture(params=CLIENT_KINDS)
def client_class(request: pytest.FixtureRequest) -> Callable[..., DeepInfraClient]:
    """``DeepInfraClient``, then the async client behind the same blocking face, for tests
    that build their own clients (record, replay, the environment)."""
    from deepinfra_magic.client import DeepInfraClient

    return DeepInfraClient if request.param == "sync" else BlockingAsyncClient  # type: ignore[return-value]


@pytest.fixture
def make_sync_client(
    library_env: Path, fake_server: FakeDeepInfra
) -> Iterator[Callable[..., DeepInfraClient]]:
    """``make_client`` for what only the blocking client has (threads, aborting a request)."""
    from deepinfra_magic.client import DeepInfraClient

    yield from _client_maker(DeepInfraClient, fake_server)


# ---- end of core library fixtures -------------------------------------------------------------
