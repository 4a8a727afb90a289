"""The live view's engine (display/live.py): pacing and freezing, on a fake clock (no
sleeps, no timing thresholds), seen through a recording publisher."""

from __future__ import annotations

import pytest

from deepinfra_magic.display import MarkdownContext, ReplyView, Throttle, split_blocks
from tests.display.recorder import Clock, Recorder, live_texts, stream, words
from tests.kernel_helpers import MARKDOWN, display_id

# --- Throttle -------------------------------------------------------------------------------------


def test_throttle_paces_updates_at_the_interval_and_waits_a_little_for_more_text() -> None:
    clock = Clock()
    throttle = Throttle(0.25, clock, min_chars=10)
    assert throttle.due(1)  # the first update goes out at once
    throttle.sent()
    clock.now += 0.125
    assert not throttle.due(1000)  # never more often than the interval
    clock.now += 0.125
    assert throttle.due(10)
    assert not throttle.due(3)  # little new text: wait...
    clock.now += 0.1875
    assert throttle.due(3)  # ...but never longer than 1.75 intervals


# --- MarkdownContext ----------------------------------------------------------------------------


def test_markdown_context_knows_fences_and_tables() -> None:
    context = MarkdownContext()
    for line in ["Text", "```python", "x = 1", "~~~", "``", "``` not the end"]:
        context.feed(line)
    assert context.prefix == "```python\n"  # none of those closes the fence
    context.feed("````")
    assert context.plain
    for line in ["| a | b |", "|---|:-:|", "| 1 | 2 |"]:
        context.feed(line)
    assert context.prefix == "| a | b |\n|---|:-:|\n"
    context.feed("")
    assert context.plain


def test_markdown_context_knows_where_blocks_end() -> None:
    context = MarkdownContext()
    for line in ["A paragraph", "on two lines"]:
        context.feed(line)
    assert not context.block_ended  # a line break inside a paragraph
    context.feed("")
    assert context.block_ended
    for line in ["- one", "  more of one", ""]:
        context.feed(line)
    assert not context.block_ended  # a blank line inside a list may go on with it
    assert not context.starts_block("- two") and not context.starts_block("    indented")
    assert context.starts_block("After the list.")
    for line in ["After the list.", "```python", "", "x = 1"]:
        context.feed(line)
    assert not context.block_ended and not context.starts_block("y = 2")  # in code
    context.feed("```")
    assert context.block_ended  # a closed fence ends its block
    context.feed("Text")
    assert context.starts_block("## A heading") and context.starts_block("~~~")
    context.feed("## A heading")
    assert context.block_ended


# --- LiveSection through ReplyView ----------------------------------------------------------------


def test_updates_come_at_the_pace_and_the_first_text_at_once() -> None:
    clock, recorder = Clock(), Recorder()
    view = ReplyView(recorder, "m", 0.1, clock=clock)
    view.start()
    view.add_answer("Hello")
    assert live_texts(recorder.outputs) == ["Hello"]  # the placeholder took the text
    for _ in range(20):  # 20 ms of tokens: no update yet
        clock.now += 0.001
        view.add_answer("!")
    assert len(recorder.outputs) == 2
    for _ in range(400):  # 0.4 s more
        clock.now += 0.001
        view.add_answer("?")
    updates = [o for o in recorder.outputs if o.update]
    assert 4 <= len(updates) <= 5


def test_finished_parts_freeze_so_updates_resend_only_a_tail() -> None:
    clock, recorder = Clock(), Recorder()
    view = ReplyView(recorder, "m", 0.1, clock=clock)
    view.start()
    text = "".join(f"Line {i}: " + "word " * 10 + "\n" for i in range(300))  # 18 KB
    stream(view, clock, words(text), rate=200)
    # Read in order, the live outputs show the whole text: nothing lost or doubled.
    assert "".join(live_texts(recorder.outputs)) == text
    # Late updates of the live tail do not start from the beginning and stay short (one
    # 18 KB paragraph: it is cut at line breaks, as it must be).
    tail = display_id(recorder.outputs[-1])
    late = [o.data[MARKDOWN] for o in recorder.outputs[-20:] if display_id(o) == tail and o.data]
    assert late and all(len(shown) < 2000 for shown in late)
    # Every part ends at a line break, and parts are merged so that outputs stay few.
    assert all(shown.endswith("\n") for shown in live_texts(recorder.outputs)[:-1])
    assert len({display_id(o) for o in recorder.outputs}) <= 7 * 3 + 1


def test_a_code_fence_cut_while_streaming_is_reopened_in_the_next_output() -> None:
    clock, recorder = Clock(), Recorder()
    view = ReplyView(recorder, "m", 0.1, clock=clock)
    view.start()
    code = "".join(f"    value_{i} = compute({i})\n" for i in range(200))
    text = f"Here:\n\n```python\n{code}```\n\nDone.\n"
    stream(view, clock, words(text), rate=300)
    parts = live_texts(recorder.outputs)
    assert len(parts) > 1
    assert parts[0].startswith("Here:\n\n```python\n")
    inside = [p for p in parts[1:] if "value_" in p]
    assert inside and all(p.startswith("```python\n") for p in inside)
    # Without the reopened fences, the parts join to the text.
    assert "".join(parts[:1] + [p.removeprefix("```python\n") for p in parts[1:]]) == text


