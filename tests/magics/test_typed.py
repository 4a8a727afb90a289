"""``--schema`` on ``%%deepinfra`` and ``%%deepinfra_map`` in a real IPython shell against the
fake server: the table shown, ``-o``'s ``.parsed``, the repair in the footer, the refusal's
one line, typed columns with their dtypes, distinct prompts, and the Batch API."""

from __future__ import annotations

import dataclasses
import enum
import json

import pandas as pd
import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from deepinfra_magic.errors import SchemaError
from deepinfra_magic.maps import RowError
from deepinfra_magic.schema import SchemaValidationError
from deepinfra_magic.types import ChatResult
from tests.fake_deepinfra import CHAT_PATH, FakeDeepInfra
from tests.fake_deepinfra.structured import JSON_MODE_ONLY_MODEL, NOT_JSON_REPLY, REPAIR_MODEL
from tests.kernel_helpers import MARKDOWN, PLAIN, Reply, chat_bodies

SPEC = "sentiment: positive|negative|mixed, confidence: float"


def chat(ip: InteractiveShell, cell: str, line: str) -> tuple[Reply, str]:
    """A rich frontend's display messages of the cell, and what went to stderr."""
    with capture_output() as captured:
        ip.run_cell_magic("deepinfra", line, cell)
    return Reply(captured.outputs), captured.stderr


def run_map(ip: InteractiveShell, line: str, cell: str) -> str:
    with capture_output() as captured:
        ip.run_cell_magic("deepinfra_map", line, cell)
    return captured.stdout + "".join(o.data.get(PLAIN, "") for o in captured.outputs)


class Mood(enum.Enum):
    HAPPY = "happy"
    SAD = "sad"


@dataclasses.dataclass
class Label:
    sentiment: str
    stars: int


