"""Every default, where the base URL and the API key come from, and the one place that
holds a key value.

Base URL: argument > ``DEEPINFRA_BASE_URL`` > ``https://api.deepinfra.com``.
Key: argument > ``DEEPINFRA_API_KEY`` > ``DEEPINFRA_API_TOKEN``.
The client, the g4f provider and the magics' settings all default to the values here;
tests/magics/test_settings.py holds the README's settings table to them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlsplit

from .errors import ConfigurationError, MissingAPIKeyError

__all__ = [
    "BASE_URL_ENV",
    "DEFAULT_BASE_URL",
    "DEFAULT_BATCH_POLL_INTERVAL",
    "DEFAULT_CATALOG_TTL",
    "DEFAULT_FALLBACK_REPLAY",
    "DEFAULT_IMAGE_MODEL",
    "DEFAULT_MAP_CONCURRENCY",
    "DEFAULT_MAP_CONFIRM_DOLLARS",
    "DEFAULT_MAX_HISTORY",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_MAX_TOKENS",
    "DEFAULT_MODEL",
    "DEFAULT_READ_TIMEOUT",
    "DEFAULT_REPLAY_SPEED",
    "DEFAULT_SEATS_FILE",
    "DEFAULT_TEMPERATURE",
    "DEFAULT_UPDATE_INTERVAL",
    "ENV_VARS",
    "FLAVOURS",
    "FLAVOUR_ENV",
    "KEY_ENV_VARS",
    "MAP_STORE_FILE",
    "MAX_IMAGE_PIXELS",
    "RECORD_ENV",
    "REPLAY_ENV",
    "REPLAY_SPEED_ENV",
    "TABLE_CHAR_BUDGET",
    "TRACEBACK_CHAR_BUDGET",
    "Secret",
    "Timeouts",
    "env_text",
    "key_source",
    "missing_key_error",
    "resolve_api_url",
    "resolve_base_url",
    "resolve_flavour",
    "resolve_key",
    "resolve_replay_speed",
]

DEFAULT_BASE_URL = "https://api.deepinfra.com"
DEFAULT_MODEL = "meta-llama/Llama-3.3-70B-Instruct-Turbo"
DEFAULT_IMAGE_MODEL = "black-forest-labs/FLUX-1-schnell"
DEFAULT_TEMPERATURE = 0.7
DEFAULT_MAX_TOKENS = 4096  # a reply may be long; the model's own limit still applies
DEFAULT_MAX_RETRIES = 2  # for 429, 5xx and failed connections, before any reply text
DEFAULT_READ_TIMEOUT = 120.0  # seconds to the next bytes: big models can take a minute
DEFAULT_CATALOG_TTL = 24 * 3600.0  # seconds the on-disk model list stays fresh
DEFAULT_MAX_HISTORY = 5  # previous exchanges sent with each %%deepinfra cell
DEFAULT_UPDATE_INTERVAL = 0.1  # least seconds between display updates of a reply
DEFAULT_REPLAY_SPEED = 1.0  # replay at the recorded pace
# Attachments (--see, {Err}, %deepinfra_explain): images are downscaled to at most this many
# pixels; a table or a traceback is cut to fit its character budget.
MAX_IMAGE_PIXELS = 1_500_000
TABLE_CHAR_BUDGET = 4_000
TRACEBACK_CHAR_BUDGET = 4_000
# A prompt over a table (mapping, batches): requests open at once, the cost above which the
# magic asks for --yes, seconds between Batch API status checks, and the answer store's file.
DEFAULT_MAP_CONCURRENCY = 16
DEFAULT_MAP_CONFIRM_DOLLARS = 1.0
DEFAULT_BATCH_POLL_INTERVAL = 10.0
MAP_STORE_FILE = "map-answers.sqlite3"
# Classroom mode: where %deepinfra_classroom writes the seats (its page beside it, .html),
# and the recording that answers a cell a seat's token was refused for ("": none).
DEFAULT_SEATS_FILE = "seats.csv"
DEFAULT_FALLBACK_REPLAY = ""
BASE_URL_ENV = "DEEPINFRA_BASE_URL"
REPLAY_ENV = "DEEPINFRA_MAGIC_REPLAY"  # recordings to answer from (separated by os.pathsep)
RECORD_ENV = "DEEPINFRA_MAGIC_RECORD"  # a recording to write every exchange to
REPLAY_SPEED_ENV = "DEEPINFRA_MAGIC_REPLAY_SPEED"
KEY_ENV_VARS = ("DEEPINFRA_API_KEY", "DEEPINFRA_API_TOKEN")
# Which routes the base URL gets: "auto" decides from the URL (see _routes.decide_flavour).
FLAVOUR_ENV = "DEEPINFRA_FLAVOUR"
FLAVOURS = ("auto", "deepinfra", "generic")
# Every variable the package reads: tests and .ci/run clear exactly these.
ENV_VARS = (*KEY_ENV_VARS, BASE_URL_ENV, FLAVOUR_ENV, REPLAY_ENV, RECORD_ENV, REPLAY_SPEED_ENV)
# People often paste the OpenAI-compatible root; the API root is what we need.
_OPENAI_SUFFIX = "/v1/openai"


class Secret:
    """A key value that never shows itself in a repr, str, f-string or traceback local."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The real value: only for putting it into the HTTP client's headers."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('[redacted]')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a Secret cannot be pickled")