def test_a_table_cut_while_streaming_keeps_its_header() -> None:
    clock, recorder = Clock(), Recorder()
    view = ReplyView(recorder, "m", 0.1, clock=clock)
    view.start()
    header = "| Name | Value |\n|---|---:|\n"
    text = header + "".join(f"| row {i} | {i * 37} |\n" for i in range(300))
    stream(view, clock, words(text), rate=300)
    parts = live_texts(recorder.outputs)
    assert len(parts) > 1 and all(p.startswith(header) for p in parts)


def test_one_endless_line_is_cut_at_spaces() -> None:
    clock, recorder = Clock(), Recorder()
    view = ReplyView(recorder, "m", 0.1, clock=clock)
    view.start()
    text = "All one paragraph without any line break at all, going on and on. " * 200
    stream(view, clock, words(text), rate=300)
    parts = live_texts(recorder.outputs)
    assert len(parts) > 1 and "".join(parts) == text
    assert all(p.endswith(" ") for p in parts[:-1])


@pytest.mark.parametrize("rate", [100, 1000])
def test_update_traffic_stays_within_ten_times_the_text(rate: int) -> None:
    clock, recorder = Clock(), Recorder()
    view = ReplyView(recorder, "m", 0.1, clock=clock)
    view.start()
    block = "".join(f"    total_{i} = sum(v for v in values[{i % 5}:])\n" for i in range(300))
    text = ("Some prose to read.\n\n```python\n" + block + "```\n\n") * 5  # about 64 KB
    stream(view, clock, words(text), rate)
    view.finish("footer", {"model": "m"}, text=text)
    assert recorder.bytes <= 10 * len(text.encode())


def _frozen_parts_seen(recorder: Recorder, clock: Clock, tokens: list[str]) -> set[str]:
    """Every part that was ever shown frozen (all live outputs but the last), token by
    token, streaming ``tokens`` 200 a second into a new reply view."""
    view = ReplyView(recorder, "m", 0.1, clock=clock)
    view.start()
    seen: set[str] = set()
    for token in tokens:
        clock.now += 1 / 200
        view.add_answer(token)
        seen.update(live_texts(recorder.outputs)[:-1])
    return seen


def test_a_paragraph_streamed_in_many_lines_is_never_cut_while_it_streams() -> None:
    clock, recorder = Clock(), Recorder()
    paragraph = "".join(
        f"Line {i} of a paragraph, soft-wrapped as models write.\n" for i in range(6)
    )
    text = "\n".join(f"## Part {n}\n\n{paragraph}" for n in range(12))
    frozen = _frozen_parts_seen(recorder, clock, words(text))
    assert frozen  # parts were frozen...
    # ...each at a block boundary: a heading's end or a blank line, never inside a paragraph.
    assert all(part.endswith("\n\n") or part.rstrip("\n").startswith("## Part") for part in frozen)
    assert "".join(live_texts(recorder.outputs)).startswith(text.rstrip("\n")[:1000])


def test_ordinary_paragraphs_streamed_slowly_are_never_cut() -> None:
    clock, recorder = Clock(), Recorder()
    view = ReplyView(recorder, "m", 0.1, clock=clock)
    view.start()
    paragraph = "A paragraph of ordinary length, written as one line by the model. " * 8
    text = "".join(f"{paragraph.strip()} ({n})\n\n" for n in range(12))  # 550 bytes each
    seen: set[str] = set()
    for token in words(text):
        clock.now += 1 / 25  # 100 characters a second: a slow model, many updates per paragraph
        view.add_answer(token)
        seen.update(live_texts(recorder.outputs)[:-1])
    assert seen  # parts were frozen, each at the end of a paragraph
    assert all(part.endswith(")\n\n") for part in seen)


def test_a_loose_list_is_frozen_only_after_its_last_item() -> None:
    clock, recorder = Clock(), Recorder()
    prose = "Some prose before the list, long enough to be worth freezing. " * 12 + "\n\n"
    items = "".join(f"- item {i}, with a few words\n\n" for i in range(8))
    text = (prose + items + "After the list.\n\n") * 4
    frozen = _frozen_parts_seen(recorder, clock, words(text))
    assert frozen
    for part in frozen:
        # A part may hold the whole list or none of it: no cut between two items.
        assert ("- item 0" in part) == ("- item 7" in part)


# --- split_blocks: the finished reply cut into the outputs it streamed in -----------------------


def _joined(parts: list[tuple[str, str]]) -> str:
    return "".join(part for _, part in parts)


def test_a_finished_reply_is_cut_at_block_boundaries_when_there_are_enough() -> None:
    text = "".join(f"Paragraph {n} has a line\nand another.\n\n" for n in range(10))
    parts = split_blocks(text, 4)
    assert len(parts) == 4 and _joined(parts) == text
    assert all(part.startswith("Paragraph") and not prefix for prefix, part in parts)


def test_a_finished_code_block_cut_inside_is_reopened_in_each_part() -> None:
    code = "".join(f"x_{i} = {i}\n" for i in range(40))
    text = f"```python\n{code}```\n"
    parts = split_blocks(text, 5)
    assert len(parts) == 5 and _joined(parts) == text
    assert [prefix for prefix, _ in parts] == [""] + ["```python\n"] * 4


def test_one_finished_line_is_cut_at_spaces_into_as_many_parts_as_outputs() -> None:
    text = "one long line of words without a break " * 2000  # 78 KB, no line break
    parts = split_blocks(text, 12)
    assert len(parts) == 12 and _joined(parts) == text
    assert all(part.endswith(" ") for _, part in parts[:-1])
    sizes = [len(part) for _, part in parts]
    assert max(sizes) < 2 * min(sizes)  # similar lengths
