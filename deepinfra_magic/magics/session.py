"""The magics' session: one client, the key entered with ``%deepinfra_login``, and the
model list with its one-time warning.

Rules kept here:

* No IPython here: the magics pass their settings in as the keyword arguments any caller
  of ``DeepInfraClient`` would use.
* The client (and with it httpx) is imported and built on first use, never at ``%load_ext``.
* A key lives only inside the client's headers; this module never holds or prints one.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._config import KEY_ENV_VARS, Secret, key_source, missing_key_error, resolve_key
from ..errors import DeepInfraError
from ..usage import SESSION_USAGE

if TYPE_CHECKING:
    from ..catalog import ModelCatalog
    from ..client import DeepInfraClient

__all__ = ["MagicSession", "absolute_paths", "file_names", "mode_status"]


class MagicSession:
    """The client for the current settings, built on first use (this is where httpx is
    imported) and rebuilt when they change; a login key survives the rebuild."""

    def __init__(self, options: Callable[[], dict[str, Any]]) -> None:
        self._options = options
        self._client: DeepInfraClient | None = None
        self.login = False  # the client carries a key from %deepinfra_login
        self._warned: set[int] = set()
        self.usage = SESSION_USAGE  # the ledger every client of the session adds to

    def client(self) -> DeepInfraClient:
        """The session's client. A key from the environment is read again on every call,
        so one set after ``%load_ext`` is used at once; a login key wins over it."""
        if self._client is not None and not self.login and self._environment_key_changed():
            self.rebuild()
        if self._client is None:
            from ..client import DeepInfraClient

            self._client = DeepInfraClient(**self._options(), usage=self.usage)
        return self._client

    def rebuild(self, key: Secret | None = None) -> None:
        """Replace the client after a settings change; keep a login key unless replaced."""
        old, self._client = self._client, None
        if key is not None:
            from ..client import DeepInfraClient

            self._client = DeepInfraClient(key, **self._options(), usage=self.usage)
        elif self.login and old is not None:
            self._client = old.with_options(**self._options())
        if old is not None:
            old.close()

    def log_in(self, key: Secret) -> str:
        """Check ``key`` with one free request (never recorded or replayed), then use it
        from now on; refused: raised. Returns the line to print."""
        from ..client import DeepInfraClient

        with DeepInfraClient(key, **{**self._options(), "recording": None}) as checker:
            try:
                accepted = checker.validate_key()
            except DeepInfraError as exc:
                if exc.status_code in (401, 403):
                    raise
                accepted = None
        self.login = True
        self.rebuild(key)
        if accepted:
            return "✓ Key accepted; kept for this kernel session only (never saved)."
        return (
            "Key saved for this kernel session only (never written to disk); "
            "it is checked on first use."
        )

    def record_catalog(self) -> None:
        """Fetch the model list into a new recording: it is usually in memory already, so
        no later request would put it there, and a replay needs it to list models and to
        tell image models from text models."""
        try:
            self.client().models(refresh=True)
        except DeepInfraError:
            pass

    def log_out(self) -> str:
        """Forget the login key; what is used instead, as the line to print."""
        self.login = False
        self.rebuild()
        remaining = key_source()
        tail = f"; {remaining} from the environment is still used." if remaining else "."
        return f"Forgot the key entered with %deepinfra_login{tail}"

    def close(self) -> None:
        """Close the client (the next call builds a new one)."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def _environment_key_changed(self) -> bool:
        assert self._client is not None
        return not self._client.sends_key(resolve_key())

    def ready_client(self) -> DeepInfraClient:
        """The client, or a one-line error before anything is shown if it has no key."""
        client = self.client()
        if not client.has_key and not client.replaying and not client.routes.generic:
            raise missing_key_error()
        return client

    def catalog(self, client: DeepInfraClient, refresh: bool = False) -> ModelCatalog:
        """The model list; a warning about it (a stale copy stands in) is printed once."""
        catalog = client.models(refresh=refresh)
        if catalog.warning and id(catalog) not in self._warned:
            self._warned.add(id(catalog))
            print(f"⚠ {catalog.warning}", file=sys.stderr)
        return catalog

    def catalog_if_available(self, client: DeepInfraClient) -> ModelCatalog | None:
        """The catalog to help with names; chat goes on without it if it cannot be had."""
        try:
            return self.catalog(client)
        except DeepInfraError:
            return None

    def pick_model(
        self, named: str | None, default: str, *, image: bool = False, warn: bool = True
    ) -> tuple[DeepInfraClient, ModelCatalog | None, str]:
        """The ready client, the catalog if it can be had, and the model to use: the one
        named, else ``default`` (on another server, one it lists). A deprecated model gets
        one stderr line (``warn``)."""
        client = self.ready_client()
        catalog = self.catalog_if_available(client)
        model = named or client.default_model(default, catalog, image=image)
        info = catalog.get(model) if catalog is not None else None
        if warn and info is not None and info.deprecation_note():
            print(f"⚠ {info.deprecation_note()}", file=sys.stderr)
        return client, catalog, model

    def key_status(self, client: DeepInfraClient, replay: str) -> str:
        """Which key source is set, never the value."""
        if client.replaying:
            return f"Key: not needed (replaying {file_names(replay)})"
        if self.login and client.has_key:
            return "Key: entered with %deepinfra_login"
        source = key_source()
        if source:
            return f"Key: {source} is set"
        if client.routes.generic:
            return "Key: none sent (none set)"
        return f"Key: none ({' / '.join(KEY_ENV_VARS)} unset; run %deepinfra_login)"


def absolute_paths(paths: str) -> str:
    """Recordings are resolved when named, so a later ``cd`` does not move them (several
    replay files are separated by ``os.pathsep``)."""
    parts = [str(Path(part).expanduser().resolve()) for part in paths.split(os.pathsep) if part]
    return os.pathsep.join(parts)


def file_names(paths: str) -> str:
    """``a.json + b.json`` for recordings separated by ``os.pathsep``."""
    return " + ".join(Path(part).name for part in paths.split(os.pathsep) if part)


def mode_status(replay: str, record: str, speed: Callable[[], float]) -> str:
    """Where answers come from: a recording (at what pace), the API while recording, or
    the API."""
    if replay:
        return f"Replaying {replay} at speed {speed():g}."
    if record:
        return f"Recording to {record}."
    return "Live: requests go to the API (no recording)."
