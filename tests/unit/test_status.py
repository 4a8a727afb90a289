"""``_status.ERROR_TABLE`` row by row: each answer a server may give, the class it becomes
and the one line a user reads (as h11's tests/test_state.py mirrors its transition table).

Each case names the row it exercises; a test checks that every row has a case for each
kind of server it words, so a new row cannot land untested.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from deepinfra_magic._status import (
    ERROR_TABLE,
    Answer,
    describe_body,
    error_from_response,
    matching_row,
)
from deepinfra_magic.errors import (
    APIStatusError,
    AuthenticationError,
    ContextLengthError,
    DeepInfraError,
    InsufficientCreditError,
    InvalidRequestError,
    ModelLoadingError,
    ModelNotFoundError,
    RateLimitError,
    RouteNotFoundError,
    ServerError,
)
from tests.fake_deepinfra import CANARY_KEY, error_body

SERVER = "the server at http://127.0.0.1:8080/v1"
ROOT = "http://127.0.0.1:8080/v1"
DI = "https://api.deepinfra.com"
ADVICE = (
    "Start over with --new (or %deepinfra_reset), ask for fewer tokens with --max-tokens, "
    "or send fewer exchanges with %config DeepInfraMagics.max_history = 1."
)
# llama.cpp's llama-server, tools/server/server-common.cpp: a prompt over n_ctx is a 400 whose
# error has type "exceed_context_size_error" and these numbers.
LLAMA_OVERFLOW = {
    "error": {
        "code": 400,
        "message": "request (4852 tokens) exceeds the available context size (512 tokens), "
        "try increasing it",
        "type": "exceed_context_size_error",
        "n_prompt_tokens": 4852,
        "n_ctx": 512,
    }
}
# llama-server's answer for a path it has no handler for.
LLAMA_NO_ROUTE = {"error": {"code": 404, "message": "File Not Found", "type": "not_found_error"}}
# LiteLLM's proxy for a model it does not route (BerriAI/litellm#8821).
LITELLM_UNKNOWN = {
    "error": {
        "message": {
            "error": "/chat/completions: Invalid model name passed in model=tiyn. Call "
            "`/v1/models` to view available models for your key."
        },
        "type": "None",
        "param": "None",
        "code": "400",
    }
}

# LiteLLM 1.108.7's proxy in front of llama-server (tests/llama/test_litellm.py saw both):
# the server behind it has no images route; a key other than the master key, no database.
LITELLM_WRAPPED_NO_ROUTE = {
    "error": {
        "message": "litellm.NotFoundError: NotFoundError: OpenAIException - File Not Found\n\n"
        "LiteLLM: model group 'tiny' failed with the error above. No fallback was attempted.",
        "type": "invalid_request_error",
        "param": None,
        "code": "404",
    }
}
LITELLM_NO_DB = {
    "error": {
        "message": "No connected db.",
        "type": "no_db_connection",
        "param": None,
        "code": "400",
    }
}


def body(payload: Any) -> bytes:
    return json.dumps(payload).encode()


def detail(text: str) -> bytes:
    return body({"detail": text})


# row name, generic?, status, body, extra arguments, class, the whole message
CASES: list[tuple[str, bool, int, bytes, dict[str, Any], type[DeepInfraError], str]] = [
    ("no image route", True, 404, body(LLAMA_NO_ROUTE),
     {"url": ROOT + "/images/generations", "model": "tiny"}, RouteNotFoundError,
     f"The server at {ROOT} has no image endpoint ({ROOT}/images/generations answered 404: "
     "File Not Found), so it cannot make images; it serves chat. Generate images with "
     "DeepInfra or a server that has /images/generations."),
    ("no image route", True, 404, body(LITELLM_WRAPPED_NO_ROUTE),
     {"url": ROOT + "/images/generations", "model": "tiny"}, RouteNotFoundError,
     f"The server at {ROOT} has no image endpoint ({ROOT}/images/generations answered 404: "
     "litellm.NotFoundError: NotFoundError: OpenAIException - File Not Found LiteLLM: model "
     "group 'tiny' failed with the error above. No fallback was attempted.), so it cannot "
     "make images; it serves chat. Generate images with DeepInfra or a server that has "
     "/images/generations."),
    ("route not found", False, 404, detail("Not Found"),
     {"url": DI + "/v1/openai/chat/completions"}, RouteNotFoundError,
     f"{DI}/v1/openai/chat/completions does not exist on this server (404: Not Found). Check "
     f"the base URL: DeepInfra's is {DI}, another OpenAI-compatible server's is the part "
     "before /chat/completions, such as http://127.0.0.1:8000/v1."),
    ("route not found", True, 404, body(LLAMA_NO_ROUTE),
     {"url": ROOT + "/chat/completions", "model": "tiny"}, RouteNotFoundError,
     f"{ROOT}/chat/completions does not exist on {SERVER} (404: File Not Found). Check the "
     "base URL: it is the part before /chat/completions, such as http://127.0.0.1:8000/v1; "
     "a server with DeepInfra's routes wants http://127.0.0.1:8080/v1/openai."),
    ("context overflow", True, 400, body(LLAMA_OVERFLOW), {"model": "tiny"}, ContextLengthError,
     "The conversation is longer than 'tiny' can take (400: request (4852 tokens) exceeds "
     "the available context size (512 tokens), try increasing it). " + ADVICE),
    ("context overflow", False, 400,
     body({"error": {"message": "This model's maximum context length is 8192 tokens"}}),
     {"model": "m"}, ContextLengthError,
     "The conversation is longer than 'm' can take (400: This model's maximum context length "
     "is 8192 tokens). " + ADVICE),
    ("input too long", False, 500,
     body({"error": {"message": "Requested input length 9000 exceeds maximum input length 8192"}}),
     {}, ContextLengthError,
     "The conversation is longer than the model can take (500: Requested input length 9000 "
     "exceeds maximum input length 8192). " + ADVICE),
    ("input too long", True, 500,
     body({"error": {"message": "Requested input length 9000 exceeds maximum input length 8192"}}),
     {"model": "m"}, ContextLengthError,
     "The conversation is longer than 'm' can take (500: Requested input length 9000 exceeds "
     "maximum input length 8192). " + ADVICE),
    ("unknown model (LiteLLM)", True, 400, body(LITELLM_UNKNOWN), {"model": "tiyn"},
     ModelNotFoundError,
     f"The server at {ROOT} has no model 'tiyn' (400: {{'error': '/chat/completions: Invalid "
     "model name passed in model=tiyn. Call `/v1/models` to view available models for your "
     "key.'}). List its models with %deepinfra_models."),
    ("unknown model (LiteLLM)", False, 400,
     body({"error": {"message": "400: {'error': 'Invalid model name passed in model=x'}"}}),
     {"model": "x"}, ModelNotFoundError,
     "Model 'x' was not found (400: 400: {'error': 'Invalid model name passed in model=x'}). "
     "List models with %deepinfra_models."),
    ("key unknown to LiteLLM", True, 400, body(LITELLM_NO_DB), {}, AuthenticationError,
     f"The server at {ROOT} does not know this key (400: No connected db.): a LiteLLM proxy "
     "without a database takes only its master key. Set that key in DEEPINFRA_API_KEY or "
     "with %deepinfra_login."),
    ("key rejected", False, 401, detail("Invalid token"), {}, AuthenticationError,
     "DeepInfra rejected the API key (401: Invalid token). Check DEEPINFRA_API_KEY or run "
     "%deepinfra_login with a key from https://deepinfra.com/dash/api_keys."),
    ("key rejected", True, 401, body({"error": "Unauthorized"}), {}, AuthenticationError,
     f"The server at {ROOT} refused the key (401: Unauthorized). Set the key it expects in "
     "DEEPINFRA_API_KEY or with %deepinfra_login."),
    ("not authenticated", False, 403, detail("Not authenticated"), {}, AuthenticationError,
     "DeepInfra did not accept the API key (403: Not authenticated). Check DEEPINFRA_API_KEY "
     "or run %deepinfra_login with a key from https://deepinfra.com/dash/api_keys."),
    ("access denied", False, 403, detail("Forbidden"), {}, AuthenticationError,
     "Access denied (403: Forbidden). The key may lack access to this model; check it at "
     "https://deepinfra.com/dash/api_keys."),
    ("access denied", True, 403, detail("Not authenticated"), {}, AuthenticationError,
     f"The server at {ROOT} refused the key (403: Not authenticated). Set the key it expects "
     "in DEEPINFRA_API_KEY or with %deepinfra_login."),
    ("out of credit", False, 402, detail("Payment required"), {}, InsufficientCreditError,
     "The DeepInfra account is out of credit (402: Payment required). Add credit at "
     "https://deepinfra.com/dash/billing."),
    ("model not found", False, 404, b"", {"model": "some/model", "url": DI + "/v1/x"},
     ModelNotFoundError,
     "Model 'some/model' was not found (404: empty response body). List models with "
     "%deepinfra_models."),
    ("model not found", True, 404, body({"error": "model 'x' not found"}), {"model": "x"},
     ModelNotFoundError,
     f"The server at {ROOT} has no model 'x' (404: model 'x' not found). List its models with "
     "%deepinfra_models."),
    ("rejected parameter", False, 422,
     body({"detail": [{"loc": ["body", "temperature"], "msg": "too high"}]}), {},
     InvalidRequestError,
     "The API rejected the request (422: body.temperature: too high). Fix that parameter and "
     "run again."),
    ("rejected parameter", True, 400, body({"error": {"message": "bad stop"}}), {},
     InvalidRequestError,
     f"The server at {ROOT} rejected the request (400: bad stop). Fix that parameter and run "
     "again."),
    ("rate limited", False, 429, detail("slow down"), {"attempts": 3}, RateLimitError,
     "Rate limited by DeepInfra after 3 attempts (429: slow down). Wait 7 s and run again, or "
     "send fewer requests at once."),
    ("rate limited", True, 429, detail("slow down"), {}, RateLimitError,
     f"Rate limited by {SERVER} (429: slow down). Wait 7 s and run again."),
    ("model loading", False, 423, detail("loading"), {"model": "m", "waited": 120.0},
     ModelLoadingError,
     "Model 'm' is still loading on DeepInfra after waiting 120 s (423: loading). Run again in "
     "a minute or two, or pick another model."),
    ("request cannot run", False, 500, body({"error": {"message": "bad image size"}}), {},
     ServerError,
     "DeepInfra could not run this request (500: bad image size). Sending it again would fail "
     "the same way: change the request or pick another model."),
    ("server error", False, 502, error_body("html", 502)[0], {"attempts": 3}, ServerError,
     "DeepInfra had a server error after 3 attempts (502: an HTML page '502 Bad Gateway' "
     "instead of JSON (a proxy or gateway error)). Try again in a minute or pick another "
     "model."),
    ("server error", True, 500, body({"error": {"message": "bad image size"}}), {},
     ServerError,
     f"The server at {ROOT} failed (500: bad image size). An out-of-range parameter can cause "
     "this; otherwise check the server's log, then run again."),
    ("unexpected status", False, 418, detail("teapot"), {}, APIStatusError,
     "Unexpected HTTP 418 from the API (teapot). Check that DEEPINFRA_BASE_URL points at the "
     "DeepInfra API, then run again."),
    ("unexpected status", True, 402, detail("pay"), {}, APIStatusError,
     f"Unexpected HTTP 402 from {SERVER} (pay). Check DEEPINFRA_BASE_URL, then run again."),
]  # fmt: skip


def _error(status: int, raw: bytes, generic: bool, extra: dict[str, Any]) -> DeepInfraError:
    headers = {"Content-Type": "application/json", "Retry-After": "7", "X-Request-Id": "req-1"}
    if raw.startswith(b"<"):
        headers["Content-Type"] = "text/html"
    return error_from_response(
        status, raw, headers=headers, server=SERVER if generic else None, **extra
    )


@pytest.mark.parametrize(
    ("row", "generic", "status", "raw", "extra", "kind", "message"),
    CASES,
    ids=[f"{c[0]}-{'generic' if c[1] else 'deepinfra'}" for c in CASES],
)
def test_each_row_gives_its_class_and_its_one_line(
    row: str,
    generic: bool,
    status: int,
    raw: bytes,
    extra: dict[str, Any],
    kind: type[DeepInfraError],
    message: str,
) -> None:
    error = _error(status, raw, generic, extra)
    assert type(error) is kind
    assert str(error) == message
    assert error.status_code == status and error.request_id == "req-1"
    described = describe_body(raw, "text/html" if raw.startswith(b"<") else "")
    answer = Answer(status, described, raw, extra.get("model"), extra.get("url"), generic)
    assert matching_row(answer).name == row
    if generic:
        assert "deepinfra.com" not in message, "a generic server is not sent to DeepInfra"


def test_every_row_and_every_wording_has_a_case() -> None:
    covered = {(c[0], c[1]) for c in CASES}
    wanted = {(r.name, False) for r in ERROR_TABLE if r.deepinfra is not None}
    wanted |= {(r.name, True) for r in ERROR_TABLE if r.generic is not None}
    assert wanted <= covered, sorted(wanted - covered)


def test_errors_carry_what_code_needs() -> None:
    limited = _error(429, detail("slow"), False, {})
    assert isinstance(limited, RateLimitError) and limited.retry_after == 7.0
    missing = _error(404, b"", False, {"model": "m"})
    assert isinstance(missing, ModelNotFoundError) and missing.model == "m"
    rejected = _error(422, detail("bad"), True, {})
    assert isinstance(rejected, InvalidRequestError) and rejected.detail == "bad"


def test_close_matches_replace_the_closing_hint_for_either_server() -> None:
    for generic in (False, True):
        error = _error(404, b"{}", generic, {"model": "tiyn"})
        assert isinstance(error, ModelNotFoundError)
        message = error.with_close_matches(["tiny"]).message
        assert message.count("%deepinfra_models") == 1
        assert message.endswith("Did you mean: tiny? List models with %deepinfra_models.")


def test_a_long_error_body_is_shortened() -> None:
    error = error_from_response(500, ("word " * 2000).encode())
    assert len(str(error)) < 400 and "…" in str(error)


def test_a_key_echoed_in_an_error_body_is_masked() -> None:
    raw = json.dumps({"detail": f"bad header Authorization: Bearer {CANARY_KEY}"}).encode()
    error = error_from_response(401, raw)
    assert CANARY_KEY not in str(error) and "[redacted]" in str(error)
