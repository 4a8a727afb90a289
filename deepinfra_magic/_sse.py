"""Server-sent events, decoded by the WHATWG rules from raw bytes (sans-I/O).

https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation

Lines end at CR, LF or CRLF only. ``str.splitlines`` (and so httpx's ``iter_lines``) also
splits on U+2028, U+2029, U+0085 and friends, which may sit inside JSON strings, so we
split bytes ourselves and decode UTF-8 per complete line: a character split across
network chunks is reassembled before it is decoded.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["SSEDecoder", "ServerSentEvent"]


class ServerSentEvent(NamedTuple):
    """One dispatched event: its type, its data lines joined by LF, and its id.

    A NamedTuple: one is built per streamed token, and a frozen dataclass costs 3× more.
    """

    data: str
    event: str = "message"
    id: str | None = None
    retry: int | None = None


class SSEDecoder:
    """Incremental decoder: feed byte chunks, get complete events; ``close()`` at EOF."""

    def __init__(self) -> None:
        self._pending = bytearray()  # bytes of the current, unterminated line
        self._skip_lf = False  # the previous chunk ended in CR: a leading LF belongs to it
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None
        self._last_id: str | None = None
        self._retry: int | None = None
        self._first_line = True  # a UTF-8 byte order mark may precede it

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Consume ``chunk`` and return the events it completes."""
        events: list[ServerSentEvent] = []
        if not chunk:  # nothing to do; above all, a pending CR must still swallow its LF
            return events
        data = self.single_data(chunk)
        if data is not None:
            return [ServerSentEvent(data, "message", self._last_id)]
        if self._skip_lf:
            self._skip_lf = False
            if chunk.startswith(b"\n"):
                chunk = chunk[1:]
        # bytes.splitlines splits on CR, LF and CRLF only (unlike str.splitlines), in C.
        for piece in chunk.splitlines(keepends=True):
            if piece.endswith(b"\r\n"):
                line = piece[:-2]
            elif piece.endswith((b"\r", b"\n")):
                line = piece[:-1]
            else:  # the unterminated end of the chunk: wait for the rest of the line
                self._pending += piece
                break
            if self._pending:
                self._pending += line
                line = bytes(self._pending)
                self._pending.clear()
            event = self._line(line)
            if event is not None:
                events.append(event)
        # A CR at the very end may be the first half of a CRLF split across chunks.
        self._skip_lf = chunk.endswith(b"\r")
        return events

    def single_data(self, chunk: bytes) -> str | None:
        """The data of ``chunk`` when it is exactly one whole ``data: …`` event and nothing
        else is pending; else None (and nothing consumed). The common case of a chat stream:
        it skips the line loop and the event object."""
        if (
            chunk.startswith(b"data: ")
            and chunk.find(b"\n") == len(chunk) - 2
            and chunk.endswith(b"\n\n")
            and b"\r" not in chunk
            and not (self._pending or self._skip_lf or self._data or self._first_line)
            and not self._event
            and self._id is None
            and self._retry is None
        ):
            return chunk[6:-2].decode("utf-8", errors="replace")
        return None

    def close(self) -> list[ServerSentEvent]:
        """End of stream: dispatch a last event that lacked its blank line.

        The spec discards such an event, but real servers (and proxies that cut the
        final newline) send it; dropping the end of an answer would lose text.
        """
        events: list[ServerSentEvent] = []
        if self._pending:
            event = self._line(bytes(self._pending))
            self._pending.clear()
            if event is not None:
                events.append(event)
        final = self._dispatch()
        if final is not None:
            events.append(final)
        return events

    def _line(self, raw: bytes) -> ServerSentEvent | None:
        """Interpret one line; a blank line dispatches the event being built."""
        if self._first_line:
            self._first_line = False
            raw = raw.removeprefix(b"\xef\xbb\xbf")
        if raw.startswith(b"data: "):  # nearly every line of a chat stream
            self._data.append(raw[6:].decode("utf-8", errors="replace"))
            return None
        if not raw:
            return self._dispatch()
        line = raw.decode("utf-8", errors="replace")
        if line.startswith(":"):
            return None
        field, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._event = value
        elif field == "id":
            if "\0" not in value:
                self._id = value
        elif field == "retry":
            if value.isdigit():
                self._retry = int(value)
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        """Emit the buffered event, if it has data, and reset the buffers."""
        if self._id is not None:
            self._last_id = self._id
        if not self._data:
            self._event = ""
            self._id = None
            return None
        event = ServerSentEvent(
            "\n".join(self._data), self._event or "message", self._last_id, self._retry
        )
        self._data = []
        self._event = ""
        self._id = None
        self._retry = None
        return event
