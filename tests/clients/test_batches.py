"""DeepInfra's Batch API through the client and the fake server's Files/Batch endpoints:
submit, poll, download, map back by ``custom_id``; pick-up by id in a new client; record
and replay of the whole flow."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from deepinfra_magic.client import DeepInfraClient
from deepinfra_magic.errors import InvalidArgumentError
from deepinfra_magic.maps import RowError
from deepinfra_magic.maps.batch import BATCH_ENDPOINT
from tests.fake_deepinfra import CANARY_KEY, CHAT_PATH, FakeDeepInfra

FILES = "/v1/openai/files"
BATCHES = "/v1/openai/batches"


def test_submit_wait_and_collect_maps_answers_back_by_custom_id(
    make_client: Callable[..., DeepInfraClient], fake_server: FakeDeepInfra
) -> None:
    fake_server.script_reply("positive", match="loved")
    fake_server.script_reply("negative", match="hated")
    client = make_client()
    job = client.plan_map(["I loved it", "I hated it"], "Sentiment: {}", max_tokens=3)
    batch = client.submit_batch(job)
    assert batch.status == "validating"
    seen: list[str] = []
    batch = client.wait_batch(batch.id, poll_interval=0, on_status=lambda b: seen.append(b.status))
    assert seen == ["in_progress", "completed"]
    client.batch_results(batch, job)
    assert job.result().values == ["positive", "negative"]
    assert fake_server.count(CHAT_PATH) == 0  # answered by the batch, not live requests

    upload = next(r for r in fake_server.requests if r.path == FILES)
    assert upload.headers["content-type"].startswith("multipart/form-data")
    created = next(r.json for r in fake_server.requests if r.path == BATCHES)
    assert created["completion_window"] == "24h" and created["endpoint"] == BATCH_ENDPOINT


def test_answers_are_kept_so_the_same_rows_are_not_asked_again(
    make_client: Callable[..., DeepInfraClient], fake_server: FakeDeepInfra
) -> None:
    client = make_client()
    job = client.plan_map(["a", "b"], "{}", max_tokens=3)
    batch = client.wait_batch(client.submit_batch(job).id, poll_interval=0)
    client.batch_results(batch, job)
    assert client.plan_map(["a", "b"], "{}", max_tokens=3).missing == []


def test_a_job_is_picked_up_by_id_from_a_new_client(
    make_client: Callable[..., DeepInfraClient], fake_server: FakeDeepInfra
) -> None:
    first = make_client()
    job = first.plan_map(["x", "y", "z"], "Say {}", max_tokens=3)
    batch_id = first.submit_batch(job).id
    first.close()

    later = make_client()  # a new session: it knows the id only
    assert later.answer_store().pending_batch_for(row.key for row in job.rows) == batch_id
    later.wait_batch(batch_id, poll_interval=0)
    outcomes = later.batch_results(batch_id)
    assert len(outcomes) == 3
    rerun = later.plan_map(["x", "y", "z"], "Say {}", max_tokens=3)
    assert rerun.missing == [] and all(row.cached for row in rerun.rows)
    assert later.answer_store().pending_batch_for(row.key for row in rerun.rows) is None


def test_rows_that_fail_in_the_batch_keep_their_error(
    make_client: Callable[..., DeepInfraClient], fake_server: FakeDeepInfra
) -> None:
    client = make_client()
    job = client.plan_map(["a"], "{}", "no-such/model", max_tokens=3)
    batch = client.wait_batch(client.submit_batch(job).id, poll_interval=0)
    assert batch.error_file_id and not batch.output_file_id
    client.batch_results(batch, job)
    [value] = job.result().values
    assert isinstance(value, RowError) and "404" in value.message


def test_the_batch_list_shows_submitted_jobs(
    make_client: Callable[..., DeepInfraClient], fake_server: FakeDeepInfra
) -> None:
    client = make_client()
    job = client.plan_map(["a"], "{}", max_tokens=3)
    batch_id = client.submit_batch(job).id
    assert [batch.id for batch in client.batches()] == [batch_id]


def test_nothing_to_submit_is_a_clear_error(make_client: Callable[..., DeepInfraClient]) -> None:
    client = make_client()
    job = client.plan_map(["a"], "{}", max_tokens=3)
    job.rows[0].text = "known"
    with pytest.raises(InvalidArgumentError, match="every row already has an answer"):
        client.submit_batch(job)


def test_record_then_replay_the_whole_batch_flow(
    fake_server: FakeDeepInfra, library_env: Path, tmp_path: Path
) -> None:
    recording = tmp_path / "batch.json"
    fake_server.script_reply("bright", match="sun")
    with DeepInfraClient(CANARY_KEY, base_url=fake_server.api_url, record=recording) as live:
        job = live.plan_map(["sun", "moon"], "Describe {}", max_tokens=3)
        batch = live.wait_batch(live.submit_batch(job).id, poll_interval=0)
        live.batch_results(batch, job)
        recorded = job.result().values
    paths = {
        exchange["request"]["path"] for exchange in json.loads(recording.read_text())["exchanges"]
    }
    assert FILES in paths and BATCHES in paths
    assert any(path.endswith("/content") for path in paths)
    assert CANARY_KEY not in recording.read_text()

    before = len(fake_server.requests)
    with DeepInfraClient(
        replay=recording, replay_speed=0, base_url="http://127.0.0.1:9/v1/openai"
    ) as replay:
        job = replay.plan_map(["sun", "moon"], "Describe {}", max_tokens=3)
        batch = replay.wait_batch(replay.submit_batch(job).id, poll_interval=60)
        replay.batch_results(batch, job)
        assert job.result().values == recorded == ["bright", recorded[1]]
    assert len(fake_server.requests) == before


def test_the_async_client_runs_the_same_flow(fake_server: FakeDeepInfra, library_env: Path) -> None:
    import asyncio

    from deepinfra_magic.client import AsyncDeepInfraClient

    fake_server.script_reply("async answer", match="ping")

    async def main() -> list[object]:
        async with AsyncDeepInfraClient(CANARY_KEY, base_url=fake_server.api_url) as client:
            job = client.plan_map(["ping"], "{}", max_tokens=3)
            batch = await client.submit_batch(job)
            batch = await client.wait_batch(batch.id, poll_interval=0)
            await client.batch_results(batch, job)
            assert [b.id for b in await client.batches()] == [batch.id]
            return list(job.result().values)

    assert asyncio.run(main()) == ["async answer"]
