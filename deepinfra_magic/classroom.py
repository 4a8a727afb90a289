"""Classroom mode, the library half: scoped tokens, their scope, the seats, and refusals.

Rules it keeps:

- Sans-I/O for the network: every request is a flow (see ``_flows``) that a client drives
  with ``run_flow``/``arun_flow``. The only I/O here is the seats files it is asked to
  write or read, and the notebook it is asked to read.
- A token is a secret. It lives in what ``mint_flow`` returns, in ``Seat.token``, in the
  seats file and in the printable page (both created with mode 0600 from the start, never
  chmod-ed after). No repr, str, error or Markdown of this module shows more than its last
  4 characters.
- No IPython, no httpx; every user-facing default is a constant in ``_config`` or here.

Sources: DeepInfra's OpenAPI document (``ScopedJWTIn``, ``ScopedJWTOut``,
``InspectScopedJWTOut``, ``ApiToken``, ``UsageOut``) and DeepInfra's scoped-JWT docs
(https://deepinfra.com/docs/advanced/scoped_jwt, https://docs.deepinfra.com/account/authentication):
a minted token reads ``jwt:<header>.<claims>.<signature>``, signed HS256; hand-signed tokens
carry ``sub``, ``model`` and ``exp`` claims. The claims of a token minted by the API are not
documented, so they are read where present (``exp``, ``model``/``models``,
``spending_limit``) and ``GET /v1/scoped-jwt`` is the authority. How a refusal looks is not
documented either: ``refusal_reason`` reads the words of the body, whatever the status.
"""

from __future__ import annotations

import base64
import binascii
import csv
import dataclasses
import html
import io
import json
import os
import re
import shlex
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from enum import Enum
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from ._config import DEFAULT_IMAGE_MODEL, DEFAULT_MODEL
from ._flows import Flow
from ._protocol import ApiRequest, parse_json
from .errors import (
    APIStatusError,
    DeepInfraError,
    DisallowedModelError,
    InvalidArgumentError,
    InvalidResponseError,
    ModelNotAllowedError,
    TokenBudgetError,
    TokenExpiredError,
)

__all__ = [
    "API_TOKENS_PATH",
    "JWT_PREFIX",
    "LOGIN_LINE",
    "MAX_LIFETIME",
    "MAX_SEATS",
    "SCOPED_JWT_PATH",
    "SEATS_COLUMNS",
    "USAGE_PREFIX",
    "ApiKeyInfo",
    "KeyUsage",
    "RefusalReason",
    "Seat",
    "TokenScope",
    "api_keys_flow",
    "check_model_allowed",
    "choose_key_name",
    "describe_scope",
    "inspect_flow",
    "key_usage_flow",
    "looks_like_scoped_token",
    "mint_flow",
    "mint_request",
    "mint_seats_flow",
    "models_from_notebook",
    "read_seats_csv",
    "refusal_reason",
    "scoped_token_error",
    "seats_html",
    "seats_table",
    "token_claims",
    "token_tail",
    "write_seats_csv",
    "write_seats_html",
]

SCOPED_JWT_PATH = "/v1/scoped-jwt"  # OpenAPI: POST (ScopedJWTIn → ScopedJWTOut), GET ?jwtoken=
API_TOKENS_PATH = "/v1/api-tokens"  # OpenAPI: GET → list[ApiToken]
USAGE_PREFIX = "/payment/usage/"  # OpenAPI: GET /payment/usage/{api_token}?from= → UsageOut
JWT_PREFIX = "jwt:"  # DeepInfra's docs: {"token": "jwt:eyJhbGciOiJIUzI1NiIs..."}
SEATS_COLUMNS = ("seat", "token", "models", "expires_at", "dollars")
MAX_LIFETIME = timedelta(days=365)  # DeepInfra's docs: "no expiration -- ATM that means 1 year"
MAX_SEATS = 500  # a class, not a bulk key factory
LOGIN_LINE = "%deepinfra_login"  # asks for the token without echo: it never enters a cell
_JWT = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")
_TAIL = 4


# --- tokens ------------------------------------------------------------------------------


