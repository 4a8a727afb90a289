"""The fake server's scoped JWTs: minting, inspection, and their limits on inference.

Sources, cited at each behaviour below:

- [OAPI] ../shared/reference/deepinfra-openapi.json: ``POST /v1/scoped-jwt`` (``ScopedJWTIn``
  → ``ScopedJWTOut``), ``GET /v1/scoped-jwt?jwtoken=`` (``InspectScopedJWTOut``),
  ``GET /v1/api-tokens`` (a list of ``ApiToken``: token, created_at, name, token_id),
  ``GET /payment/usage/{api_token}?from=`` (``UsageOut``: months of ``UsageMonth`` with
  ``total_cost`` in cents, ``initial_month``). All marked HTTPBearer.
- [DI-jwt] https://deepinfra.com/docs/advanced/scoped_jwt (also docs.deepinfra.com/account/
  authentication): a minted token reads ``jwt:eyJhbGciOiJIUzI1NiIsImtpZC…``; HS256 only,
  signed with the API key as the secret; header ``{"alg": "HS256", "kid":
  "di:<user id>:<base64 of the key's name>", "typ": "JWT"}``; claims ``sub`` (the user id),
  ``model``, ``exp``; the example key is named ``auto`` and the user ``di:1000000000000``;
  models omitted → any model, expiry omitted → one year, spending limit omitted → none;
  inspect with the signing key; usage counts toward the signing key; a token works "in all
  inference endpoints in place of an API key, but only if the restrictions are met".

Not documented, so the fake's own choices (the client must depend on none of them): the
claims beyond ``sub``/``model``/``exp`` (this fake adds ``models`` and ``spending_limit``);
how a refusal looks (``scoped_refusal`` picks a shape, see ``REFUSAL_SHAPES``); that a
scoped token cannot mint, list keys or read usage (403 here); the answer to an unknown
``api_key_name`` (400 here).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from .wire import detail_error, openai_error, validation_error

if TYPE_CHECKING:
    from .faults import ServerConfig
    from .server import _Handler

SCOPED_JWT_PATH = "/v1/scoped-jwt"
API_TOKENS_PATH = "/v1/api-tokens"
USAGE_PREFIX = "/payment/usage/"
PREFIXES = (SCOPED_JWT_PATH, API_TOKENS_PATH, USAGE_PREFIX)
JWT_PREFIX = "jwt:"  # [DI-jwt]
USER_ID = "di:1000000000000"  # [DI-jwt]'s example user
DEFAULT_KEY_NAME = "auto"  # [DI-jwt]'s example key name
YEAR = 365 * 24 * 3600  # [DI-jwt] "no expiration -- ATM that means 1 year"

REFUSAL_SHAPES = ("by_reason", "401", "402", "403", "openai_403")
"""How a refused scoped token is answered (``ServerConfig.scoped_refusal``); undocumented, so
several plausible shapes with different wordings:

