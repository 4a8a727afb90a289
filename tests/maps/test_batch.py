"""``maps/batch.py`` alone: result lines map back by ``custom_id``, ``merge_batch`` is a
pure function of its inputs (row by row), polling slows down and a replay never waits,
a job with no files has nothing to collect."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from deepinfra_magic._flows import Sleep
from deepinfra_magic._protocol import RawResponse
from deepinfra_magic.catalog import ModelCatalog, ModelInfo
from deepinfra_magic.maps import BatchJob, MapJob, RowError, merge_batch, plan_map
from deepinfra_magic.maps.batch import (
    DISCOUNT,
    BatchOutcome,
    collect_flow,
    parse_outcomes,
    pending_batch,
    poll_delay,
    wait_flow,
)
from deepinfra_magic.maps.store import AnswerStore
from deepinfra_magic.types import Usage

MODEL = "m/priced"
# 1 cent per 10,000 input tokens and 2 per 10,000 output tokens: $1 and $2 per million
CATALOG = ModelCatalog(
    [
        ModelInfo(
            MODEL, "text", pricing={"cents_per_input_token": 1e-4, "cents_per_output_token": 2e-4}
        )
    ],
    source="network",
    fetched_at=0.0,
)


def _completion(text: str) -> dict[str, object]:
    return {"choices": [{"message": {"role": "assistant", "content": text}}], "usage": {}}


def test_result_lines_in_any_order_map_by_custom_id() -> None:
    lines = [
        {"custom_id": "k2", "response": {"status_code": 200, "body": _completion("two")}},
        {"custom_id": "k1", "response": {"status_code": 200, "body": _completion("one")}},
        {"custom_id": "k3", "error": {"code": "x", "message": "expired"}},
    ]
    outcomes = parse_outcomes("\n".join(json.dumps(line) for line in lines).encode())
    assert outcomes["k1"].text == "one" and outcomes["k2"].text == "two"
    assert outcomes["k3"].text is None and outcomes["k3"].error == "expired"


def _job(rows: list[str], store: AnswerStore | None = None) -> MapJob:
    return plan_map(
        rows, "{}", MODEL, system=None, temperature=None, max_tokens=None, params={}, store=store
    )


PRICED = Usage(1_000_000, 1_000_000, 2_000_000)  # $1 in + $2 out at catalog prices
REPORTED = Usage(10, 10, 20, 0.5)  # the API said what it cost

# Each row of the batch: what came back → what the row holds, what goes into the store,
# and what the caller is asked to charge.
ROWS: list[tuple[str, BatchOutcome | None, Any, Usage | None]] = [
    ("answered, priced from the catalog at the batch discount", BatchOutcome("k", "yes", PRICED),
     "yes", Usage(1_000_000, 1_000_000, 2_000_000, 3.0 * DISCOUNT)),
    ("answered, the API's own cost kept", BatchOutcome("k", "no", REPORTED), "no", REPORTED),
    ("answered without usage", BatchOutcome("k", "maybe", None), "maybe", None),
    ("failed in the batch: the row keeps why", BatchOutcome("k", None, error="HTTP 500: boom"),
     RowError("HTTP 500: boom"), None),
    ("not in the output: the row stays unanswered", None, None, None),
]  # fmt: skip


@pytest.mark.parametrize(("case", "outcome", "value", "charged"), ROWS, ids=[r[0] for r in ROWS])
def test_merge_batch_row_by_row(
    tmp_path: Path, case: str, outcome: BatchOutcome | None, value: Any, charged: Usage | None
) -> None:
    store = AnswerStore(tmp_path / "answers.sqlite", server="https://api.deepinfra.com")
    job = _job(["row"], store)
    [row] = job.rows
    store.add_batch("batch_1", MODEL, [row.key], "in_progress")
    outcomes = {} if outcome is None else {row.key: outcome}
    batch = BatchJob("batch_1", "completed", metadata={"model": MODEL})

    charges = merge_batch(batch, outcomes, job, store, CATALOG, "run.json")

    answered = outcome is not None and outcome.text is not None
    assert row.value() == value
    assert row.replayed_from == ("run.json" if answered else None)
    assert charges == ([(MODEL, charged)] if answered else [])
    stored = store.get_many([row.key])
    assert stored == ({row.key: (value, charged)} if answered else {})
    assert store.batches()[0]["merged"]  # never picked up again
    store.close()


def test_merge_batch_without_a_job_or_store_only_prices(tmp_path: Path) -> None:
    batch = BatchJob("batch_2", "completed", metadata={"model": MODEL})
    outcomes = {"k": BatchOutcome("k", "hello", PRICED)}
    charges = merge_batch(batch, outcomes, None, None, None, None)
    assert charges == [(MODEL, PRICED)]  # no catalog: no price to apply


def test_a_batch_with_nothing_to_collect_is_marked_and_never_picked_up_again(
    tmp_path: Path,
) -> None:
    store = AnswerStore(tmp_path / "answers.sqlite", server="https://api.deepinfra.com")
    job = _job(["a", "b"], store)
    store.add_batch("batch_3", MODEL, [row.key for row in job.missing], "in_progress")
    assert pending_batch(job) == "batch_3"
    assert merge_batch(BatchJob("batch_3", "expired"), None, job, store, CATALOG, None) == []
    assert pending_batch(job) is None
    assert job.result().values == [None, None]
    store.close()


def _drive(flow: Any, answers: list[dict[str, Any]]) -> tuple[list[Any], Any]:
    """Run a flow by hand: each request gets the next answer; a sleep gets None."""
    steps: list[Any] = []
    try:
        step = next(flow)
        while True:
            steps.append(step)
            if isinstance(step, Sleep):
                step = flow.send(None)
            else:
                body = json.dumps(answers.pop(0)).encode()
                step = flow.send(RawResponse(200, {"content-type": "application/json"}, body))
    except StopIteration as done:
        return steps, done.value


STATES = [{"id": "b", "status": "validating"}, {"id": "b", "status": "in_progress"},
          {"id": "b", "status": "completed"}]  # fmt: skip


def test_waiting_polls_each_state_and_sleeps_a_little_longer_each_time() -> None:
    seen: list[str] = []
    steps, batch = _drive(wait_flow("b", 10.0, lambda b: seen.append(b.status), False), STATES[:])
    assert seen == ["validating", "in_progress", "completed"] and batch.finished
    assert [s.seconds for s in steps if isinstance(s, Sleep)] == [10.0, 15.0]


def test_a_replayed_wait_never_sleeps() -> None:
    steps, batch = _drive(wait_flow("b", 10.0, None, True), STATES[:])
    assert batch.status == "completed" and not any(isinstance(s, Sleep) for s in steps)


def test_the_poll_delay_grows_to_a_minute_at_most() -> None:
    assert poll_delay(2.0, 0) == 2.0 and poll_delay(2.0, 1) == 3.0
    assert poll_delay(2.0, 50) == 60.0


def test_a_batch_without_files_has_nothing_to_collect() -> None:
    steps, outcomes = _drive(collect_flow(BatchJob("b", "failed")), [])
    assert steps == [] and outcomes is None
