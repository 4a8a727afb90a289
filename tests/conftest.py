"""Shared pytest fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fake_server import FakeDeepInfra

# ---- Fake DeepInfra server (tests/fake_server.py) ---------------------------------------------
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
