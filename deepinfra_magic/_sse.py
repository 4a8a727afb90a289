"""Server-sent events, decoded by the WHATWG rules from raw bytes (sans-I/O).

https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation

Lines end at CR, LF or CRLF only. ``str.splitlines`` (and so httpx's ``iter_lines``) also
splits on U+2028, U+2029, U+0085 and friends, which may sit inside JSON strings, so we
split bytes ourselves and decode UTF-8 per complete line: a character split across
network chunks is reassembled before it is decoded.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SSEDecoder", "ServerSentEvent"]


@dataclass(frozen=True)
class ServerSentEvent:
    """One dispatched event: its type, its data lines joined by LF, and its id."""

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

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Consume ``chunk`` and return the events it completes."""
        events: list[ServerSentEvent] = []
        start = 0
        if self._skip_lf and chunk[:1] == b"\n":
            start = 1
        self._skip_lf = False
        length = len(chunk)
        while start < length:
            cr = chunk.find(b"\r", start)
            lf = chunk.find(b"\n", start)
            if cr < 0 and lf < 0:
                self._pending += chunk[start:]
                break
            end = lf if cr < 0 or (0 <= lf < cr) else cr
            self._pending += chunk[start:end]
            event = self._line(bytes(self._pending))
            self._pending.clear()
            if event is not None:
                events.append(event)
            if chunk[end] == 13:  # CR: swallow a following LF, possibly in the next chunk
                if end + 1 < length:
                    start = end + 2 if chunk[end + 1] == 10 else end + 1
                else:
                    self._skip_lf = True
                    start = length
            else:
                start = end + 1
        return events

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
            data="\n".join(self._data),
            event=self._event or "message",
            id=self._last_id,
            retry=self._retry,
        )
        self._data = []
        self._event = ""
        self._id = None
        self._retry = None
        return event