def test_the_value_is_a_one_row_table_with_the_raw_json_as_plain_text(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    reply, _ = chat(ip, "Label: I loved it", f"--schema '{SPEC}' -o answer")
    result = ip.user_ns["answer"]
    assert isinstance(result, ChatResult) and set(result.parsed) == {"sentiment", "confidence"}
    markdown = reply.final.data[MARKDOWN]
    assert markdown.splitlines()[0] == "| sentiment | confidence |"
    assert result.parsed["sentiment"] in markdown.splitlines()[2]
    assert reply.final_text == result.text and result.text.startswith("{")
    (body,) = chat_bodies(fake_server)
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["strict"] is True
    assert body["stream"] is True  # the reply still streams live
    assert "repair" not in reply.footer_text


def test_names_in_the_notebook_give_their_own_types(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    ip.user_ns.update(Mood=Mood, Label=Label)
    chat(ip, "How do I feel?", "--schema Mood -o mood")
    assert isinstance(ip.user_ns["mood"].parsed, Mood)
    chat(ip, "Label it", "--schema Label -o label")
    assert isinstance(ip.user_ns["label"].parsed, Label)


def test_a_bad_spec_is_one_line_before_any_request(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    with pytest.raises(SchemaError) as caught:
        ip.run_cell_magic("deepinfra", "--schema nothing_here", "Hi")
    assert "\n" not in str(caught.value) and "label: positive|negative|mixed" in str(caught.value)
    with pytest.raises(SchemaError):
        ip.run_cell_magic("deepinfra_map", "words --schema 'x: complex'", "{}")
    assert chat_bodies(fake_server) == []


def test_a_repair_is_marked_in_the_footer(ip: InteractiveShell, fake_server: FakeDeepInfra) -> None:
    reply, _ = chat(ip, "Label: meh", f"--schema '{SPEC}' -m {REPAIR_MODEL} -o answer")
    assert "1 repair" in reply.footer_text
    assert ip.user_ns["answer"].parsed["sentiment"] in ("positive", "negative", "mixed")
    assert len(chat_bodies(fake_server)) == 2


def test_a_failed_repair_keeps_the_raw_text_on_screen_and_in_out_and_ends_in_one_line(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    for _ in range(2):
        fake_server.script_reply("not JSON at all")
    with capture_output() as captured:
        result = ip.run_cell(f"%%deepinfra --schema '{SPEC}' -o answer\nLabel: meh")
    assert isinstance(result.error_in_exec, SchemaValidationError)
    assert "after 1 repair" in str(result.error_in_exec)
    kept = ip.user_ns["answer"]
    assert kept.text == "not JSON at all" and kept.parsed is None
    reply = Reply(captured.outputs)
    assert "not JSON at all" in reply.final_text and "1 repair" in reply.footer_text


def test_a_refusal_falls_back_with_one_line_and_is_remembered_for_the_session(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    _, stderr = chat(ip, "Label: ok", f"--schema '{SPEC}' -m {JSON_MODE_ONLY_MODEL} -o first")
    assert len(stderr.strip().splitlines()) == 1 and "JSON mode" in stderr
    _, stderr = chat(ip, "Label: again", f"--schema '{SPEC}' -m {JSON_MODE_ONLY_MODEL}")
    assert stderr == ""
    kinds = [body["response_format"]["type"] for body in chat_bodies(fake_server)]
    assert kinds == ["json_schema", "json_object", "json_object"]
    assert ip.user_ns["first"].parsed["sentiment"] in ("positive", "negative", "mixed")


@pytest.fixture
def reviews(ip: InteractiveShell) -> pd.DataFrame:
    frame = pd.DataFrame(
        {"review": ["Loved it", "Dull", "Loved it", "Fine", "Dull"]}, index=list("abcde")
    )
    ip.user_ns["reviews"] = frame
    return frame


def test_map_column_gives_typed_prefixed_columns(
    ip: InteractiveShell, fake_server: FakeDeepInfra, reviews: pd.DataFrame
) -> None:
    shown = run_map(ip, f"reviews --column label --schema '{SPEC}'", "Label: {review}")
    assert str(reviews["label_sentiment"].dtype) == "category"
    assert list(reviews["label_sentiment"].cat.categories) == ["positive", "negative", "mixed"]
    assert str(reviews["label_confidence"].dtype) == "Float64"
    assert "label" not in reviews.columns
    assert "5 rows, 3 distinct prompts" in shown
    assert len(chat_bodies(fake_server)) == 3
    assert reviews.loc["a", "label_confidence"] == reviews.loc["c", "label_confidence"]


def test_map_empty_column_gives_bare_field_names_and_out_a_frame(
    ip: InteractiveShell, fake_server: FakeDeepInfra, reviews: pd.DataFrame
) -> None:
    run_map(ip, f"reviews --column '' -o typed --schema '{SPEC}'", "Label: {review}")
    assert {"sentiment", "confidence"} <= set(reviews.columns)
    typed = ip.user_ns["typed"]
    assert list(typed.index) == list("abcde") and list(typed.columns) == ["sentiment", "confidence"]
    assert {c: str(t) for c, t in typed.dtypes.items()} == {
        "sentiment": "category",
        "confidence": "Float64",
    }


def test_map_failed_rows_keep_row_errors_with_na_fields_and_count_in_the_summary(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    ip.user_ns["words"] = ["alpha"]
    for _ in range(2):
        fake_server.script_reply("no JSON")
    shown = run_map(ip, f"words -o typed --schema '{SPEC}'", "Label {}")
    assert "1 failed" in shown
    assert ip.user_ns["typed"].isna().all(axis=None)
    last = ip.magics_manager.registry["DeepInfraMagics"].last_map
    assert isinstance(last.values[0], RowError) and "after" not in last.values[0].message


def test_map_summary_shows_the_estimate_beside_the_actual(
    ip: InteractiveShell, fake_server: FakeDeepInfra, reviews: pd.DataFrame
) -> None:
    shown = run_map(ip, f"reviews -o typed --max-tokens 40 --schema '{SPEC}'", "Label: {review}")
    assert "Estimated" in shown and "actual" in shown


def test_map_batch_api_sends_the_same_response_format_in_every_line(
    ip: InteractiveShell, fake_server: FakeDeepInfra, reviews: pd.DataFrame
) -> None:
    run_map(ip, f"reviews --batch-api -o typed --schema '{SPEC}'", "Label: {review}")
    typed = ip.user_ns["typed"]
    assert typed["sentiment"].notna().all() and str(typed["confidence"].dtype) == "Float64"
    (upload,) = [f for f in fake_server.batch_state.files.values() if f.purpose == "batch"]
    lines = [json.loads(line) for line in upload.data.decode().splitlines()]
    assert len(lines) == 3  # distinct prompts only
    formats = {json.dumps(line["body"]["response_format"], sort_keys=True) for line in lines}
    assert len(formats) == 1 and json.loads(formats.pop())["type"] == "json_schema"
    assert not [r for r in fake_server.requests if r.path == CHAT_PATH]


def test_the_progress_line_names_the_distinct_prompts_when_fewer_than_rows() -> None:
    from deepinfra_magic.display.maps import progress_line
    from deepinfra_magic.maps import MapProgress

    progress = MapProgress(1000, 10, 0, 0, 5, 5, None, 1.0, 16, 10, distinct=700)
    assert progress_line(progress, "m").startswith("`m` · 1000 rows, 700 distinct prompts · ")
    same = MapProgress(5, 1, 0, 0, 5, 5, None, 1.0, 16, 1, distinct=5)
    assert "distinct" not in progress_line(same, "m")


def test_a_terminal_prints_the_first_reply_then_the_repaired_json_whole(
    ip: InteractiveShell, fake_server: FakeDeepInfra, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.run_cell_magic("deepinfra", f"--schema '{SPEC}' -m {REPAIR_MODEL} -o answer", "Label: meh")
    printed = capsys.readouterr().out
    repaired = ip.user_ns["answer"].text
    assert printed.count(NOT_JSON_REPLY) == 1 and f"\n\n{repaired}\n\n" in printed
    assert "1 repair" in printed.splitlines()[-1]


def test_a_repair_request_that_fails_keeps_the_first_reply_out_of_the_conversation(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    fake_server.add_fault(times=1)  # the first request goes through as usual
    fake_server.add_fault(status=503, times=None)  # the repair request fails, retries too
    with capture_output():
        result = ip.run_cell(f"%%deepinfra --schema '{SPEC}' -m {REPAIR_MODEL} -o answer\nmeh")
    assert result.error_in_exec is not None and "503" in str(result.error_in_exec)
    kept = ip.user_ns["answer"]
    assert kept.text == NOT_JSON_REPLY and kept.parsed is None and kept.error is not None
    assert ip.magics_manager.registry["DeepInfraMagics"].conversation.messages("next") == [
        {"role": "user", "content": "next"}
    ]
