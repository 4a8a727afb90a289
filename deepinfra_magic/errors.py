"""The errors deepinfra-magic raises: a pure tree of classes.

Every error is a :class:`DeepInfraError` whose message is one line that says what
happened and what to do. In IPython they render as that one line (no traceback, even
under ``%xmode Verbose``), through IPython's documented ``_render_traceback_`` hook;
outside IPython they are ordinary exceptions. Which HTTP answer becomes which error is
decided in ``_status.py``; the text hygiene (redaction, one line) is ``_text.py``.

Hierarchy (a local mistake is never an ``APIStatusError``, so ``except APIStatusError``
catches only what a server answered; ``except ValueError`` catches every local mistake)::

    DeepInfraError
    ├── InvalidArgumentError        a mistake found before any request (also a ValueError)
    │   ├── SchemaError             a --schema spec that names no usable type
    │   ├── DisallowedModelError    a model the scoped token's known list excludes (not sent)
    │   ├── ConfigurationError      a bad base URL, setting or recording file
    │   └── MissingAPIKeyError      a request needs a key and none is configured
    ├── APIStatusError              any other HTTP error answer (an unexpected status)
    │   ├── AuthenticationError     401/403
    │   │   └── ScopedTokenError    the server refused a scoped token (classroom seat)
    │   │       ├── TokenExpiredError      past its expiry (``expires_at``)
    │   │       ├── TokenBudgetError       its spending limit is used up (also a 402 error)
    │   │       └── ModelNotAllowedError   not one of its models (``allowed_models``)
    │   ├── InsufficientCreditError 402
    │   ├── ModelNotFoundError      404 (with close matches from the catalog)
    │   ├── RouteNotFoundError      404 from a route the server does not have
    │   ├── InvalidRequestError     400/422 (with the field detail)
    │   │   └── ContextLengthError  the conversation does not fit the model's context
    │   ├── RateLimitError          429 (with Retry-After)
    │   ├── ServerError             5xx
    │   └── ModelLoadingError       423: the model was still being deployed after waiting
    ├── APIConnectionError          could not connect / connection dropped
    │   └── APITimeoutError         connect or read timed out
    ├── StreamError                 broken or error-bearing stream (keeps the partial text)
    ├── InvalidResponseError        an answer we cannot use (no images, bad base64, not JSON)
    └── ReplayError                 nothing in the recording matches a request
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime

from ._text import one_line, redact

__all__ = [
    "BILLING_URL",
    "KEYS_URL",
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "ConfigurationError",
    "ContextLengthError",
    "DeepInfraError",
    "DisallowedModelError",
    "InsufficientCreditError",
    "InvalidArgumentError",
    "InvalidRequestError",
    "InvalidResponseError",
    "MissingAPIKeyError",
    "ModelLoadingError",
    "ModelNotAllowedError",
    "ModelNotFoundError",
    "RateLimitError",
    "ReplayError",
    "RouteNotFoundError",
    "SchemaError",
    "ScopedTokenError",
    "ServerError",
    "StreamError",
    "TokenBudgetError",
    "TokenExpiredError",
]

KEYS_URL = "https://deepinfra.com/dash/api_keys"
_LIST_HINT = re.compile(r" List (its )?models with %deepinfra_models\.$")
BILLING_URL = "https://deepinfra.com/dash/billing"


class DeepInfraError(Exception):
    """Base class: an expected failure, described in one line with its remedy."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(one_line(redact(message)))
        self.status_code = status_code
        self.request_id = request_id

    @property
    def message(self) -> str:
        """The one-line message (the same as ``str(error)``)."""
        return str(self.args[0])

    def _render_traceback_(self) -> list[str]:
        """Show one line in IPython instead of a traceback (IPython's documented hook)."""
        return [f"{type(self).__name__}: {self}"]


class InvalidArgumentError(DeepInfraError, ValueError):
    """A mistake found before any request (an argument, template, option or schema); never sent."""


class SchemaError(InvalidArgumentError):
    """A ``--schema`` spec that is neither a usable type in the namespace nor inline syntax."""


