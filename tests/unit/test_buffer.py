"""TextBuffer (deepinfra_magic/_buffer.py): the text comes back whole and in order, at
any number of pieces, across the points where pieces are joined into blocks."""

from __future__ import annotations

import pytest

from deepinfra_magic._buffer import TextBuffer


def test_an_empty_buffer_is_false_and_empty() -> None:
    buffer = TextBuffer()
    assert not buffer and str(buffer) == ""


@pytest.mark.parametrize("pieces", [1, 255, 256, 257, 512, 1000])
def test_the_text_is_every_piece_in_order(pieces: int) -> None:
    buffer = TextBuffer()
    tokens = [f"t{i}é " for i in range(pieces)]
    for token in tokens:
        buffer.append(token)
    assert buffer and str(buffer) == "".join(tokens)


def test_reading_midway_does_not_change_what_follows() -> None:
    buffer = TextBuffer()
    seen = []
    for i in range(600):
        buffer.append(str(i % 10))
        if i % 97 == 0:
            seen.append(str(buffer))
    assert str(buffer) == "".join(str(i % 10) for i in range(600))
    assert all(str(buffer).startswith(prefix) for prefix in seen)
