"""Every default (the retry policy's too), where the base URL and the API key come from,
and the one place that holds a key value.

Base URL: argument > ``DEEPINFRA_BASE_URL`` > ``https://api.deepinfra.com``.
Key: argument > ``DEEPINFRA_API_KEY`` > ``DEEPINFRA_API_TOKEN``.
The client, the g4f provider and the magics' settings all default to the values here;
tests/magics/test_settings.py holds the README's settings table to them.
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
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
    "IMAGE_MIME_TYPES",
    "KEY_ENV_VARS",
    "MAP_STORE_FILE",
    "MAX_IMAGE_PIXELS",
    "RECORD_ENV",
    "REPLAY_ENV",
    "REPLAY_SPEED_ENV",
    "RETRY_STATUSES",
    "TABLE_CHAR_BUDGET",
    "TRACEBACK_CHAR_BUDGET",
    "RetryPolicy",
    "Secret",
    "Timeouts",
    "env_text",
    "key_source",
    "missing_key_error",
    "resolve_api_url",
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
# The image types every notebook frontend shows: the one list of the package.
IMAGE_MIME_TYPES = ("image/png", "image/jpeg", "image/webp", "image/gif")
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


# Which answers are worth sending again, by kind of request. DeepInfra's own Python SDK
# retries statuses only on GETs, "because a 502/503/504 on a POST may have already ...
# billed an inference": a generated image is paid for even if its answer is lost, so an
# image POST is repeated only after a 429 (refused, so nothing ran). A chat request is
# repeated only before any reply byte, after a 429 or a gateway failure. A 500 whose body
# names its cause ("Requested input length … exceeds maximum …") fails the same way again.
RETRY_STATUSES: Mapping[str, frozenset[int]] = {
    "read": frozenset({429, 500, 502, 503, 504}),
    "chat": frozenset({429, 502, 503, 504}),
    "billable": frozenset({429}),
}


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff with jitter; honours Retry-After up to a ceiling.

    A model that is still loading (423) is waited for separately, up to ``loading_timeout``
    seconds in all, polling every ``loading_delay`` seconds (or as Retry-After says).
    """

    max_retries: int = DEFAULT_MAX_RETRIES
    base_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 30.0
    loading_timeout: float = 120.0
    loading_delay: float = 5.0

    def delay(self, attempt: int, *, retry_after: float | None = None) -> float | None:
        """Seconds to wait before retry number ``attempt`` (1-based), or None to give up."""
        if attempt > self.max_retries:
            return None
        if retry_after is not None:
            if retry_after > self.max_retry_after:
                return None
            # A little jitter, so a room of clients told the same wait do not return as a herd.
            return retry_after * random.uniform(1.0, 1.2)
        backoff: float = min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))
        return backoff * random.uniform(0.75, 1.25)

    def loading_wait(self, polls: int, *, retry_after: float | None = None) -> float | None:
        """Seconds to wait before asking a loading model again after ``polls`` tries, or
        None once ``loading_timeout`` is used up (each poll counts ``loading_delay`` at
        least, so a server saying "Retry-After: 0" is not asked without end)."""
        if (polls + 1) * self.loading_delay > self.loading_timeout:
            return None
        if retry_after is None:
            return self.loading_delay
        return min(retry_after, self.loading_timeout)

    def should_retry_status(self, status: int, kind: str = "read", body: bytes = b"") -> bool:
        """Whether an error answer is worth sending again (see RETRY_STATUSES)."""
        if status not in RETRY_STATUSES.get(kind, RETRY_STATUSES["billable"]):
            return False
        from ._status import names_cause  # the error tables load with the first error

        return not (status == 500 and names_cause(body))


def resolve_api_url(base_url: str | None = None) -> str:
    """The base URL as configured (argument > environment > DeepInfra), validated and
    without a trailing slash; ``/v1/openai`` is kept, since it tells DeepInfra's routes
    (``_routes.Routes.for_url`` is the one place that strips it)."""
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
