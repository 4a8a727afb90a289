"""The fake server's Files and Batch API follows the documented shapes (see
tests/fake_deepinfra/batches.py for the sources): validation errors, the list, failed validation."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from deepinfra_magic.maps.batch import multipart
from tests.fake_deepinfra import CANARY_KEY, FakeDeepInfra

AUTH = {"Authorization": f"Bearer {CANARY_KEY}"}
MODEL = "meta-llama/Llama-3.3-70B-Instruct-Turbo"


@pytest.fixture
def http(fake_server: FakeDeepInfra) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fake_server.url, headers=AUTH) as client:
        yield client


def _upload(http: httpx.Client, lines: list[dict[str, Any]], purpose: str = "batch") -> Any:
    data = "".join(json.dumps(line) + "\n" for line in lines).encode()
    body, content_type = multipart({"purpose": purpose}, "in.jsonl", data)
    return http.post("/v1/openai/files", content=body, headers={"Content-Type": content_type})


def _line(custom_id: str, model: str = MODEL) -> dict[str, Any]:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}


def test_upload_answers_a_file_object(http: httpx.Client) -> None:
    answer = _upload(http, [_line("a")])
    assert answer.status_code == 200
    file = answer.json()
    assert file["object"] == "file" and file["purpose"] == "batch" and file["bytes"] > 0
    assert {"id", "created_at", "expires_at", "filename"} <= set(file)


def test_upload_needs_purpose_batch_and_a_file(http: httpx.Client) -> None:
    assert _upload(http, [_line("a")], purpose="fine-tune").status_code == 400
    bare = http.post("/v1/openai/files", json={"purpose": "batch"})
    assert bare.status_code == 422


def test_create_checks_the_required_fields(http: httpx.Client) -> None:
    file_id = _upload(http, [_line("a")]).json()["id"]
    base = {"input_file_id": file_id, "endpoint": "/v1/chat/completions", "metadata": None}
    assert (
        http.post("/v1/openai/batches", json={**base, "completion_window": "1h"}).status_code == 422
    )
    assert http.post("/v1/openai/batches", json=base).status_code == 422
    created = http.post("/v1/openai/batches", json={**base, "completion_window": "24h"})
    assert created.status_code == 200 and created.json()["status"] == "validating"


def test_mixed_models_fail_validation_with_errors(http: httpx.Client) -> None:
    file_id = _upload(http, [_line("a"), _line("b", "other/model")]).json()["id"]
    batch = http.post(
        "/v1/openai/batches",
        json={"input_file_id": file_id, "endpoint": "/v1/chat/completions",
              "completion_window": "24h", "metadata": {}},
    ).json()  # fmt: skip
    polled = http.get(f"/v1/openai/batches/{batch['id']}").json()
    assert polled["status"] == "failed"
    assert polled["errors"]["data"][0]["code"] == "mixed_models"


def test_list_and_unknown_ids(http: httpx.Client) -> None:
    assert http.get("/v1/openai/batches").json() == {
        "object": "list", "data": [], "first_id": None, "last_id": None, "has_more": False,
    }  # fmt: skip
    assert http.get("/v1/openai/batches/batch_nope").status_code == 404
    assert http.get("/v1/openai/files/file-nope/content").status_code == 404


def test_every_path_needs_a_key(fake_server: FakeDeepInfra) -> None:
    with httpx.Client(base_url=fake_server.url) as anonymous:
        # the same answer as every other path without a key (fake_server: S13)
        assert anonymous.get("/v1/openai/batches").status_code == 403
