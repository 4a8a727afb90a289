"""The SSE decoder follows the WHATWG rules on raw bytes, however the network cuts them.

Every case is decoded whole, byte by byte, and split in two at every possible boundary:
the events must be the same each time, because TCP may cut a stream anywhere.
"""

from __future__ import annotations

import json

import pytest

from deepinfra_magic._sse import ServerSentEvent, SSEDecoder


def decode(chunks: list[bytes]) -> list[ServerSentEvent]:
    """Feed the chunks in order, then end the stream."""
    decoder = SSEDecoder()
    events: list[ServerSentEvent] = []
    for chunk in chunks:
        events += decoder.feed(chunk)
    return events + decoder.close()


def splits(data: bytes) -> list[list[bytes]]:
    """The ways the network could deliver ``data``: whole, byte by byte, and cut in two
    at every offset (including the empty pieces at either end)."""
    ways = [[data], [data[i : i + 1] for i in range(len(data))]]
    ways += [[data[:cut], data[cut:]] for cut in range(len(data) + 1)]
    return ways


def ev(data: str, event: str = "message", id: str | None = None, retry: int | None = None):
    return ServerSentEvent(data=data, event=event, id=id, retry=retry)


JSON_WITH_LINE_SEPARATORS = json.dumps(
    {"content": "a\u2028b\u2029c\u0085d\x0be\x0cf\x1cg\x1dh\x1ei"}, ensure_ascii=False
)

CASES: list[tuple[str, bytes, list[ServerSentEvent]]] = [
    ("LF line ends", b"data: a\n\ndata: b\n\n", [ev("a"), ev("b")]),
    ("CR line ends", b"data: a\r\rdata: b\r\r", [ev("a"), ev("b")]),
    ("CRLF line ends", b"data: a\r\n\r\ndata: b\r\n\r\n", [ev("a"), ev("b")]),
    # A CRLF is one line end even when a chunk ends between the CR and the LF: otherwise the
    # LF would read as a blank line and cut this event in two.
    ("CRLF between data lines", b"data: a\r\ndata: b\r\n\r\n", [ev("a\nb")]),
    ("mixed line ends", b"data: a\r\n\ndata: b\r\r\ndata: c\n\r", [ev("a"), ev("b"), ev("c")]),
    (
        "U+2028, U+2029, U+0085 and other str.splitlines breaks stay inside the JSON",
        f"data: {JSON_WITH_LINE_SEPARATORS}\n\n".encode(),
        [ev(JSON_WITH_LINE_SEPARATORS)],
    ),
    (
        "multi-byte UTF-8 (2, 3 and 4 bytes)",
        "data: naïve 日本語 🎉\n\n".encode(),
        [ev("naïve 日本語 🎉")],
    ),
    ("data lines joined with LF", b'data: {"a":\ndata: 1}\n\n', [ev('{"a":\n1}')]),
    (
        "comments are skipped",
        b": keep-alive\n\ndata: x\n: between lines\ndata: y\n\n:\n\n",
        [ev("x\ny")],
    ),
    (
        "event, id and retry fields",
        b"event: ping\nid: 7\nretry: 1500\ndata: x\n\ndata: y\n\n",
        [ev("x", "ping", "7", 1500), ev("y", id="7")],
    ),
    ("last event without its blank line", b"data: a\n\ndata: last", [ev("a"), ev("last")]),
    ("last event ended by one LF only", b"data: last\n", [ev("last")]),
    ("empty data line", b"data\n\n", [ev("")]),
    ("empty data with a colon", b"data:\n\n", [ev("")]),
    ("two empty data lines", b"data:\ndata:\n\n", [ev("\n")]),
    ("no space after the colon", b"data:x\n\n", [ev("x")]),
    ("only one leading space is removed", b"data:  x \n\n", [ev(" x ")]),
    ("unknown fields are ignored", b"foo: bar\ndata: x\nDATA: no\n\n", [ev("x")]),
    ("blank lines alone dispatch nothing", b"\n\r\n\r\n\n", []),
    ("an event type without data is dropped", b"event: e\n\ndata: x\n\n", [ev("x")]),
    ("id containing NUL is ignored", b"id: a\x00b\ndata: x\n\n", [ev("x")]),
    ("retry that is not a number is ignored", b"retry: soon\ndata: x\n\n", [ev("x")]),
    ("UTF-8 byte order mark at the start", b"\xef\xbb\xbfdata: x\n\n", [ev("x")]),
    (
        "DeepInfra-style chat stream",
        b'data: {"choices":[{"delta":{"content":"Hi"}}]}\r\n\r\n: ping\r\n\r\ndata: [DONE]\r\n\r\n',
        [ev('{"choices":[{"delta":{"content":"Hi"}}]}'), ev("[DONE]")],
    ),
]


@pytest.mark.parametrize(
    ("stream", "expected"), [case[1:] for case in CASES], ids=[case[0] for case in CASES]
)
def test_events_are_the_same_however_the_bytes_are_cut(
    stream: bytes, expected: list[ServerSentEvent]
) -> None:
    for chunks in splits(stream):
        assert decode(chunks) == expected, chunks


def test_events_are_returned_as_soon_as_their_blank_line_arrives() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: first\n") == []
    assert decoder.feed(b"\ndata: sec") == [ev("first")]
    assert decoder.feed(b"ond\n\n") == [ev("second")]
    assert decoder.close() == []


def test_an_empty_chunk_between_cr_and_lf_does_not_split_the_event() -> None:
    decoder = SSEDecoder()
    events = decoder.feed(b"data: a\r") + decoder.feed(b"") + decoder.feed(b"\ndata: b\r\n\r\n")
    assert events == [ev("a\nb")]


def test_a_one_megabyte_line_across_many_chunks_arrives_whole() -> None:
    payload = "é" * 500_000  # 1 MB of two-byte characters, cut mid-character below
    stream = f"data: {payload}\n\n".encode()
    decoder = SSEDecoder()
    events: list[ServerSentEvent] = []
    for start in range(0, len(stream), 65_535):  # odd size: cuts inside characters
        events += decoder.feed(stream[start : start + 65_535])
    assert events == [ev(payload)]
