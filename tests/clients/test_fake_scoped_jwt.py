"""The fake server's scoped JWTs (tests/fake_deepinfra/scoped_jwt.py): minted as real HS256
JWTs, inspected, and enforced on chat and image requests in every refusal shape.

Raw httpx, so these check the wire, not our client's reading of it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fake_deepinfra import CANARY_KEY, FakeDeepInfra
from tests.fake_deepinfra.scoped_jwt import REFUSAL_SHAPES

CHAT = "/v1/openai/chat/completions"
TEXT_MODEL = "meta-llama/Meta-Llama-3.1-8B-Instruct"
OTHER_MODEL = "Qwen/Qwen2.5-72B-Instruct"
FLAT_IMAGE_MODEL = "stabilityai/sd3.5"  # $0.06 an image, whatever the size
TEACHER = {"Authorization": f"Bearer {CANARY_KEY}"}


@pytest.fixture
def http(fake_server: FakeDeepInfra) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fake_server.url, headers=TEACHER, timeout=30) as client:
        yield client


def mint(http: httpx.Client, **fields: Any) -> str:
    body = {"api_key_name": "auto", "expires_delta": 3600, **fields}
    answer = http.post("/v1/scoped-jwt", json=body)
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["token"]
    return token


def segment(part: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def chat(http: httpx.Client, token: str, model: str = TEXT_MODEL) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "Hi"}]}
    return http.post(CHAT, json=body, headers={"Authorization": f"Bearer {token}"})


def image(http: httpx.Client, token: str, model: str = FLAT_IMAGE_MODEL) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"}
    return http.post(f"/v1/inference/{model}", json={"prompt": "a fox"}, headers=headers)


def words(answer: httpx.Response) -> str:
    return json.dumps(answer.json()).lower()


def test_a_minted_token_is_a_real_hs256_jwt_signed_with_the_key(http: httpx.Client) -> None:
    token = mint(http, models=[TEXT_MODEL], spending_limit=2.0)
    assert token.startswith("jwt:eyJ")
    header_part, claims_part, signature = token.removeprefix("jwt:").split(".")
    header, claims = segment(header_part), segment(claims_part)
    assert header == {"alg": "HS256", "kid": "di:1000000000000:YXV0bw==", "typ": "JWT"}
    assert claims["models"] == [TEXT_MODEL] and claims["spending_limit"] == 2.0
    assert claims["exp"] == pytest.approx(time.time() + 3600, abs=60)
    expected = hmac.new(
        CANARY_KEY.encode(), f"{header_part}.{claims_part}".encode(), hashlib.sha256
    ).digest()
    assert base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)) == expected


def test_inspect_answers_the_scope_for_the_signing_key_only(http: httpx.Client) -> None:
    token = mint(http, models=[TEXT_MODEL], expires_at=2_000_000_000, spending_limit=1.5)
    answer = http.get("/v1/scoped-jwt", params={"jwtoken": token})
    assert answer.json() == {
        "expires_at": 2_000_000_000,
        "models": [TEXT_MODEL],
        "spending_limit": 1.5,
    }
    other = {"Authorization": "Bearer sk-another-key-entirely"}
    assert http.get("/v1/scoped-jwt", params={"jwtoken": token}, headers=other).status_code == 400
    assert http.get("/v1/scoped-jwt").status_code == 422


def test_omitted_limits_mean_any_model_a_year_and_no_cap(http: httpx.Client) -> None:
    token = http.post("/v1/scoped-jwt", json={"api_key_name": "auto"}).json()["token"]
    scope = http.get("/v1/scoped-jwt", params={"jwtoken": token}).json()
    assert scope["models"] is None and scope["spending_limit"] is None
    assert scope["expires_at"] == pytest.approx(time.time() + 365 * 24 * 3600, abs=60)
    assert chat(http, token, OTHER_MODEL).status_code == 200


def test_minting_needs_a_known_key_name_and_a_real_key(http: httpx.Client) -> None:
    assert http.post("/v1/scoped-jwt", json={}).status_code == 422
    assert http.post("/v1/scoped-jwt", json={"api_key_name": "nope"}).status_code == 400
    token = mint(http)
    with_token = {"Authorization": f"Bearer {token}"}
    refused = http.post("/v1/scoped-jwt", json={"api_key_name": "auto"}, headers=with_token)
    assert refused.status_code == 403


def test_a_forged_token_is_refused(http: httpx.Client) -> None:
    token = mint(http)
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert chat(http, forged).status_code == 401


def test_a_scoped_token_works_where_only_listed_keys_are_valid(
    fake_server: FakeDeepInfra, http: httpx.Client
) -> None:
    fake_server.configure(valid_keys=[CANARY_KEY])
    assert chat(http, mint(http)).status_code == 200
    assert chat(http, "jwt:eyJx.eyJy.zzz").status_code == 401


def _refusal(shape: str, reason: str) -> tuple[int, str]:
    by_reason = {"expired": 401, "budget": 402, "model": 403}
    status = by_reason[reason] if shape == "by_reason" else int(shape[-3:])
    return status, {"expired": "expired", "budget": "spending limit", "model": "not allowed"}[
        reason
    ]


@pytest.mark.parametrize("shape", REFUSAL_SHAPES)
def test_a_disallowed_model_is_refused_in_each_shape(
    fake_server: FakeDeepInfra, http: httpx.Client, shape: str
) -> None:
    fake_server.configure(scoped_refusal=shape)
    token = mint(http, models=[TEXT_MODEL])
    assert chat(http, token).status_code == 200
    refused = chat(http, token, OTHER_MODEL)
    status, said = _refusal(shape, "model")
    assert refused.status_code == status and said in words(refused)
    assert image(http, token).status_code == status


@pytest.mark.parametrize("shape", REFUSAL_SHAPES)
def test_an_expired_token_is_refused_in_each_shape(
    fake_server: FakeDeepInfra, http: httpx.Client, shape: str
) -> None:
    fake_server.configure(scoped_refusal=shape)
    token = mint(http, expires_delta=60)
    assert chat(http, token).status_code == 200
    fake_server.configure(clock_offset=120)  # the fake's clock moves past the expiry
    refused = chat(http, token)
    status, said = _refusal(shape, "expired")
    assert refused.status_code == status and said in words(refused)


@pytest.mark.parametrize("shape", REFUSAL_SHAPES)
def test_a_spent_token_is_refused_in_each_shape(
    fake_server: FakeDeepInfra, http: httpx.Client, shape: str
) -> None:
    fake_server.configure(scoped_refusal=shape)
    token = mint(http, spending_limit=0.10)  # an sd3.5 image costs $0.06
    assert image(http, token).status_code == 200
    assert image(http, token).status_code == 200  # $0.06 spent: still under the cap
    refused = image(http, token)  # $0.12 spent
    status, said = _refusal(shape, "budget")
    assert refused.status_code == status and said in words(refused)
    assert chat(http, token).status_code == status


def test_a_chat_is_charged_its_catalog_price(
    fake_server: FakeDeepInfra, http: httpx.Client
) -> None:
    token = mint(http, spending_limit=1e-9)
    assert chat(http, token).status_code == 200  # the first answer is what spends it
    assert chat(http, token).status_code == 402


def test_api_tokens_list_the_account_keys_by_name(
    fake_server: FakeDeepInfra, http: httpx.Client
) -> None:
    fake_server.configure(
        valid_keys=[CANARY_KEY, "sk-second-key-0000"], key_names={CANARY_KEY: "classroom"}
    )
    listed = http.get("/v1/api-tokens").json()
    assert {entry["name"] for entry in listed} == {"classroom", "auto"}
    assert all({"token", "created_at", "name", "token_id"} <= set(entry) for entry in listed)
    assert mint(http, api_key_name="classroom").startswith("jwt:")


def test_usage_counts_a_tokens_spend_toward_its_signing_key(http: httpx.Client) -> None:
    token = mint(http)
    assert image(http, token).status_code == 200
    key_id = http.get("/v1/api-tokens").json()[0]["token_id"]
    usage = http.get(f"/payment/usage/{key_id}", params={"from": "current"}).json()
    assert usage["months"][0]["total_cost"] == 6  # cents
    assert set(usage) == {"months", "initial_month"}
    assert http.get(f"/payment/usage/{key_id}").status_code == 422
    assert http.get("/payment/usage/tok_unknown", params={"from": "current"}).status_code == 404