- ``by_reason``: expired → 401, spending limit → 402, model → 403, ``{"detail": "..."}``
- ``401`` / ``402``: every refusal with that status, ``{"detail": "..."}``, other wording
- ``403``: every refusal 403, ``{"detail": {"error": "..."}}`` (the S13 shape)
- ``openai_403``: every refusal 403 in the OpenAI envelope ``{"error": {"message": ...}}``
"""
_WORDS = {
    "expired": ("Scoped JWT has expired", "jwt expired"),
    "budget": ("Scoped JWT spending limit exceeded", "spending limit reached for this token"),
    "model": ("Model {model} is not allowed by this scoped JWT", "model not allowed: {model}"),
}
_STATUS_BY_REASON = {"expired": 401, "budget": 402, "model": 403}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64url(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _segment(obj: dict[str, Any]) -> str:
    return _b64url(json.dumps(obj, separators=(",", ":")).encode())


def sign(claims: dict[str, Any], key_name: str, key: str) -> str:
    """A real HS256 JWT with DeepInfra's header ([DI-jwt]), signed with ``key``, prefixed
    ``jwt:``."""
    kid = f"{USER_ID}:{base64.b64encode(key_name.encode()).decode()}"
    signing_input = f"{_segment({'alg': 'HS256', 'kid': kid, 'typ': 'JWT'})}.{_segment(claims)}"
    signature = hmac.new(key.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{JWT_PREFIX}{signing_input}.{_b64url(signature)}"


@dataclass
class ScopedState:
    """What the server remembers: each signing key by key id, and dollars spent per token
    and per key (a scoped token's usage counts toward its signing key, [DI-jwt])."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    signing_keys: dict[str, str] = field(default_factory=dict)  # kid → key
    token_spent: dict[str, float] = field(default_factory=dict)
    key_spent: dict[str, float] = field(default_factory=dict)
    created_at: int = field(default_factory=lambda: int(time.time()))


def _now(config: ServerConfig) -> float:
    """The fake's clock: ``clock_offset`` moves it forward, so a test can outlive a token."""
    return time.time() + config.clock_offset


def _account_keys(config: ServerConfig, caller: str) -> dict[str, str]:
    """The account's keys by value → name: ``valid_keys`` (or the caller's own when any key
    is accepted), named by ``key_names`` or [DI-jwt]'s default ``auto``."""
    keys = sorted(config.valid_keys) if config.valid_keys else [caller]
    return {key: config.key_names.get(key, DEFAULT_KEY_NAME) for key in keys}


def bearer(handler: _Handler) -> str:
    """The request's bearer value ("" if none)."""
    scheme, _, value = handler.headers.get("Authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def is_scoped(value: str) -> bool:
    """True for a value shaped like a scoped token (``jwt:`` + three dot-separated parts)."""
    return value.startswith(JWT_PREFIX) and value.count(".") == 2


def verify(handler: _Handler, token: str) -> dict[str, Any] | None:
    """The claims of a token this server minted, signature checked; None otherwise."""
    try:
        header_part, claims_part, signature_part = token.removeprefix(JWT_PREFIX).split(".")
        header = json.loads(_unb64url(header_part))
        claims = json.loads(_unb64url(claims_part))
        signature = _unb64url(signature_part)
    except ValueError:
        return None
    state: ScopedState = handler.server.fake.scoped_state
    with state.lock:
        key = state.signing_keys.get(str(header.get("kid")))
    if key is None or header.get("alg") != "HS256":  # [DI-jwt] HS256 only
        return None
    expected = hmac.new(key.encode(), f"{header_part}.{claims_part}".encode(), hashlib.sha256)
    if not hmac.compare_digest(expected.digest(), signature):
        return None
    return claims if isinstance(claims, dict) else None


def known_token(handler: _Handler, value: str) -> bool:
    """True when ``value`` is a scoped token this server minted (for ``_authorized``)."""
    return is_scoped(value) and verify(handler, value) is not None


def _refuse(handler: _Handler, reason: str, config: ServerConfig, model: str) -> None:
    shape = config.scoped_refusal
    words = _WORDS[reason][0 if shape in ("by_reason", "403") else 1].format(model=model)
    if shape == "by_reason":
        handler._send_json(_STATUS_BY_REASON[reason], detail_error(words))
    elif shape in ("401", "402"):
        handler._send_json(int(shape), detail_error(words))
    elif shape == "403":
        handler._send_json(403, {"detail": {"error": words}})
    else:
        handler._send_json(403, openai_error(words, 403))


def admit(handler: _Handler, model: str, config: ServerConfig) -> bool:
    """Check a scoped token's limits for an inference request on ``model``; answers the
    refusal itself. Plain keys pass ([DI-jwt]: restrictions apply to scoped tokens)."""
    token = bearer(handler)
    if not is_scoped(token):
        return True
    claims = verify(handler, token)
    if claims is None:
        handler._send_json(401, detail_error("Invalid scoped JWT"))
        return False
    exp = claims.get("exp")
    if isinstance(exp, (int, float)) and exp <= _now(config):
        _refuse(handler, "expired", config, model)
        return False
    models = claims.get("models", [claims["model"]] if "model" in claims else None)
    if models is not None and model not in models:
        _refuse(handler, "model", config, model)
        return False
    limit = claims.get("spending_limit")
    state: ScopedState = handler.server.fake.scoped_state
    with state.lock:
        spent = state.token_spent.get(token, 0.0)
    if isinstance(limit, (int, float)) and spent >= limit:
        _refuse(handler, "budget", config, model)
        return False
    return True


def charge(handler: _Handler, dollars: float) -> None:
    """Count an answered request's price against its token and its signing key ([DI-jwt])."""
    value = bearer(handler)
    state: ScopedState = handler.server.fake.scoped_state
    key = value
    if is_scoped(value):
        try:
            header = json.loads(_unb64url(value.removeprefix(JWT_PREFIX).split(".")[0]))
        except ValueError:
            return
        with state.lock:
            key = state.signing_keys.get(str(header.get("kid")), "")
            state.token_spent[value] = state.token_spent.get(value, 0.0) + dollars
    with state.lock:
        state.key_spent[key] = state.key_spent.get(key, 0.0) + dollars


def handle(handler: _Handler, path: str, payload: Any, config: ServerConfig) -> None:
    """Serve the scoped-JWT, API-token and usage routes (the caller has checked the prefix)."""
    if not handler._authorized(config):  # [OAPI] HTTPBearer on every one
        return
    caller = bearer(handler)
    if is_scoped(caller):  # not documented: a scoped token is for inference only
        handler._send_json(403, detail_error("Scoped JWT cannot be used for this endpoint"))
        return
    method = handler.command
    if method == "POST" and path == SCOPED_JWT_PATH:
        _mint(handler, payload, config, caller)
    elif method == "GET" and path == SCOPED_JWT_PATH:
        _inspect(handler, config, caller)
    elif method == "GET" and path == API_TOKENS_PATH:
        state: ScopedState = handler.server.fake.scoped_state
        tokens = [
            {"token": key, "created_at": state.created_at, "name": name, "token_id": _id(key)}
            for key, name in _account_keys(config, caller).items()
        ]  # [OAPI] ApiToken
        handler._send_json(200, tokens)
    elif method == "GET" and path.startswith(USAGE_PREFIX):
        _usage(handler, path.removeprefix(USAGE_PREFIX), config, caller)
    else:
        handler._send_json(404, detail_error("Not Found"))


def _id(key: str) -> str:
    return "tok_" + hashlib.sha256(key.encode()).hexdigest()[:12]


def _mint(handler: _Handler, payload: Any, config: ServerConfig, caller: str) -> None:
    if not isinstance(payload, dict) or not isinstance(payload.get("api_key_name"), str):
        handler._send_json(422, validation_error("api_key_name", given=payload))  # [OAPI]
        return
    name = payload["api_key_name"]
    signing = [key for key, each in _account_keys(config, caller).items() if each == name]
    if not signing:
        handler._send_json(400, detail_error(f"No API key named {name!r}"))
        return
    now = int(_now(config))
    expires_at = payload.get("expires_at")
    if not isinstance(expires_at, int):
        delta = payload.get("expires_delta")
        expires_at = now + (delta if isinstance(delta, int) else YEAR)  # [DI-jwt]
    claims: dict[str, Any] = {"sub": USER_ID, "exp": expires_at, "iat": now}
    if payload.get("models") is not None:  # [OAPI] "allow inference only to the specified models"
        claims["models"] = list(payload["models"])
    if payload.get("spending_limit") is not None:  # [OAPI] USD
        claims["spending_limit"] = float(payload["spending_limit"])
    key = signing[0]
    kid = f"{USER_ID}:{base64.b64encode(name.encode()).decode()}"
    state: ScopedState = handler.server.fake.scoped_state
    with state.lock:
        state.signing_keys[kid] = key
    handler._send_json(200, {"token": sign(claims, name, key)})  # [OAPI] ScopedJWTOut


def _inspect(handler: _Handler, config: ServerConfig, caller: str) -> None:
    query = parse_qs(urlsplit(handler.path).query)
    token = (query.get("jwtoken") or [""])[0]
    if not token:
        handler._send_json(422, validation_error("jwtoken"))  # [OAPI] required query field
        return
    claims = verify(handler, token)
    state: ScopedState = handler.server.fake.scoped_state
    header = json.loads(_unb64url(token.removeprefix(JWT_PREFIX).split(".")[0])) if claims else {}
    with state.lock:
        signer = state.signing_keys.get(str(header.get("kid")))
    if claims is None or signer != caller:  # [DI-jwt] "the same as the encoding token"
        handler._send_json(400, detail_error("Invalid token"))
        return
    handler._send_json(  # [OAPI] InspectScopedJWTOut
        200,
        {
            "expires_at": claims["exp"],
            "models": claims.get("models"),
            "spending_limit": claims.get("spending_limit"),
        },
    )


def _usage(handler: _Handler, api_token: str, config: ServerConfig, caller: str) -> None:
    query = parse_qs(urlsplit(handler.path).query)
    if not query.get("from"):
        handler._send_json(422, validation_error("from"))  # [OAPI] required
        return
    keys = {_id(key): key for key in _account_keys(config, caller)}
    key = keys.get(api_token, api_token if api_token in keys.values() else None)
    if key is None:
        handler._send_json(404, detail_error("API token not found"))
        return
    state: ScopedState = handler.server.fake.scoped_state
    with state.lock:
        dollars = state.key_spent.get(key, 0.0)
    period = time.strftime("%Y.%m", time.gmtime(_now(config)))
    month = {  # [OAPI] UsageMonth: total_cost in cents (an integer); TimeInterval in ms
        "period": period,
        "interval": {"fr": state.created_at * 1000, "to": int(_now(config) * 1000)},
        "items": [],
        "total_cost": round(dollars * 100),
        "invoice_id": "NOT_FINAL",
    }
    handler._send_json(200, {"months": [month], "initial_month": period})  # [OAPI] UsageOut
