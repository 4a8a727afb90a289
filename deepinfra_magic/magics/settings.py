"""The magics' settings (``%config DeepInfraMagics``): every trait, its default from
``_config.py``, and how the settings become the client's keyword arguments.

Rules kept here:

* Every user-facing default comes from ``_config.py``; the API key is never a trait.
* :class:`MagicSettings` is the root of every family class, so the one configurable,
  ``DeepInfraMagics`` (the families put together in ``magics/__init__.py``), shows every
  trait under its own name, as before the package was cut by family.
* A connection setting applies from the next request on (the session rebuilds its
  client); loading the settings imports neither the client nor httpx.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from IPython.core.magic import Magics
from traitlets import Bool, Enum, Float, Int, TraitError, Unicode, default, observe, validate

from .._config import (
    DEFAULT_BATCH_POLL_INTERVAL,
    DEFAULT_CATALOG_TTL,
    DEFAULT_FALLBACK_REPLAY,
    DEFAULT_IMAGE_MODEL,
    DEFAULT_MAP_CONCURRENCY,
    DEFAULT_MAP_CONFIRM_DOLLARS,
    DEFAULT_MAX_HISTORY,
    DEFAULT_MAX_RETRIES,
    DEFAULT_MAX_TOKENS,
    DEFAULT_MODEL,
    DEFAULT_READ_TIMEOUT,
    DEFAULT_TEMPERATURE,
    DEFAULT_UPDATE_INTERVAL,
    MAX_IMAGE_PIXELS,
    RECORD_ENV,
    REPLAY_ENV,
    REPLAY_SPEED_ENV,
    env_text,
    resolve_replay_speed,
)
from .session import MagicSession, absolute_paths

if TYPE_CHECKING:
    from ..conversation import Conversation

__all__ = ["MagicSettings"]

_CLIENT_TRAITS = (
    "base_url",
    "flavour",
    "timeout",
    "max_retries",
    "replay",
    "record",
    "replay_speed",
    "catalog_ttl",
)


class MagicSettings(Magics):
    """DeepInfra chat and images in IPython. Settings (``%config DeepInfraMagics``)
    are below; the API key is never one of them (use the environment or ``%deepinfra_login``).
    """

    session: MagicSession
    _conversation: Conversation | None  # made on first use (``FamilyMagics.conversation``)

    default_model = Unicode(DEFAULT_MODEL, help="Model for %%deepinfra.").tag(config=True)
    default_image_model = Unicode(DEFAULT_IMAGE_MODEL, help="Model for %deepinfra_image.").tag(
        config=True
    )
    system_prompt = Unicode("", help="System prompt sent first in every conversation.").tag(
        config=True
    )
    temperature = Float(DEFAULT_TEMPERATURE, help="Sampling temperature (0–2).").tag(config=True)
    max_tokens = Int(DEFAULT_MAX_TOKENS, help="Most tokens a reply may have.").tag(config=True)
    max_history = Int(
        DEFAULT_MAX_HISTORY, help="Previous exchanges sent with each %%deepinfra cell."
    ).tag(config=True)
    update_interval = Float(
        DEFAULT_UPDATE_INTERVAL, help="Least seconds between display updates."
    ).tag(config=True)
    display_mode = Enum(
        ("auto", "markdown", "text"),
        "auto",
        help="auto: Markdown where the frontend renders it, else plain stdout.",
    ).tag(config=True)
    timeout = Float(
        DEFAULT_READ_TIMEOUT, help="Seconds to wait for the next bytes of an answer."
    ).tag(config=True)
    max_retries = Int(
        DEFAULT_MAX_RETRIES, help="Retries for rate limits, 5xx and connection failures."
    ).tag(config=True)
    base_url = Unicode("", help="API root; empty means DEEPINFRA_BASE_URL or DeepInfra.").tag(
        config=True
    )
    flavour = Unicode(
        "",
        help="Routes: deepinfra, generic (any OpenAI-compatible server) or auto; empty means "
        "DEEPINFRA_FLAVOUR, else auto (DeepInfra's host or a …/v1/openai path is DeepInfra).",
    ).tag(config=True)
    catalog_ttl = Float(
        DEFAULT_CATALOG_TTL, help="Seconds the on-disk model list stays fresh."
    ).tag(config=True)
    replay = Unicode(help=f"Recording to answer from (no key or network); env {REPLAY_ENV}.").tag(
        config=True
    )
    record = Unicode(help=f"Recording file to write every exchange to; env {RECORD_ENV}.").tag(
        config=True
    )
    replay_speed = Float(
        None,
        allow_none=True,
        help=f"Replay pace: 1 recorded, 2 twice as fast, 0 instant; None: env {REPLAY_SPEED_ENV}.",
    ).tag(config=True)
    fallback_replay = Unicode(
        DEFAULT_FALLBACK_REPLAY,
        help="Recording that answers a chat cell when a classroom token is refused (expired "
        "or spent), labelled as replayed; empty: the refusal is the cell's error.",
    ).tag(config=True)
    raise_on_interrupt = Bool(
        True, help="Re-raise KeyboardInterrupt after keeping a stopped reply (stops Run All)."
    ).tag(config=True)
    max_image_pixels = Int(
        MAX_IMAGE_PIXELS, help="Images attached with --see are downscaled to this many pixels."
    ).tag(config=True)
    explain_errors = Bool(
        False, help="After a failing cell, show a hint to run %deepinfra_explain (no request)."
    ).tag(config=True)
    raise_on_error = Bool(
        True,
        help="Raise errors (stops Run All); False prints each one's line and the cell ends "
        "normally, for notebooks that show errors.",
    ).tag(config=True)
    map_confirm_dollars = Float(
        DEFAULT_MAP_CONFIRM_DOLLARS,
        help="%%deepinfra_map asks for --yes when its cost estimate is above this.",
    ).tag(config=True)
    map_concurrency = Int(
        DEFAULT_MAP_CONCURRENCY, help="Requests %%deepinfra_map keeps open at once."
    ).tag(config=True)
    batch_poll_interval = Float(
        DEFAULT_BATCH_POLL_INTERVAL,
        help="Seconds between status checks of a Batch API job (grows to a minute).",
    ).tag(config=True)

    # --- settings -------------------------------------------------------------------------

    @default("replay")
    def _default_replay(self) -> str:
        return absolute_paths(env_text(REPLAY_ENV))

    @default("record")
    def _default_record(self) -> str:
        return absolute_paths(env_text(RECORD_ENV))

    def _replay_speed(self) -> float:
        """The trait, else the environment's pace, else 1 (a bad value: a one-line error)."""
        return resolve_replay_speed(self.replay_speed)

    @validate("fallback_replay")
    def _check_fallback(self, proposal: Any) -> str:
        """Resolved and loaded when set: a wrong path is an error now, not in class."""
        paths = absolute_paths(str(proposal["value"]))
        if paths:
            from ..recording import Recording

            Recording.load(*paths.split(os.pathsep))
        return paths

    @validate("max_image_pixels")
    def _check_image_pixels(self, proposal: Any) -> int:
        value = int(proposal["value"])
        if value < 4096:
            raise TraitError(
                f"max_image_pixels must be at least 4096 (64×64), not {value}; "
                f"the default is {MAX_IMAGE_PIXELS:,}."
            )
        return value

    @observe("system_prompt", "max_history")
    def _sync_conversation(self, change: Any) -> None:
        """The conversation, once there is one, follows the settings (a profile's or
        ``%config``'s values apply when it is made)."""
        if self._conversation is not None:
            self._conversation.system_prompt = self.system_prompt
            self._conversation.max_history = self.max_history

    @observe(*_CLIENT_TRAITS)
    def _settings_changed(self, change: Any) -> None:
        """Connection settings apply from the next request on (a login key is kept)."""
        if change["name"] in ("replay", "record") and change["new"]:
            other = "record" if change["name"] == "replay" else "replay"
            self.set_trait(other, "")
        self.session.rebuild()

    # --- what the client is built with -----------------------------------------------

    def _client_options(self) -> dict[str, Any]:
        from ..recording import Record, Replay

        recording: Replay | Record | None = None
        if self.replay:
            recording = Replay.of(self.replay, self._replay_speed())
        elif self.record:
            recording = Record(Path(self.record))
        return {
            "base_url": self.base_url or None,
            "flavour": self.flavour or None,
            "timeout": self.timeout,
            "max_retries": self.max_retries,
            "recording": recording,
            "catalog_ttl": self.catalog_ttl,
            "on_notice": _notice,
        }


def _notice(text: str) -> None:
    """A progress note from the client (a model still loading), as one stderr line."""
    print(text, file=sys.stderr, flush=True)
