"""``client.map(..., schema=Spec)`` on both clients against the fake server: typed columns
(dtypes asserted), the repair and the refusal per row, the answer store keyed by the
schema, and distinct prompts sent once."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest

from deepinfra_magic.client import DeepInfraClient
from deepinfra_magic.maps import RowError
from tests.fake_deepinfra import CHAT_PATH, FakeDeepInfra
from tests.fake_deepinfra.structured import JSON_MODE_ONLY_MODEL, REPAIR_MODEL

MODEL = "meta-llama/Meta-Llama-3.1-8B-Instruct"
SPEC = "sentiment: positive|negative|mixed, confidence: float, tags: list[str], ok: bool?"


def chats(server: FakeDeepInfra) -> list[dict[str, Any]]:
    return [r.json for r in server.requests if r.path == CHAT_PATH]


@pytest.fixture
def reviews() -> pd.DataFrame:
    return pd.DataFrame(
        {"review": ["Loved it", "Dull", "Fine, I guess", "Superb"]}, index=["a", "b", "c", "d"]
    )


def test_typed_columns_on_the_input_index_with_the_schema_dtypes(
    make_client: Callable[..., DeepInfraClient], fake_server: FakeDeepInfra, reviews: pd.DataFrame
) -> None:
    result = make_client().map(reviews, "Label: {review}", MODEL, schema=SPEC, max_tokens=50)
    frame = result.output()
    assert list(frame.index) == ["a", "b", "c", "d"]
    assert {c: str(t) for c, t in frame.dtypes.items()} == {
        "sentiment": "category",
        "confidence": "Float64",
        "tags": "object",
        "ok": "boolean",
    }
    assert list(frame["sentiment"].cat.categories) == ["positive", "negative", "mixed"]
    assert frame["sentiment"].notna().all()
    prefixed = result.output(prefix="label")
    assert list(prefixed.columns) == [
        "label_sentiment",
        "label_confidence",
        "label_tags",
        "label_ok",
    ]
    assert all(body["response_format"]["type"] == "json_schema" for body in chats(fake_server))


def test_a_list_input_gives_a_frame_on_a_range_index(
    make_client: Callable[..., DeepInfraClient], fake_server: FakeDeepInfra
) -> None:
    frame = make_client().map(["x", "y"], "Label {}", MODEL, schema="n: int").output()
    assert list(frame.index) == [0, 1] and str(frame["n"].dtype) == "Int64"


def test_each_row_gets_one_repair_and_a_row_failing_after_it_keeps_a_row_error(
    make_client: Callable[..., DeepInfraClient], fake_server: FakeDeepInfra
) -> None:
    result = make_client().map(["one", "two"], "Label {}", REPAIR_MODEL, schema=SPEC)
    assert result.failed == 0 and len(chats(fake_server)) == 4  # each row: reply + repair
    assert result.output()["sentiment"].notna().all()

    fake_server.reset()
    for _ in range(2):  # the row's reply and its repair's
        fake_server.script_reply("no JSON here")
    result = make_client().map(["three"], "Label {}", MODEL, schema=SPEC, resume=False)
    assert result.failed == 1 and len(chats(fake_server)) == 2
    assert isinstance(result.values[0], RowError)
    assert result.output().isna().all(axis=None)


def test_a_refused_json_schema_switches_the_map_to_json_mode_once(
    make_client: Callable[..., DeepInfraClient], fake_server: FakeDeepInfra
) -> None:
    client = make_client()
    rows = [f"row {i}" for i in range(6)]
    result = client.map(rows, "Label {}", JSON_MODE_ONLY_MODEL, schema=SPEC, concurrency=2)
    assert result.failed == 0 and result.output()["sentiment"].notna().all()
    kinds = [body["response_format"]["type"] for body in chats(fake_server)]
    assert kinds.count("json_object") == 6 and 1 <= kinds.count("json_schema") <= 2
    assert client.json_mode_only(JSON_MODE_ONLY_MODEL)
    fake_server.reset()
    client.map(["again"], "Label {}", JSON_MODE_ONLY_MODEL, schema=SPEC)
    assert [body["response_format"]["type"] for body in chats(fake_server)] == ["json_object"]


def test_the_answer_store_is_keyed_by_the_schema(
    make_client: Callable[..., DeepInfraClient], fake_server: FakeDeepInfra, reviews: pd.DataFrame
) -> None:
    client = make_client()
    client.map(reviews, "Label: {review}", MODEL, schema=SPEC)
    again = client.map(reviews, "Label: {review}", MODEL, schema=SPEC)
    assert again.cached == 4 and len(chats(fake_server)) == 4  # kept: not asked again
    assert again.output()["sentiment"].notna().all()
    changed = client.map(reviews, "Label: {review}", MODEL, schema="sentiment: good|bad")
    assert changed.cached == 0 and len(chats(fake_server)) == 8  # changed: asked again


def test_a_thousand_rows_with_30_percent_duplicates_send_exactly_the_distinct_prompts(
    make_client: Callable[..., DeepInfraClient], fake_server: FakeDeepInfra
) -> None:
    words = [f"item {i}" for i in range(700)]
    rows = words + random.Random(7).choices(words, k=300)
    random.Random(8).shuffle(rows)
    frame = pd.DataFrame({"text": rows})
    result = make_client().map(frame, "Label: {text}", MODEL, schema=SPEC, concurrency=32)
    assert result.distinct == 700 and len(result.rows) == 1000
    sent = [body["messages"][-1]["content"] for body in chats(fake_server)]
    assert len(sent) == 700 and len(set(sent)) == 700
    out = result.output()
    assert out["sentiment"].notna().all() and len(out) == 1000
    by_text = out.assign(text=rows).groupby("text", observed=True)["confidence"].nunique()
    assert (by_text == 1).all()  # duplicates share their prompt's answer
    assert result.usage.prompt_tokens == sum(
        row.usage.prompt_tokens for row in result.rows if row.usage is not None
    )


def test_the_estimate_counts_distinct_rendered_prompts_at_four_characters_a_token(
    make_client: Callable[..., DeepInfraClient], fake_server: FakeDeepInfra
) -> None:
    job = make_client().plan_map(["abcd" * 10] * 3, "{}", MODEL, max_tokens=7, schema=SPEC)
    estimate = job.estimate(None)
    assert (estimate.rows, estimate.prompt_tokens, estimate.max_completion_tokens) == (1, 10, 7)