class DisallowedModelError(InvalidArgumentError):
    """A scoped token's known model list excludes ``model``: found before sending, so never
    an APIStatusError; ``allowed_models`` lists what it allows. (The server's own refusal
    of a model is :class:`ModelNotAllowedError`.)"""

    def __init__(self, message: str, *, model: str, allowed_models: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.model = model
        self.allowed_models = list(allowed_models)


class ConfigurationError(InvalidArgumentError):
    """A setting is unusable (for example a base URL that is not http(s)); found locally."""


class MissingAPIKeyError(InvalidArgumentError):
    """A request needs a key and none is configured; raised before any network call."""


class APIStatusError(DeepInfraError):
    """The server answered with an HTTP error status; ``status_code`` says which."""


class RouteNotFoundError(APIStatusError):
    """The server has no such route (404): the base URL or its flavour is wrong."""


class AuthenticationError(APIStatusError):
    """The API refused the key (401) or the key lacks permission (403)."""


class InsufficientCreditError(APIStatusError):
    """The account is out of credit (402)."""


class ScopedTokenError(AuthenticationError):
    """The server refused a request sent with a scoped token (or a proxy's virtual key), and
    its words say why. A model excluded by a known scope is refused before sending, as
    :class:`DisallowedModelError`."""


class TokenExpiredError(ScopedTokenError):
    """The scoped token is past its expiry; ``expires_at`` (aware datetime) if known."""

    def __init__(
        self,
        message: str,
        *,
        expires_at: datetime | None = None,
        status_code: int | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code, request_id=request_id)
        self.expires_at = expires_at


class TokenBudgetError(ScopedTokenError, InsufficientCreditError):
    """The scoped token's spending limit is used up; ``spent`` and ``spending_limit`` in
    dollars, each None when unknown."""

    def __init__(
        self,
        message: str,
        *,
        spent: float | None = None,
        spending_limit: float | None = None,
        status_code: int | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code, request_id=request_id)
        self.spent = spent
        self.spending_limit = spending_limit


class ModelNotAllowedError(ScopedTokenError):
    """The scoped token does not allow ``model``; ``allowed_models`` lists those it does
    (empty when unknown)."""

    def __init__(
        self,
        message: str,
        *,
        model: str | None = None,
        allowed_models: Sequence[str] = (),
        status_code: int | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code, request_id=request_id)
        self.model = model
        self.allowed_models = list(allowed_models)


class ModelNotFoundError(APIStatusError):
    """The model does not exist or is not deployed (404)."""

    def __init__(
        self,
        message: str,
        *,
        model: str | None = None,
        close_matches: Sequence[str] = (),
        status_code: int | None = 404,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code, request_id=request_id)
        self.model = model
        self.close_matches = list(close_matches)

    def with_close_matches(self, matches: Sequence[str]) -> ModelNotFoundError:
        """A copy of this error whose message suggests ``matches``."""
        if not matches:
            return self
        suggestion = ", ".join(matches)
        base = _LIST_HINT.sub("", self.message)
        return ModelNotFoundError(
            f"{base} Did you mean: {suggestion}? List models with %deepinfra_models.",
            model=self.model,
            close_matches=matches,
            status_code=self.status_code,
            request_id=self.request_id,
        )


class InvalidRequestError(APIStatusError):
    """The API rejected a parameter (400/422); ``detail`` names the field."""

    def __init__(
        self,
        message: str,
        *,
        detail: str = "",
        status_code: int | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code, request_id=request_id)
        self.detail = detail


class ContextLengthError(InvalidRequestError):
    """The prompt plus the reply do not fit the model's context; running again cannot help."""


class RateLimitError(APIStatusError):
    """Too many requests (429); ``retry_after`` is the server's wait in seconds, if given."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        status_code: int | None = 429,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code, request_id=request_id)
        self.retry_after = retry_after


class ServerError(APIStatusError):
    """The API failed on its side (5xx), after the allowed retries."""


class ModelLoadingError(APIStatusError):
    """The model was still being deployed (423) when the bounded wait ran out."""


class APIConnectionError(DeepInfraError):
    """The API could not be reached, or the connection dropped before an answer."""


class APITimeoutError(APIConnectionError):
    """Connecting or waiting for the next bytes took longer than the configured timeout."""


class StreamError(DeepInfraError):
    """A stream broke or carried an error; ``partial_text`` keeps what had arrived."""

    def __init__(
        self,
        message: str,
        *,
        partial_text: str = "",
        partial_reasoning: str = "",
        status_code: int | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code, request_id=request_id)
        self.partial_text = partial_text
        self.partial_reasoning = partial_reasoning


class InvalidResponseError(DeepInfraError):
    """The API answered successfully but with something unusable."""


class ReplayError(DeepInfraError):
    """Replay mode: the recording holds no answer for a request."""
