"""``%%deepinfra_map``, ``%deepinfra_batches`` and ``%deepinfra_usage`` in a real IPython
shell against the fake server (terminal and rich frontends)."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from deepinfra_magic.client import DeepInfraClient
from deepinfra_magic.magics import maps as map_family
from deepinfra_magic.maps import MapProgress, RowError
from tests.fake_deepinfra import CANARY_KEY, CHAT_PATH, FakeDeepInfra
from tests.kernel_helpers import PLAIN, InterruptingPublisher, all_text

REPO = Path(__file__).resolve().parents[2]
BATCHES = "/v1/openai/batches"


def run_map(ip: InteractiveShell, line: str, cell: str) -> str:
    """Run the cell magic in a terminal-like shell; returns what it printed."""
    with capture_output() as captured:
        ip.run_cell_magic("deepinfra_map", line, cell)
    return captured.stdout + "".join(o.data.get(PLAIN, "") for o in captured.outputs)


@pytest.fixture
def reviews(ip: InteractiveShell, fake_server: FakeDeepInfra) -> pd.DataFrame:
    frame = pd.DataFrame(
        {"review": ["Loved every minute", "Dull and far too long", "It was fine"]},
        index=["r1", "r2", "r3"],
    )
    ip.user_ns["reviews"] = frame
    for word, label in (("Loved", "positive"), ("Dull", "negative"), ("fine", "neutral")):
        fake_server.script_reply(label, match=word)
    return frame


def test_column_adds_the_answers_to_the_dataframe(
    ip: InteractiveShell, reviews: pd.DataFrame, fake_server: FakeDeepInfra
) -> None:
    shown = run_map(ip, "reviews --column sentiment --max-tokens 3", "Sentiment of: {review}")
    assert list(reviews["sentiment"]) == ["positive", "negative", "neutral"]
    assert "3 rows" in shown and "3 answered" in shown
    assert "Estimated before sending: up to" in shown and "at catalog prices" in shown
    assert fake_server.count(CHAT_PATH) == 3


def test_out_stores_a_series_on_the_index_and_lists_stay_lists(
    ip: InteractiveShell, reviews: pd.DataFrame
) -> None:
    run_map(ip, "reviews -o labels --max-tokens 3", "Sentiment of: {review}")
    labels = ip.user_ns["labels"]
    assert isinstance(labels, pd.Series) and labels["r2"] == "negative"
    ip.user_ns["words"] = ["Loved", "Dull"]
    run_map(ip, "words -o out --max-tokens 3", "Word: {}")
    assert isinstance(ip.user_ns["out"], list) and len(ip.user_ns["out"]) == 2


def test_a_rerun_sends_nothing_and_says_the_rows_came_from_earlier_runs(
    ip: InteractiveShell, reviews: pd.DataFrame, fake_server: FakeDeepInfra
) -> None:
    run_map(ip, "reviews -o first --max-tokens 3", "Sentiment of: {review}")
    shown = run_map(ip, "reviews -o second --max-tokens 3", "Sentiment of: {review}")
    assert fake_server.count(CHAT_PATH) == 3
    assert "3 from earlier runs" in shown
    assert list(ip.user_ns["second"]) == list(ip.user_ns["first"])


def test_failed_rows_keep_their_error_in_the_output(
    ip: InteractiveShell, reviews: pd.DataFrame, fake_server: FakeDeepInfra
) -> None:
    fake_server.add_fault(status=422, message="prompt rejected")
    shown = run_map(
        ip, "reviews --column label --concurrency 1 --max-tokens 3", "Sentiment of: {review}"
    )
    first = reviews["label"]["r1"]
    assert isinstance(first, RowError) and "prompt rejected" in first.message
    assert "1 failed" in shown and "prompt rejected" in shown
    assert list(reviews["label"][1:]) == ["negative", "neutral"]


def test_resume_after_a_kernel_restart_sends_only_missing_rows(
    ip: InteractiveShell, reviews: pd.DataFrame, fake_server: FakeDeepInfra, magic_env: Path
) -> None:
    run_map(ip, "reviews -o labels --max-tokens 3 -t 0", "Sentiment of: {review}")
    script = (
        "import pandas as pd\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "ip = InteractiveShell.instance()\n"
        "ip.run_line_magic('load_ext', 'deepinfra_magic')\n"
        "ip.user_ns['reviews'] = pd.DataFrame({'review': ['Loved every minute', "
        "'Dull and far too long', 'It was fine', 'A new one']})\n"
        "ip.run_cell_magic('deepinfra_map', 'reviews -o labels --max-tokens 3 -t 0', "
        "'Sentiment of: {review}')\n"
        "print('ANSWERS', sum(isinstance(v, str) for v in ip.user_ns['labels']))\n"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(magic_env),
        "XDG_CACHE_HOME": str(magic_env),
        "DEEPINFRA_API_KEY": CANARY_KEY,
        "DEEPINFRA_BASE_URL": fake_server.api_url,
    }
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=REPO, capture_output=True, text=True,
        timeout=120, check=True,
    )  # fmt: skip
    assert "ANSWERS 4" in done.stdout
    store = magic_env / "deepinfra-magic" / "map-answers.sqlite3"
    assert store.is_file() and CANARY_KEY.encode() not in store.read_bytes()
    sent = [r.json["messages"][-1]["content"] for r in fake_server.requests if r.path == CHAT_PATH]
    assert sent[3:] == ["Sentiment of: A new one"]


def test_cost_above_the_threshold_needs_yes(
    ip: InteractiveShell, reviews: pd.DataFrame, fake_server: FakeDeepInfra
) -> None:
    ip.run_line_magic("config", "DeepInfraMagics.map_confirm_dollars = 0.0000001")
    with pytest.raises(UsageError, match=r"up to \$.*map_confirm_dollars.*--yes"):
        ip.run_cell_magic("deepinfra_map", "reviews -o labels", "Sentiment of: {review}")
    assert fake_server.count(CHAT_PATH) == 0
    run_map(ip, "reviews -o labels --yes --max-tokens 3", "Sentiment of: {review}")
    assert fake_server.count(CHAT_PATH) == 3


class _CtrlCAfterRows(InterruptingPublisher):
    """Ctrl-C lands while a progress update is published that shows at least ``rows`` done,
    once the server has received ``sent`` chat requests (so the rows then open are known)."""

    def __init__(self, rows: int, sent: int, server: FakeDeepInfra, **kwargs: Any) -> None:
        super().__init__(interrupt_at=0, **kwargs)
        self.rows = rows
        self.sent = sent
        self.server = server

    def publish(
        self, data: dict[str, Any], metadata: Any = None, source: Any = None, **kw: Any
    ) -> None:
        done = re.search(r"(\d+)/\d+ done", data.get(PLAIN, ""))
        if (
            kw.get("update")
            and done
            and int(done.group(1)) >= self.rows
            and self.rows
            and self.server.count(CHAT_PATH) >= self.sent
        ):
            self.rows = 0
            raise KeyboardInterrupt
        super().publish(data, metadata, **kw)


def test_ctrl_c_stops_at_once_keeps_finished_rows_and_says_how_many_remain(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    items = [f"item {index:02d}" for index in range(12)]
    # The first three rows are answered at once, in whatever order their requests arrive;
    # every other row gets nothing for 30 s.
    for item in items[:3]:
        fake_server.add_fault(match=item, first_byte_delay=0.0)
    fake_server.add_fault(times=None, first_byte_delay=30.0)
    ip.user_ns["items"] = items
    # Ctrl-C once three rows are done and the next two are open (two at a time).
    publisher = _CtrlCAfterRows(3, sent=5, server=fake_server, shell=ip)
    ip.display_pub = publisher
    with pytest.raises(KeyboardInterrupt):
        ip.run_cell_magic("deepinfra_map", "items -o out --concurrency 2 --max-tokens 3", "{}")
    summary = publisher.outputs[-1]["data"][PLAIN]
    answered = sum(isinstance(value, str) for value in ip.user_ns["out"])
    assert answered == 3 and ip.user_ns["out"][3:] == [None] * 9
    assert "9 remain" in summary and "Interrupted" in summary
    assert fake_server.wait_for_disconnect(timeout=10, count=2)  # stopped at once
    fake_server.reset()  # answers come quickly again
    remaining = 9
    before = fake_server.count(CHAT_PATH)
    ip.display_pub = InterruptingPublisher(10**6, shell=ip)
    ip.run_cell_magic("deepinfra_map", "items -o out --concurrency 2 --max-tokens 3", "{}")
    assert fake_server.count(CHAT_PATH) - before == remaining
    assert all(isinstance(value, str) for value in ip.user_ns["out"])


def test_rich_frontends_get_a_live_progress_line_then_the_summary(
    ip: InteractiveShell, reviews: pd.DataFrame
) -> None:
    with capture_output() as captured:
        ip.run_cell_magic("deepinfra_map", "reviews -o x --max-tokens 3", "Sentiment: {review}")
    text = all_text(captured.outputs)
    assert "0/3 done" in text and "rows/s" in text
    assert "| row | answer |" in captured.outputs[-1].data["text/markdown"]


def test_batch_api_end_to_end_and_pick_up_after_a_restart(
    ip: InteractiveShell, reviews: pd.DataFrame, fake_server: FakeDeepInfra
) -> None:
    ip.run_line_magic("config", "DeepInfraMagics.batch_poll_interval = 0")
    shown = run_map(ip, "reviews --column label --batch-api --max-tokens 3", "Sentiment: {review}")
    assert list(reviews["label"]) == ["positive", "negative", "neutral"]
    assert "Batch API job" in shown
    assert fake_server.count(CHAT_PATH) == 0 and fake_server.count(BATCHES, "POST") == 1

    # Submitted, then the kernel went away before the answers came back: a new session
    # re-runs the cell, which picks the job up by its id instead of submitting again.
    ip.user_ns["more"] = ["Loved it again", "Dull again"]
    fake_server.script_reply("positive", match="Loved")
    fake_server.script_reply("negative", match="Dull")
    client = ip.magics_manager.registry["DeepInfraMagics"].client()
    job = client.plan_map(ip.user_ns["more"], "Sentiment: {}", temperature=0.7, max_tokens=3)
    batch_id = client.submit_batch(job).id
    ip.run_line_magic("reload_ext", "deepinfra_magic")
    ip.run_line_magic("config", "DeepInfraMagics.batch_poll_interval = 0")
    shown = run_map(ip, "more -o labels --batch-api --max-tokens 3", "Sentiment: {}")
    assert f"Picked up batch {batch_id}" in shown
    assert fake_server.count(BATCHES, "POST") == 2  # the one above and the first cell's
    assert ip.user_ns["labels"] == ["positive", "negative"]


def test_batches_lists_jobs_and_collects_one_by_id(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    client = ip.magics_manager.registry["DeepInfraMagics"].client()
    job = client.plan_map(["a", "b"], "{}", max_tokens=3)
    batch_id = client.submit_batch(job).id
    with capture_output() as listed:
        ip.run_line_magic("deepinfra_batches", "")
    assert batch_id in all_text(listed.outputs) and "validating" in all_text(listed.outputs)
    with capture_output() as first:
        ip.run_line_magic("deepinfra_batches", batch_id)
    assert "in_progress" in first.stdout
    with capture_output() as collected:
        ip.run_line_magic("deepinfra_batches", batch_id)
    assert "Collected 2 answers" in collected.stdout
    assert client.plan_map(["a", "b"], "{}", max_tokens=3).missing == []


def test_usage_totals_by_kind_and_model(
    ip: InteractiveShell, reviews: pd.DataFrame, fake_server: FakeDeepInfra
) -> None:
    ip.run_line_magic("deepinfra_usage", "--reset")
    with capture_output():
        ip.run_cell_magic("deepinfra", "--max-tokens 5", "Hello")
        ip.run_line_magic("deepinfra_image", "-n 2 two owls")
    run_map(ip, "reviews -o x --max-tokens 3", "Sentiment: {review}")
    with capture_output() as captured:
        ip.run_line_magic("deepinfra_usage", "")
    text = all_text(captured.outputs)
    assert "6 requests" in text and "2 images" in text
    assert re.search(r"\| chat \| 1 \|", text) and re.search(r"\| map \| 3 \|", text)
    assert re.search(r"\| images \| 2 \| 0 \| 0 \| 2 \|", text)
    assert "Llama-3.3-70B-Instruct-Turbo" in text
    assert CANARY_KEY not in text


def test_bad_input_gets_one_line_errors(ip: InteractiveShell, reviews: pd.DataFrame) -> None:
    with pytest.raises(UsageError, match="'nothing' is not defined"):
        ip.run_cell_magic("deepinfra_map", "nothing", "{}")
    ip.user_ns["plain"] = ["a"]
    with pytest.raises(UsageError, match="--column needs a pandas DataFrame"):
        ip.run_cell_magic("deepinfra_map", "plain --column x", "{}")
    with pytest.raises(UsageError, match="the cell is empty"):
        ip.run_cell_magic("deepinfra_map", "reviews", "  \n")


def test_a_failed_batch_is_reported_in_one_line_and_a_rerun_submits_anew(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    from deepinfra_magic.errors import ServerError

    ip.run_line_magic("config", "DeepInfraMagics.batch_poll_interval = 0")
    ip.user_ns["words"] = ["alpha", "beta"]
    client = ip.magics_manager.registry["DeepInfraMagics"].client()
    job = client.plan_map(ip.user_ns["words"], "Say {}", temperature=0.7, max_tokens=3)
    batch_id = client.submit_batch(job).id
    failed = fake_server.batch_state.batches[batch_id]  # DeepInfra gave up on this job
    failed.status = "failed"
    failed.errors = {"object": "list", "data": [{"code": "x", "message": "model overloaded"}]}
    with pytest.raises(ServerError, match=f"Batch {batch_id} ended failed.*model overloaded"):
        with capture_output():
            ip.run_cell_magic("deepinfra_map", "words -o out --batch-api --max-tokens 3", "Say {}")
    assert ip.user_ns["out"] == [None, None]
    run_map(ip, "words -o out --batch-api --max-tokens 3", "Say {}")
    assert fake_server.count(BATCHES, "POST") == 2
    assert all(isinstance(value, str) for value in ip.user_ns["out"])
    with capture_output() as shown:
        ip.run_line_magic("deepinfra_batches", batch_id)
    assert "failed" in shown.stdout and "no answers to collect" in shown.stdout


class _CtrlCOn(InterruptingPublisher):
    """Ctrl-C lands while a display update containing ``text`` is published (once)."""

    def __init__(self, text: str, **kwargs: Any) -> None:
        super().__init__(interrupt_at=0, **kwargs)
        self.text: str | None = text

    def publish(
        self, data: dict[str, Any], metadata: Any = None, source: Any = None, **kw: Any
    ) -> None:
        if kw.get("update") and self.text and self.text in data.get(PLAIN, ""):
            self.text = None
            raise KeyboardInterrupt
        super().publish(data, metadata, **kw)


def test_ctrl_c_while_waiting_for_a_batch_leaves_the_job_running(
    ip: InteractiveShell, reviews: pd.DataFrame, fake_server: FakeDeepInfra
) -> None:
    ip.run_line_magic("config", "DeepInfraMagics.batch_poll_interval = 0")
    publisher = _CtrlCOn("in_progress", shell=ip)
    ip.display_pub = publisher
    with pytest.raises(KeyboardInterrupt):
        ip.run_cell_magic("deepinfra_map", "reviews -o x --batch-api --max-tokens 3", "{review}")
    summary = publisher.outputs[-1]["data"][PLAIN]
    assert "keeps running on DeepInfra" in summary and "3 remaining" in summary
    ip.run_cell_magic("deepinfra_map", "reviews -o x --batch-api --max-tokens 3", "{review}")
    assert "Picked up batch" in all_text(publisher.rich_outputs)
    assert fake_server.count(BATCHES, "POST") == 1
    assert list(ip.user_ns["x"]) == ["positive", "negative", "neutral"]


def test_batches_falls_back_to_the_jobs_submitted_here_when_listing_is_refused(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    client = ip.magics_manager.registry["DeepInfraMagics"].client()
    batch_id = client.submit_batch(client.plan_map(["a"], "{}", max_tokens=3)).id
    # deepinfra-openapi.json: GET /v1/openai/batches has ``after`` as a required parameter.
    fake_server.add_fault(path=BATCHES, status=422, body_style="detail_list")
    with capture_output() as listed:
        ip.run_line_magic("deepinfra_batches", "")
    assert batch_id in all_text(listed.outputs)


# --- run_map without a shell: a progress view that presses Ctrl-C ---

MakeClient = Callable[..., DeepInfraClient]


class MapView:
    """A map progress view that presses Ctrl-C once ``stop_after`` rows are done."""

    def __init__(self, stop_after: int) -> None:
        self.stop_after = stop_after

        self.summary = ""
        self.stopped = False

    def update(self, progress: MapProgress) -> None:
        if progress.done >= self.stop_after:
            raise KeyboardInterrupt

    def finish(self, summary: str, *, stopped: bool = False) -> None:
        self.summary, self.stopped = summary, stopped


def test_ctrl_c_during_a_map_keeps_the_rows_answered_so_far(
    make_sync_client: MakeClient, fake_server: FakeDeepInfra
) -> None:
    fake_server.add_fault(times=2, first_byte_delay=0.0)  # two quick answers, then
    fake_server.add_fault(times=None, first_byte_delay=30.0)  # nothing for 30 s
    client = make_sync_client()
    job = client.plan_map([f"row {i}" for i in range(8)], "Say {}", max_tokens=3, resume=False)
    notes: list[str] = []
    view = MapView(stop_after=2)
    outcome = map_family.run_map(client, job, view, map_family.MapCall(concurrency=1), notes)
    result = outcome.value
    assert outcome.interrupted and result.interrupted
    assert result.answered == 2 and result.remaining == 6
    assert "Interrupted" in view.summary and view.stopped