def looks_like_scoped_token(key: str) -> bool:
    """True for a DeepInfra scoped token (``jwt:`` and a JWT) or a bare JWT."""
    key = key.strip()
    body = key[len(JWT_PREFIX) :] if key.startswith(JWT_PREFIX) else key
    return body.startswith("eyJ") and bool(_JWT.match(body))


def token_tail(token: str) -> str:
    """The token as shown anywhere but the handout: its last 4 characters."""
    return "…" + token.strip()[-_TAIL:]


def _b64url(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def token_claims(token: str) -> dict[str, Any] | None:
    """The claims of a scoped token, decoded locally without verifying the signature (the
    secret is the teacher's key); None when the token is not a readable JWT."""
    if not looks_like_scoped_token(token):
        return None
    body = token.strip().removeprefix(JWT_PREFIX)
    try:
        claims = json.loads(_b64url(body.split(".")[1]))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    return claims if isinstance(claims, dict) else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _utc(timestamp: Any) -> datetime | None:
    seconds = _number(timestamp)
    return None if seconds is None else datetime.fromtimestamp(seconds, tz=timezone.utc)


def _models(value: Any) -> tuple[str, ...] | None:
    if isinstance(value, str) and value:
        return (value,)
    if isinstance(value, list) and value:
        return tuple(str(model) for model in value)
    return None


@dataclasses.dataclass(frozen=True)
class TokenScope:
    """What a scoped token allows: ``models`` (None: any), ``expires_at`` (aware, UTC; None:
    unknown) and ``spending_limit`` in dollars (None: no limit)."""

    models: tuple[str, ...] | None = None
    expires_at: datetime | None = None
    spending_limit: float | None = None

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> TokenScope:
        """From decoded claims: ``exp``, ``models`` (or the documented single ``model``),
        ``spending_limit`` where the token carries them."""
        return cls(
            models=_models(claims.get("models", claims.get("model"))),
            expires_at=_utc(claims.get("exp")),
            spending_limit=_number(claims.get("spending_limit")),
        )

    @classmethod
    def from_inspect(cls, payload: Any) -> TokenScope:
        """From ``GET /v1/scoped-jwt``'s InspectScopedJWTOut (``expires_at`` is required)."""
        if not isinstance(payload, Mapping) or _number(payload.get("expires_at")) is None:
            raise InvalidResponseError(
                "The token inspection answer had no expires_at; check that the base URL is "
                "DeepInfra's API."
            )
        return cls(
            models=_models(payload.get("models")),
            expires_at=_utc(payload.get("expires_at")),
            spending_limit=_number(payload.get("spending_limit")),
        )

    @classmethod
    def of_token(cls, token: str) -> TokenScope | None:
        """The scope a token's own claims state, or None when they cannot be read."""
        claims = token_claims(token)
        return None if claims is None else cls.from_claims(claims)

    def allows(self, model: str) -> bool:
        """True when the token may be used with ``model``."""
        return self.models is None or model in self.models

    def expired(self, now: datetime) -> bool:
        """True when the token's expiry is known and not after ``now``."""
        return self.expires_at is not None and self.expires_at <= now


def _duration(delta: timedelta) -> str:
    minutes = max(0, round(delta.total_seconds() / 60))
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{round(hours / 24)} days"


def _clock(moment: datetime, now: datetime) -> str:
    local = moment.astimezone(now.tzinfo) if now.tzinfo else moment
    if local.date() == now.date():
        return local.strftime("%H:%M")
    return f"{local.day} {local.strftime('%b %H:%M')}"


def _money(dollars: float) -> str:
    return f"${dollars:,.2f}"


def describe_scope(scope: TokenScope, now: datetime, *, budget: bool = True) -> str:
    """One line: "Token for M and 1 more · expires 16:30 (2 h 10 min) · up to $2.00";
    ``now`` (aware) sets the clock shown; ``budget=False`` leaves the cap out."""
    now = now if now.tzinfo is not None else now.astimezone()  # naive: the local clock
    if scope.models is None:
        parts = ["Token for any model"]
    else:
        more = len(scope.models) - 1
        parts = [f"Token for {scope.models[0]}" + (f" and {more} more" if more else "")]
    if scope.expires_at is not None:
        when = _clock(scope.expires_at, now)
        if scope.expired(now):
            parts.append(f"expired {when} ({_duration(now - scope.expires_at)} ago)")
        else:
            parts.append(f"expires {when} ({_duration(scope.expires_at - now)})")
    if budget:
        limit = scope.spending_limit
        parts.append("no spending limit" if limit is None else f"up to {_money(limit)}")
    return " · ".join(parts)


def check_model_allowed(scope: TokenScope, model: str) -> None:
    """Raise DisallowedModelError (a mistake found before any request, so an
    InvalidArgumentError) when the scope excludes ``model``."""
    if scope.allows(model):
        return
    allowed = list(scope.models or ())
    raise DisallowedModelError(
        f"This token does not allow '{model}'; it allows {_listing(allowed)}. Use -m with one "
        "of those, or ask the teacher for a token that includes it.",
        model=model,
        allowed_models=allowed,
    )


def _listing(models: Sequence[str]) -> str:
    return ", ".join(models) if models else "no model it names"


# --- refusals ----------------------------------------------------------------------------


class RefusalReason(Enum):
    """Why a server refused a scoped token (or a LiteLLM virtual key), read from its words."""

    EXPIRED = "expired"
    BUDGET = "budget"
    MODEL = "model"


# Words, not statuses: DeepInfra does not document its refusals, and LiteLLM answers a
# spent budget with 400 or 429, "Budget has been exceeded! Current cost: X, Max budget: Y"
# (BerriAI/litellm issues #4208, #22726), a model outside a key's list with 401, "key not
# allowed to access model. This key can only access models=['a']. Tried to access b"
# (BerriAI/litellm #15228). The patterns stay clear of "rate limit exceeded" and of a
# route refusal ("not allowed to call this route"), and of the remedies _status adds to
# its messages, so they can be matched on an error's message as well as on a body.
_REFUSALS = (
    (RefusalReason.BUDGET, re.compile(r"(?i)spending[ _]limit|\bbudget\b|\bspend(ing)? cap")),
    (RefusalReason.EXPIRED, re.compile(r"(?i)\bexpired?\b|\bexpir(y|ation)\b")),
    (RefusalReason.MODEL, re.compile(
        r"(?i)\bmodels?\b.{0,100}?\bnot (allowed|permitted|authori[sz]ed)\b|"
        r"\bnot (allowed|permitted|authori[sz]ed) to (access|use) (this |the )?model|"
        r"allowed models|can only access models"
    )),
)  # fmt: skip
_CURRENT_COST = re.compile(r"(?i)current cost:\s*\$?([0-9.]+)")
_MAX_BUDGET = re.compile(r"(?i)max budget:\s*\$?([0-9.]+)")
_ONLY_MODELS = re.compile(r"(?i)can only access models=\[([^\]]*)\]")  # LiteLLM's list


def refusal_reason(text: str) -> RefusalReason | None:
    """Which scoped-token refusal ``text`` (an error body or message) describes, if any."""
    for reason, pattern in _REFUSALS:
        if pattern.search(text):
            return reason
    return None


def _figure(pattern: re.Pattern[str], text: str) -> float | None:
    match = pattern.search(text)
    try:
        return float(match.group(1)) if match else None
    except ValueError:
        return None


def scoped_token_error(
    error: APIStatusError,
    *,
    scope: TokenScope | None,
    model: str | None,
    spent: float | None,
    now: datetime,
) -> DeepInfraError:
    """The refusal of a request sent with a scoped token, as TokenExpiredError,
    TokenBudgetError or ModelNotAllowedError when its words say which; else ``error``.

    ``spent`` is the session's own tally in dollars (the server's figure wins if it gives
    one); ``scope`` fills in when the token expired and what it allows."""
    reason = refusal_reason(error.message)
    common: dict[str, Any] = {"status_code": error.status_code, "request_id": error.request_id}
    if reason is RefusalReason.EXPIRED:
        expires_at = scope.expires_at if scope else None
        when = f" at {_clock(expires_at, now)}" if expires_at else ""
        return TokenExpiredError(
            f"This token expired{when} (HTTP {error.status_code}); ask the teacher for a new "
            "one, or answer from a recording with %deepinfra_replay.",
            expires_at=expires_at,
            **common,
        )
    if reason is RefusalReason.BUDGET:
        spent = _figure(_CURRENT_COST, error.message) or spent
        limit = _figure(_MAX_BUDGET, error.message)
        if limit is None and scope is not None:
            limit = scope.spending_limit
        figures = _spend_phrase(spent, limit)
        return TokenBudgetError(
            f"This token's spending limit is used up{figures} (HTTP {error.status_code}); ask "
            "the teacher for more, or answer from a recording with %deepinfra_replay.",
            spent=spent,
            spending_limit=limit,
            **common,
        )
    if reason is RefusalReason.MODEL:
        allowed = list(scope.models or ()) if scope else _models_named(error.message)
        named = f"'{model}'" if model else "this model"
        listing = f"; it allows {_listing(allowed)}" if allowed else ""
        return ModelNotAllowedError(
            f"This token does not allow {named}{listing} (HTTP {error.status_code}). Use -m "
            "with an allowed model.",
            model=model,
            allowed_models=allowed,
            **common,
        )
    return error


def _models_named(text: str) -> list[str]:
    """The models a LiteLLM refusal lists (``models=['a', 'b']``), if it lists them."""
    match = _ONLY_MODELS.search(text)
    if not match:
        return []
    return [name.strip(" '\"") for name in match.group(1).split(",") if name.strip(" '\"")]


def _spend_phrase(spent: float | None, limit: float | None) -> str:
    if spent is not None and limit is not None:
        return f" ({_money(spent)} of {_money(limit)} spent)"
    if limit is not None:
        return f" (its cap is {_money(limit)})"
    if spent is not None:
        return f" ({_money(spent)} spent in this session)"
    return ""


# --- requests (flows) -------------------------------------------------------------------


def _epoch(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise InvalidArgumentError("expires_at needs a time zone (use an aware datetime).")
    return int(moment.timestamp())


def mint_request(
    key_name: str,
    *,
    models: Sequence[str] | None,
    expires_at: datetime,
    spending_limit: float | None,
    now: datetime,
    relative: bool = False,
) -> ApiRequest:
    """``POST /v1/scoped-jwt`` (ScopedJWTIn), after checking every field locally.
    ``relative`` sends the expiry as ``expires_delta`` (whole seconds from ``now``), so the
    request is the same on every run (a recording replays it)."""
    expires = _epoch(expires_at)
    if now.tzinfo is None:
        raise InvalidArgumentError("now needs a time zone (use an aware datetime).")
    if not key_name or not key_name.strip():
        raise InvalidArgumentError("No API key name: pass --key-name NAME (see your dashboard).")
    if models is not None and (not models or not all(isinstance(m, str) and m for m in models)):
        raise InvalidArgumentError("models must be a non-empty list of model names, or None.")
    if expires_at <= now:
        raise InvalidArgumentError("The expiry is in the past: give a later --until or --hours.")
    if expires_at - now > MAX_LIFETIME:
        raise InvalidArgumentError("Tokens last at most a year: give an earlier --until.")
    if spending_limit is not None and not spending_limit > 0:
        raise InvalidArgumentError(f"--dollars must be more than 0, not {spending_limit!r}.")
    body: dict[str, Any] = {"api_key_name": key_name.strip()}
    if relative:
        body["expires_delta"] = round((expires_at - now).total_seconds())
    else:
        body["expires_at"] = expires
    if models is not None:
        body["models"] = list(models)
    if spending_limit is not None:
        body["spending_limit"] = float(spending_limit)
    # "billable": sent again only after a 429, as a lost answer would mint a second token.
    return ApiRequest("POST", SCOPED_JWT_PATH, json=body, kind="billable")


def mint_flow(request: ApiRequest) -> Flow[str]:
    """Send one mint request (made and checked by :func:`mint_request`) with the teacher's
    key; returns the token (ScopedJWTOut)."""
    raw = yield request
    payload = parse_json(raw, "scoped token")
    token = payload.get("token") if isinstance(payload, Mapping) else None
    if not isinstance(token, str) or not token:
        raise InvalidResponseError("The scoped-token answer had no token; run it again.")
    return token


def mint_seats_flow(
    seats: int,
    key_name: str,
    *,
    models: Sequence[str] | None,
    expires_at: datetime,
    dollars: float | None,
    now: datetime,
    relative: bool = False,
) -> Flow[list[Seat]]:
    """Mint one token per seat (numbered from 1), all with the same scope except that seat
    N expires N-1 seconds early: tokens with the same claims would be the same token (the
    documented claims hold no nonce), and so share one spending limit. ``relative``: the
    expiry is sent as whole seconds from ``now`` (see ``mint_request``)."""
    if not 1 <= seats <= MAX_SEATS:
        raise InvalidArgumentError(f"--seats must be between 1 and {MAX_SEATS}, not {seats}.")
    if relative:  # whole seconds from now, so every run sends the same requests
        expires_at = now + timedelta(seconds=round((expires_at - now).total_seconds()))
        first = expires_at
    else:
        first = expires_at.replace(microsecond=0)
    last = first - timedelta(seconds=seats - 1)
    mint_request(key_name, models=models, expires_at=last, spending_limit=dollars, now=now)
    minted: list[Seat] = []  # every argument checked above, before the first request
    for number in range(1, seats + 1):
        expires = first - timedelta(seconds=number - 1)
        token = yield from mint_flow(
            mint_request(
                key_name, models=models, expires_at=expires, spending_limit=dollars, now=now,
                relative=relative,
            )
        )  # fmt: skip
        if any(seat.token == token for seat in minted):
            raise InvalidResponseError(
                f"The API gave seat {number} the same token as an earlier seat; run it again."
            )
        scope = TokenScope(tuple(models) if models else None, expires, dollars)
        minted.append(Seat(number, token, scope))
    return minted


def inspect_flow(token: str) -> Flow[TokenScope]:
    """``GET /v1/scoped-jwt?jwtoken=...`` (InspectScopedJWTOut). DeepInfra's docs send it
    with the signing key; the token rides in the query string, so a recording of this
    request holds the token."""
    raw = yield ApiRequest("GET", f"{SCOPED_JWT_PATH}?{urlencode({'jwtoken': token.strip()})}")
    return TokenScope.from_inspect(parse_json(raw, "token inspection"))


@dataclasses.dataclass(frozen=True)
class ApiKeyInfo:
    """One of the account's API keys (ApiToken) without its secret value."""

    name: str
    token_id: str | None
    created_at: int | None
    current: bool  # True when it is the key the request was sent with


def api_keys_flow(is_current: Callable[[str], bool]) -> Flow[list[ApiKeyInfo]]:
    """``GET /v1/api-tokens``: the account's keys by name; ``is_current`` is asked about each
    ``token`` value (the client compares it with its own key) and the values are dropped."""
    raw = yield ApiRequest("GET", API_TOKENS_PATH)
    payload = parse_json(raw, "API key list")
    if not isinstance(payload, list):
        raise InvalidResponseError("The API key list was not a list; pass --key-name NAME.")
    keys = []
    for entry in payload:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
            continue
        value = entry.get("token")
        created = _number(entry.get("created_at"))
        keys.append(
            ApiKeyInfo(
                name=entry["name"],
                token_id=str(entry["token_id"]) if entry.get("token_id") else None,
                created_at=None if created is None else int(created),
                current=isinstance(value, str) and bool(value) and is_current(value),
            )
        )
    return keys


def choose_key_name(keys: Sequence[ApiKeyInfo], given: str | None = None) -> str:
    """``given``, else the name of the key in use, else the account's only key; otherwise a
    one-line InvalidArgumentError asking for --key-name."""
    if given:
        return given
    current = [key.name for key in keys if key.current]
    if len(current) == 1:
        return current[0]
    if len(keys) == 1:
        return keys[0].name
    names = ", ".join(sorted({key.name for key in keys})) or "none listed"
    raise InvalidArgumentError(
        f"Which API key signs the tokens? Pass --key-name NAME (the account's keys: {names})."
    )


@dataclasses.dataclass(frozen=True)
class KeyUsage:
    """What ``/payment/usage/{api_token}`` says a key spent: dollars per ``YYYY.MM`` period."""

    months: tuple[tuple[str, float], ...]

    @property
    def total(self) -> float:
        """Dollars over every period of the answer."""
        return sum(dollars for _, dollars in self.months)


def key_usage_flow(api_token: str, since: str = "current") -> Flow[KeyUsage]:
    """``GET /payment/usage/{api_token}?from=...`` (UsageOut, ``total_cost`` in cents).
    Pass the key's ``token_id`` where the listing gives one: the path is logged and recorded."""
    path = f"{USAGE_PREFIX}{quote(api_token, safe='')}?{urlencode({'from': since})}"
    raw = yield ApiRequest("GET", path)
    payload = parse_json(raw, "usage")
    months = payload.get("months") if isinstance(payload, Mapping) else None
    if not isinstance(months, list):
        raise InvalidResponseError("The usage answer had no months.")
    periods = []
    for month in months:
        cents = _number(month.get("total_cost")) if isinstance(month, Mapping) else None
        if cents is not None:
            periods.append((str(month.get("period") or ""), cents / 100))
    return KeyUsage(tuple(periods))


# --- seats -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, repr=False)
class Seat:
    """One seat of a class: its number, its token and the token's scope."""

    number: int
    token: str
    scope: TokenScope

    @property
    def tail(self) -> str:
        """The token's last 4 characters, as every summary shows it."""
        return token_tail(self.token)

    def __repr__(self) -> str:
        return f"Seat({self.number}, token={self.tail!r}, scope={self.scope!r})"

    __str__ = __repr__


def _inside_examples(path: Path) -> bool:
    return "examples" in path.resolve().parent.parts


def _write_private(path: str | os.PathLike[str], text: str, allow_examples: bool) -> Path:
    """Write ``text`` to a file that is 0600 from its creation: a new file opened with that
    mode, then moved over ``path`` (an existing file keeps its mode if overwritten)."""
    target = Path(path)
    if not allow_examples and _inside_examples(target):
        raise InvalidArgumentError(
            f"{target} is inside an examples folder, which gets shared: write the seats "
            "elsewhere (or pass allow_examples=True)."
        )
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="") as file:
            file.write(text)
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return target


def _iso(moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_seats_csv(
    path: str | os.PathLike[str], seats: Iterable[Seat], *, allow_examples: bool = False
) -> Path:
    """The seats file (columns SEATS_COLUMNS, models space-separated), mode 0600."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(SEATS_COLUMNS)
    for seat in seats:
        scope = seat.scope
        limit = "" if scope.spending_limit is None else f"{scope.spending_limit:.2f}"
        models = " ".join(scope.models or ())
        writer.writerow([seat.number, seat.token, models, _iso(scope.expires_at), limit])
    return _write_private(path, out.getvalue(), allow_examples)


def _row_error(path: Path, line: int, what: str) -> InvalidArgumentError:
    return InvalidArgumentError(
        f"{path}, line {line}: {what}; is it a seats file from %deepinfra_classroom create?"
    )


def read_seats_csv(path: str | os.PathLike[str]) -> list[Seat]:
    """The seats of a file written by ``write_seats_csv``."""
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidArgumentError(f"Cannot read {source}: {exc.strerror}.") from None
    reader = csv.DictReader(io.StringIO(text))
    missing = set(SEATS_COLUMNS) - set(reader.fieldnames or ())
    if missing:
        raise _row_error(source, 1, f"missing column(s) {', '.join(sorted(missing))}")
    seats = []
    for row in reader:
        line = reader.line_num
        try:
            number = int(row["seat"])
            expires = row["expires_at"].strip().replace("Z", "+00:00")
            dollars = row["dollars"].strip()
            scope = TokenScope(
                models=tuple(row["models"].split()) or None,
                expires_at=datetime.fromisoformat(expires) if expires else None,
                spending_limit=float(dollars) if dollars else None,
            )
        except (AttributeError, TypeError, ValueError):
            raise _row_error(
                source, line, "a seat number, expiry or amount is unreadable"
            ) from None
        token = (row["token"] or "").strip()
        if not token:
            raise _row_error(source, line, f"seat {number} has no token")
        seats.append(Seat(number, token, scope))
    return seats


def seats_html(seats: Iterable[Seat], *, title: str = "Seats", now: datetime | None = None) -> str:
    """A printable page, one card per seat with its token and the login line (the handout)."""
    cards = []
    for seat in seats:
        scope = seat.scope
        line = describe_scope(scope, now or datetime.now(timezone.utc))
        cards.append(
            '<section class="card">'
            f"<h2>Seat {seat.number}</h2>"
            f"<p>{html.escape(line)}</p>"
            f"<p>In the notebook, run <code>{LOGIN_LINE}</code> and paste this token when "
            "asked (do not type it into a cell):</p>"
            f'<p class="token"><code>{html.escape(seat.token)}</code></p>'
            "</section>"
        )
    style = (
        "body{font-family:sans-serif}.card{border:1px dashed #888;padding:1em;margin:1em 0;"
        "page-break-inside:avoid}.token code{word-break:break-all;font-size:0.9em}"
    )
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{style}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{''.join(cards)}</body></html>\n"
    )


def write_seats_html(
    path: str | os.PathLike[str],
    seats: Iterable[Seat],
    *,
    allow_examples: bool = False,
    now: datetime | None = None,
) -> Path:
    """The printable page of ``seats_html``, written 0600 like the seats file."""
    return _write_private(path, seats_html(seats, now=now), allow_examples)


def seats_table(seats: Iterable[Seat], now: datetime | None = None) -> str:
    """A Markdown summary, one row per seat, each token shown as its last 4 characters."""
    moment = now or datetime.now(timezone.utc)
    rows = ["| Seat | Token | Models | Expires | Cap |", "|---:|---|---|---|---:|"]
    for seat in seats:
        scope = seat.scope
        models = ", ".join(scope.models) if scope.models else "any"
        expires = _clock(scope.expires_at, moment) if scope.expires_at else "—"
        cap = "—" if scope.spending_limit is None else _money(scope.spending_limit)
        rows.append(f"| {seat.number} | `{seat.tail}` | {models} | {expires} | {cap} |")
    return "\n".join(rows)


# --- the models a notebook uses -------------------------------------------------------------

_TEXT_MAGICS = ("%%deepinfra", "%deepinfra_explain", "%%deepinfra_map")
_IMAGE_MAGICS = ("%deepinfra_image", "%%deepinfra_image")
_CONFIG = re.compile(
    r"^%config\s+DeepInfraMagics\.(default_model|default_image_model)\s*=\s*(['\"])(.+?)\2\s*$"
)


def _model_option(words: Sequence[str]) -> str | None:
    """The value of ``-m``/``--model`` among a magic's words (the last one wins)."""
    found = None
    for index, word in enumerate(words):
        if word in ("-m", "--model") and index + 1 < len(words):
            found = words[index + 1]
        elif word.startswith("--model="):
            found = word.partition("=")[2]
        elif word.startswith("-m") and len(word) > 2 and not word.startswith("--"):
            found = word[2:]
    return found


def _words(line: str) -> list[str]:
    try:
        return shlex.split(line)
    except ValueError:  # an unbalanced quote in a prompt: the options come first anyway
        return line.split()


def models_from_notebook(path: str | os.PathLike[str]) -> list[str]:
    """The models a notebook's deepinfra magics use, in order of first use: their ``-m``
    options, and the default text or image model (as ``%config`` last set it) where a
    magic runs without one."""
    source = Path(path)
    try:
        notebook = json.loads(source.read_text(encoding="utf-8"))
        cells = notebook["cells"]
    except (OSError, ValueError, KeyError, TypeError):
        raise InvalidArgumentError(f"{source} is not a readable .ipynb notebook.") from None
    defaults = {"default_model": DEFAULT_MODEL, "default_image_model": DEFAULT_IMAGE_MODEL}
    used: dict[str, None] = {}
    for cell in cells:
        if not isinstance(cell, Mapping) or cell.get("cell_type") != "code":
            continue
        text = cell.get("source", "")
        text = "".join(text) if isinstance(text, list) else str(text)
        for line in text.splitlines():
            line = line.strip()
            config = _CONFIG.match(line)
            if config:
                defaults[config.group(1)] = config.group(3)
                continue
            words = _words(line)
            if not words:
                continue
            if words[0] in _TEXT_MAGICS:
                used.setdefault(_model_option(words[1:]) or defaults["default_model"])
            elif words[0] in _IMAGE_MAGICS:
                used.setdefault(_model_option(words[1:]) or defaults["default_image_model"])
    return list(used)
