"""``DeepInfraClient.map`` / ``AsyncDeepInfraClient.map`` against the fake server: rows in,
answers out in order, failed rows kept, resume from disk (also in a new process), adaptive
concurrency under 429s with every row answered exactly once, and Ctrl-C. The map wing's
parts alone are tested in tests/maps."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from deepinfra_magic.client import AsyncDeepInfraClient, DeepInfraClient
from deepinfra_magic.errors import InvalidArgumentError
from deepinfra_magic.maps import MapInterrupted, MapProgress, RowError
from tests.fake_deepinfra import CANARY_KEY, CHAT_PATH, FakeDeepInfra

REPO = Path(__file__).resolve().parents[2]


def prompts_sent(server: FakeDeepInfra) -> list[str]:
    """The user prompt of every chat request the server received, in order."""
    return [r.json["messages"][-1]["content"] for r in server.requests if r.path == CHAT_PATH]


def test_list_answers_come_back_in_order(
    make_client: Callable[..., DeepInfraClient], fake_server: FakeDeepInfra
) -> None:
    for word in ("apple", "pear", "plum"):
        fake_server.script_reply(f"fruit:{word}", match=word)
    result = make_client().map(["apple", "pear", "plum"], "Name the fruit {}", max_tokens=5)
    assert result.values == ["fruit:apple", "fruit:pear", "fruit:plum"]
    assert sorted(prompts_sent(fake_server)) == [
        "Name the fruit apple",
        "Name the fruit pear",
        "Name the fruit plum",
    ]
    assert result.output() == result.values
    assert result.usage.prompt_tokens > 0


def test_the_result_is_a_sequence_of_its_answers_in_row_order(
    make_client: Callable[..., DeepInfraClient], fake_server: FakeDeepInfra
) -> None:
    fake_server.add_fault(status=422, message="bad field: stop")  # the first row fails
    for word in ("pear", "plum"):
        fake_server.script_reply(f"fruit:{word}", match=word)
    result = make_client().map(["apple", "pear", "plum"], "{}", concurrency=1, max_tokens=5)
    assert len(result) == 3
    assert list(result) == result.values and [*result] == result.values
    failed = result[0]
    assert isinstance(failed, RowError) and "stop" in failed.message
    assert (result[1], result[-1]) == ("fruit:pear", "fruit:plum")
    assert result[1:] == ["fruit:pear", "fruit:plum"]
    assert "fruit:plum" in result and result.index("fruit:pear") == 1
    with pytest.raises(IndexError):
        result[3]


def test_dataframe_rows_fill_columns_and_answers_align_with_the_index(
    make_client: Callable[..., DeepInfraClient], fake_server: FakeDeepInfra
) -> None:
    frame = pd.DataFrame({"title": ["Dune", "Emma"], "year": [1965, 1815]}, index=["x", "y"])
    fake_server.script_reply("sci-fi", match="Dune")
    fake_server.script_reply("novel", match="Emma")
    result = make_client().map(frame, "{title} ({year}): genre?", max_tokens=3)
    series = result.output()
    assert list(series.index) == ["x", "y"]
    assert series["x"] == "sci-fi" and series["y"] == "novel"
    assert "Dune (1965): genre?" in prompts_sent(fake_server)


def test_series_items_use_item_and_system_prompt_goes_first(
    make_client: Callable[..., DeepInfraClient], fake_server: FakeDeepInfra
) -> None:
    series = pd.Series(["red", "blue"], index=[10, 20])
    result = make_client().map(series, "Color: {item}", system="One word.", max_tokens=3)
    assert list(result.output().index) == [10, 20]
    first = next(r.json for r in fake_server.requests if r.path == CHAT_PATH)
    assert first["messages"][0] == {"role": "system", "content": "One word."}


def test_a_template_field_that_is_not_a_column_fails_before_sending(
    make_client: Callable[..., DeepInfraClient], fake_server: FakeDeepInfra
) -> None:
    frame = pd.DataFrame({"text": ["a"]})
    with pytest.raises(InvalidArgumentError, match=r"\{body\}.*columns: text.*\{\{"):
        make_client().map(frame, "Say {body}")
    assert fake_server.count(CHAT_PATH) == 0


def test_failed_rows_keep_their_error_and_a_rerun_retries_only_them(
    make_client: Callable[..., DeepInfraClient], fake_server: FakeDeepInfra
) -> None:
    client = make_client()
    fake_server.add_fault(status=422, message="bad field: stop")  # the first row's request
    result = client.map(["one", "two", "three"], "{}", concurrency=1, max_tokens=3)
    assert isinstance(result.values[0], RowError)
    assert "stop" in result.values[0].message
    assert result.failed == 1 and result.answered == 2
    assert result.errors == {0: result.values[0].message}

    again = client.map(["one", "two", "three"], "{}", concurrency=1, max_tokens=3)
    assert again.failed == 0 and again.answered == 3 and again.cached == 2
    assert prompts_sent(fake_server)[-1] == "one"
    assert fake_server.count(CHAT_PATH) == 4


def test_resume_in_a_new_process_sends_only_missing_rows(
    make_client: Callable[..., DeepInfraClient], fake_server: FakeDeepInfra, library_env: Path
) -> None:
    make_client().map(["a", "b", "c"], "Word: {}", max_tokens=4, temperature=0)
    assert fake_server.count(CHAT_PATH) == 3
    script = (
        "from deepinfra_magic import DeepInfraClient\n"
        "client = DeepInfraClient()\n"
        "result = client.map(['a', 'b', 'c', 'd', 'e'], 'Word: {}', max_tokens=4, temperature=0)\n"
        "print(result.cached, result.answered)\n"
    )
    env = {
        **os.environ,
        "XDG_CACHE_HOME": str(library_env),
        "DEEPINFRA_API_KEY": CANARY_KEY,
        "DEEPINFRA_BASE_URL": fake_server.api_url,
    }
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=REPO, capture_output=True, text=True,
        timeout=60, check=True,
    )  # fmt: skip
    assert done.stdout.split() == ["3", "5"]
    assert sorted(prompts_sent(fake_server)[3:]) == ["Word: d", "Word: e"]


def test_changed_parameters_are_new_questions(
    make_client: Callable[..., DeepInfraClient], fake_server: FakeDeepInfra
) -> None:
    client = make_client()
    client.map(["a"], "{}", max_tokens=4)
    client.map(["a"], "{}", max_tokens=5)
    client.map(["a"], "{}", max_tokens=5, top_p=0.5)
    assert fake_server.count(CHAT_PATH) == 3


def test_answers_are_kept_per_server_so_another_server_is_asked_again(
    make_client: Callable[..., DeepInfraClient], fake_server: FakeDeepInfra
) -> None:
    # Two servers with a model of the same name (a local server with random weights, say),
    # one answer store on disk.
    items = ["apple", "pear"]
    for word in items:
        fake_server.script_reply(f"first server: {word}", match=word)
    first = make_client().map(items, "Name {}", max_tokens=5)
    with FakeDeepInfra() as other:
        for word in items:
            other.script_reply(f"second server: {word}", match=word)
        second = make_client(base_url=other.api_url).map(items, "Name {}", max_tokens=5)
        assert other.count(CHAT_PATH) == 2
    assert first.values == ["first server: apple", "first server: pear"]
    assert second.values == ["second server: apple", "second server: pear"]
    assert second.cached == 0
    again = make_client().map(items, "Name {}", max_tokens=5)  # the first server's, kept
    assert again.values == first.values and again.cached == 2
    assert fake_server.count(CHAT_PATH) == 2


def test_429s_halve_concurrency_and_every_row_is_answered_exactly_once(
    make_client: Callable[..., DeepInfraClient], fake_server: FakeDeepInfra
) -> None:
    fake_server.configure(max_concurrent=4, first_byte_delay=0.1)
    items = [f"row-{index:03d}" for index in range(60)]
    for item in items:
        fake_server.script_reply(f"answer {item}", match=item)
    result = make_client().map(items, "{}", concurrency=16, max_tokens=3)
    assert result.values == [f"answer {item}" for item in items]
    sent = Counter(prompts_sent(fake_server))
    refused = sum(row.rate_limited for row in result.rows)
    assert refused > 0  # the server did say 429 …
    for row in result.rows:  # … and each row got exactly one request past the limit
        assert sent[row.prompt] == 1 + row.rate_limited
    assert fake_server.peak_concurrency <= 4


def test_async_map_behaves_the_same(fake_server: FakeDeepInfra, library_env: Path) -> None:
    fake_server.configure(max_concurrent=3)
    items = [f"q{index}" for index in range(20)]

    async def main() -> list[object]:
        async with AsyncDeepInfraClient(CANARY_KEY, base_url=fake_server.api_url) as client:
            first = await client.map(items, "Q {}", concurrency=8, max_tokens=3)
            second = await client.map(items, "Q {}", concurrency=8, max_tokens=3)
            assert second.cached == 20
            return first.values

    values = asyncio.run(main())
    assert all(isinstance(value, str) and value for value in values)
    assert len(set(prompts_sent(fake_server))) == 20


def test_ctrl_c_keeps_finished_rows_hangs_up_and_a_rerun_sends_the_rest(
    make_sync_client: Callable[..., DeepInfraClient], fake_server: FakeDeepInfra
) -> None:
    fake_server.add_fault(times=3, first_byte_delay=0.0)  # three quick answers, then
    fake_server.add_fault(times=None, first_byte_delay=30.0)  # nothing for 30 s
    client = make_sync_client()
    items = [f"i{index}" for index in range(12)]

    def press_ctrl_c(progress: MapProgress) -> None:
        if progress.done >= 3:
            raise KeyboardInterrupt

    with pytest.raises(MapInterrupted) as stopped:
        client.map(items, "{}", concurrency=2, max_tokens=3, on_progress=press_ctrl_c)
    partial = stopped.value.result
    assert isinstance(stopped.value, KeyboardInterrupt)
    assert partial.interrupted and partial.answered == 3 and partial.remaining == 9
    assert partial.answered + partial.remaining == 12
    assert fake_server.wait_for_disconnect(timeout=10, count=2)  # both open requests cut
    fake_server.reset()  # answers come quickly again
    before = fake_server.count(CHAT_PATH)
    rest = client.map(items, "{}", concurrency=2, max_tokens=3)
    assert rest.answered == 12 and rest.cached == partial.answered
    assert fake_server.count(CHAT_PATH) - before == partial.remaining


def test_a_bad_key_stops_the_run_instead_of_failing_every_row(
    make_client: Callable[..., DeepInfraClient], fake_server: FakeDeepInfra
) -> None:
    from deepinfra_magic.errors import AuthenticationError

    fake_server.configure(valid_keys={"sk-other"})
    with pytest.raises(AuthenticationError):
        make_client().map([f"x{i}" for i in range(30)], "{}", concurrency=2)
    assert fake_server.count(CHAT_PATH) <= 2
