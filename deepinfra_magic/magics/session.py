"""The magics' session: one client, the key entered with ``%deepinfra_login``, the model
list with its one-time warning, and a classroom seat's scope.

Rules kept here:

* No IPython here: the magics pass their settings in as the keyword arguments any caller
  of ``DeepInfraClient`` would use.
* The client (and with it httpx) is imported and built on first use, never at ``%load_ext``;
  so is the usage ledger.
* A key lives only inside the client's headers; this module never holds or prints one. Of a
  scoped token (a classroom seat) it keeps only the scope (``TokenScope``: models, expiry,
  cap), read from the token's claims when the client is built.
* A seat's limits: a model outside a known scope is refused before sending
  (``DisallowedModelError``); the server's refusals become one line that says why
  (:meth:`MagicSession.refusal`), and may be answered from ``fallback_replay``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._config import KEY_ENV_VARS, Secret, key_source, missing_key_error, resolve_key
from ..errors import APIStatusError, DeepInfraError, ScopedTokenError

if TYPE_CHECKING:
    from ..catalog import ModelCatalog
    from ..classroom import TokenScope
    from ..client import DeepInfraClient
    from ..usage import UsageLedger

__all__ = ["MagicSession", "absolute_paths", "file_names", "mode_status"]


class MagicSession:
    """The client for the current settings, built on first use (this is where httpx is
    imported) and rebuilt when they change; a login key survives the rebuild."""

    def __init__(self, options: Callable[[], dict[str, Any]]) -> None:
        self._options = options
        self._client: DeepInfraClient | None = None
        self.login = False  # the client carries a key from %deepinfra_login
        self._warned: set[int] = set()
        # The client's key is a scoped token (a classroom seat): its scope, as far as known
        # (None when the key is a plain one, or none).
        self.scope: TokenScope | None = None

    @property
    def usage(self) -> UsageLedger:
        """The ledger every client of the session adds to (``usage.SESSION_USAGE``, which
        outlives a rebuild); imported with the first client, not at ``%load_ext``."""
        from ..usage import SESSION_USAGE

        return SESSION_USAGE

    def client(self) -> DeepInfraClient:
        """The session's client. A key from the environment is read again on every call,
        so one set after ``%load_ext`` is used at once; a login key wins over it."""
        if self._client is not None and not self.login and self._environment_key_changed():
            self.rebuild()
        if self._client is None:
            from ..client import DeepInfraClient

            self._client = DeepInfraClient(**self._options(), usage=self.usage)
            self.scope = scope_of_key(resolve_key())
        return self._client

    def rebuild(self, key: Secret | None = None) -> None:
        """Replace the client after a settings change; keep a login key unless replaced."""
        old, self._client = self._client, None
        if key is not None:
            from ..client import DeepInfraClient

            self._client = DeepInfraClient(key, **self._options(), usage=self.usage)
            self.scope = scope_of_key(key)
        elif self.login and old is not None:
            self._client = old.with_options(**self._options())
        if old is not None:
            old.close()

    def log_in(self, key: Secret) -> str:
        """Check ``key`` with one free request (never recorded or replayed), then use it
        from now on; refused: raised. Returns the line to print. A scoped token is not
        checked (the key-check route refuses it); the line says what it allows."""
        from ..client import DeepInfraClient

        if scope_of_key(key) is not None:
            return self._log_in_scoped(key)
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

    def _log_in_scoped(self, key: Secret) -> str:
        """Use a classroom token from now on; what it allows from its claims, else from
        ``GET /v1/scoped-jwt`` (sent live, never recorded: the token rides in its URL)."""
        from ..classroom import describe_scope, inspect_flow
        from ..client import DeepInfraClient

        self.login = True
        self.rebuild(key)
        generic = self.client().routes.generic
        if self.scope is not None and _nothing_known(self.scope) and not generic:
            with DeepInfraClient(key, **{**self._options(), "recording": None}) as checker:
                try:
                    self.scope = checker.run(inspect_flow(key.reveal()))
                except DeepInfraError:
                    pass
        kept = "kept for this kernel session only (never saved)"
        assert self.scope is not None
        if _nothing_known(self.scope):
            return f"✓ Classroom token {kept}; what it allows is checked on first use."
        line = describe_scope(self.scope, datetime.now().astimezone(), budget=not generic)
        return f"✓ {line}; {kept}."

    def describe_scope(self) -> str | None:
        """What the seat's token allows, as one line (no budget on another server); None
        when the key is not a scoped token."""
        if self.scope is None:
            return None
        from ..classroom import describe_scope

        if _nothing_known(self.scope):
            return "Classroom token (what it allows could not be read)"
        generic = self._client is not None and self._client.routes.generic
        return describe_scope(self.scope, datetime.now().astimezone(), budget=not generic)

    def refusal(self, error: BaseException, model: str | None) -> BaseException:
        """A server's refusal of a seat's token (or of a proxy's virtual key) as the one
        line that says why: expired (and when), spent (and how much), or a model it does
        not allow (and which it does); any other error as it was."""
        client = self._client
        scoped = self.scope is not None or (client is not None and client.routes.generic)
        if not scoped or not isinstance(error, APIStatusError):
            return error
        if isinstance(error, ScopedTokenError):
            return error
        from ..classroom import scoped_token_error

        scope = self.scope
        spent = self.usage.total().dollars
        now = datetime.now().astimezone()
        return scoped_token_error(error, scope=scope, model=model, spent=spent, now=now)

    def fallback_client(self, paths: str, speed: float) -> DeepInfraClient:
        """A client answering from ``paths`` (the class's recording), for a refused cell;
        the caller closes it."""
        from ..recording import Replay

        return self.client().with_options(recording=Replay.of(paths, speed))

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
        scope = None if client.replaying else self.scope
        if scope is not None and scope.models:
            from ..classroom import check_model_allowed

            if named is None and not scope.allows(model):
                model = _allowed_default(scope.models, catalog, image)
            check_model_allowed(scope, model)  # sends nothing the token cannot do
        info = catalog.get(model) if catalog is not None else None
        if warn and info is not None and info.deprecation_note():
            print(f"⚠ {info.deprecation_note()}", file=sys.stderr)
        return client, catalog, model

    def key_status(self, client: DeepInfraClient, replay: str) -> str:
        """Which key source is set, never the value."""
        if client.replaying:
            return f"Key: not needed (replaying {file_names(replay)})"
        seat = self.describe_scope()
        if seat is not None:
            how = "entered with %deepinfra_login" if self.login else f"{key_source()} is set"
            return f"Key: classroom token {how} · {seat}"
        if self.login and client.has_key:
            return "Key: entered with %deepinfra_login"
        source = key_source()
        if source:
            return f"Key: {source} is set"
        if client.routes.generic:
            return "Key: none sent (none set)"
        return f"Key: none ({' / '.join(KEY_ENV_VARS)} unset; run %deepinfra_login)"


def scope_of_key(key: Secret | None) -> TokenScope | None:
    """The scope of a classroom token from its own claims (any model, no known expiry or
    cap when they cannot be read); None for a plain key or none."""
    if key is None:
        return None
    from ..classroom import TokenScope, looks_like_scoped_token

    value = key.reveal()
    if not looks_like_scoped_token(value):
        return None
    return TokenScope.of_token(value) or TokenScope()


def _nothing_known(scope: TokenScope) -> bool:
    """True when a token's claims said nothing of its models, expiry or cap."""
    return scope.models is None and scope.expires_at is None and scope.spending_limit is None


def _allowed_default(allowed: tuple[str, ...], catalog: ModelCatalog | None, image: bool) -> str:
    """With no ``-m``: the token's first model of the kind the cell makes (the catalog
    tells image models from text models), else its first model."""
    if catalog is not None:
        fits = catalog.is_image_model if image else catalog.is_text_model
        for model in allowed:
            if fits(model):
                return model
    return allowed[0]


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