@dataclass(frozen=True)
class Timeouts:
    """Connect short, read generous: big models can take a minute to the first token."""

    connect: float = 10.0
    read: float = DEFAULT_READ_TIMEOUT
    write: float = 30.0
    pool: float = 30.0

    @classmethod
    def from_value(cls, value: float | Timeouts | None) -> Timeouts:
        """A number sets the read timeout (the one users tune); None keeps the defaults."""
        if value is None:
            return cls()
        if isinstance(value, Timeouts):
            return value
        if value <= 0:
            raise ConfigurationError(
                f"timeout must be a positive number of seconds, not {value!r}."
            )
        return cls(read=float(value))


def resolve_api_url(base_url: str | None = None) -> str:
    """The base URL as configured (argument > environment > DeepInfra), validated and
    without a trailing slash; ``/v1/openai`` is kept, since it tells DeepInfra's routes."""
    raw = base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
    url = raw.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        where = "base_url" if base_url else BASE_URL_ENV
        raise ConfigurationError(
            f"{where} must be an http(s) URL such as {DEFAULT_BASE_URL} or "
            f"http://127.0.0.1:8000/v1, not {raw!r}."
        )
    return url


def resolve_base_url(base_url: str | None = None) -> str:
    """DeepInfra's API root: the configured URL without a trailing ``/v1/openai``."""
    url = resolve_api_url(base_url)
    if urlsplit(url).path.endswith(_OPENAI_SUFFIX):
        url = url[: -len(_OPENAI_SUFFIX)]
    return url


def resolve_flavour(flavour: str | None = None) -> str:
    """The forced flavour (argument > ``DEEPINFRA_FLAVOUR``), or "auto" to decide by URL."""
    raw = flavour or os.environ.get(FLAVOUR_ENV, "").strip() or "auto"
    value = raw.strip().lower()
    if value not in FLAVOURS:
        where = "flavour" if flavour else FLAVOUR_ENV
        raise ConfigurationError(f"{where} must be one of {', '.join(FLAVOURS)}, not {raw!r}.")
    return value


def env_text(name: str) -> str:
    """An environment variable's value without surrounding blanks ("" when unset)."""
    return os.environ.get(name, "").strip()


def resolve_replay_speed(speed: float | None = None) -> float:
    """The replay pace (argument > ``DEEPINFRA_MAGIC_REPLAY_SPEED`` > 1): a number ≥ 0."""
    where, raw = ("replay_speed", repr(speed)) if speed is not None else (REPLAY_SPEED_ENV, "")
    if speed is None:
        raw = env_text(REPLAY_SPEED_ENV)
        if not raw:
            return DEFAULT_REPLAY_SPEED
        try:
            speed = float(raw)
        except ValueError:
            raise ConfigurationError(
                f"{where} must be a number (1 = recorded pace, 0 = instant), not {raw!r}."
            ) from None
        raw = repr(raw)
    if not speed >= 0:
        raise ConfigurationError(f"{where} must not be negative, not {raw}.")
    return float(speed)


def key_source() -> str | None:
    """Which environment variable provides a key (its name, never its value)."""
    for name in KEY_ENV_VARS:
        if os.environ.get(name, "").strip():
            return name
    return None


def resolve_key(api_key: str | Secret | None = None) -> Secret | None:
    """The key to send: an explicit one, else the first non-empty environment variable."""
    if isinstance(api_key, Secret):
        return api_key if api_key else None
    if api_key is not None:
        return Secret(api_key.strip()) if api_key.strip() else None
    name = key_source()
    return Secret(os.environ[name].strip()) if name else None


def missing_key_error() -> MissingAPIKeyError:
    """The error for a request that needs a key when none is configured."""
    return MissingAPIKeyError(
        "No DeepInfra API key: set DEEPINFRA_API_KEY (or DEEPINFRA_API_TOKEN) before "
        "starting Jupyter, or run %deepinfra_login; for a keyless demo use "
        "%deepinfra_replay with a recording."
    )
