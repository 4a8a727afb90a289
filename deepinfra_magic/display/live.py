"""The live view's engine: steady pacing, the Markdown context, and sections that freeze.

Rules kept here:

* Updates go out at a steady pace (:class:`Throttle`), whatever the size of the text.
* Only a short tail is resent: a finished part is frozen into its own output at a block
  boundary (a blank line, the end of a list, a code block, a table or a heading), so a
  live reply shows the same blocks as the finished one. A single block is cut only when
  resending it would cost too much: a code block or table at a line break (its fence or
  header is reopened in the next output: :class:`MarkdownContext`, on the package's one
  fence grammar in ``_markdown``), prose only past ``LONG_PROSE_CHARS`` (at a line break,
  else a space), so an ordinary paragraph is never cut while it streams.
* Frozen outputs are merged now and then, so a cell keeps few outputs; an output a merge
  left empty takes the next part, and at the end :func:`split_blocks` cuts the finished
  text into as many parts as the section showed outputs, so none is left empty.
* Every output is a :class:`~.output.LiveOutput`; live updates carry Markdown only.
* Pure: the clock is injected, nothing here reads the shell or the frontend.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from .._markdown import closes_fence, opens_fence
from .output import LiveOutput, Publisher

__all__ = ["LiveSection", "MarkdownContext", "Throttle", "split_blocks"]

# Freezing: once the live tail has cost this many times its own length in updates, the
# finished blocks (up to the last block boundary) are frozen into their output and only the
# rest stays live. Each update then resends a short tail: the traffic stays a small multiple
# of the reply.
TAIL_COST_FACTOR = 2
# A tail with no block boundary (a long code block, table or paragraph) is cut inside its
# block only once it has cost this many times its length: a code block or table at a line
# break (reopened in the next output, and healed when frozen parts merge) ...
BLOCK_COST_FACTOR = 2.5
# ... and prose (a paragraph, a list) only once it is this long, at a line break, else at a
# space: ordinary paragraphs are never cut while they stream.
LONG_PROSE_CHARS = 600
# Frozen outputs are merged this many at a time (a counter in base MERGE_GROUP), so a reply
# of N frozen parts keeps about (MERGE_GROUP - 1) * log(N) outputs: JupyterLab hides the
# outputs of a cell beyond 50 (its ``maxNumberOutputs``), and a saved notebook stays small.
MERGE_GROUP = 12
# A slow stream updates when this much is new (or after 1.75 intervals, at the latest): an
# update then carries more text than its message overhead (about 100 bytes).
MIN_UPDATE_CHARS = 128


class Throttle:
    """Steady pacing of live updates: one is due once ``interval`` has passed since the
    last, whatever the size of the text (freezing keeps each update small instead).

    A slow stream waits for ``min_chars`` new characters, up to 1.75 intervals, so
    that an update carries more text than message overhead.
    """

    def __init__(
        self,
        interval: float,
        clock: Callable[[], float] = time.monotonic,
        min_chars: int = MIN_UPDATE_CHARS,
    ) -> None:
        self.interval = interval
        self.clock = clock
        self.min_chars = min_chars
        self.last = -1e9

    def due(self, pending: int) -> bool:
        """True if an update showing ``pending`` new characters may be sent now."""
        elapsed = self.clock() - self.last
        if pending >= self.min_chars:
            return elapsed >= self.interval
        return elapsed >= 1.75 * self.interval

    def sent(self) -> None:
        """Note that an update went out now."""
        self.last = self.clock()


_TABLE_DELIMITER = re.compile(r" {0,3}\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*")
_LIST_ITEM = re.compile(r" {0,3}(?:[-+*]|\d{1,9}[.)])(?:[ \t]|$)")
_HEADING = re.compile(r" {0,3}#{1,6}(?:[ \t]|$)")


class MarkdownContext:
    """Where the text seen so far (line by line) stands: inside a code fence or a table,
    and whether the next line starts a new block.

    A part cut inside a fence or table is shown with the fence's opening line or the
    table's header in front, so that it still renders as code or as a table on its own.
    A part cut where a block starts needs nothing in front, and renders as in the whole.
    """

    __slots__ = ("_blank", "_closed", "_fence", "_list", "_marker", "_previous", "_table")

    def __init__(self) -> None:
        self._fence = ""  # the opening line while inside a fence
        self._marker = ""
        self._table = ""  # header and delimiter rows while inside a table
        self._previous = ""
        self._blank = False  # the last line was blank (outside fences)
        self._closed = False  # the last line ended a block by itself (a fence, a heading)
        self._list = False  # the last block outside fences is a list

    @property
    def block_ended(self) -> bool:
        """True when the lines so far end a block whatever comes next: a blank line after
        anything but a list, a closed fence, a heading."""
        return not self._fence and ((self._blank and not self._list) or self._closed)

    def starts_block(self, line: str) -> bool:
        """True when ``line`` (complete, not fed yet) starts a new top-level block: after
        a blank line (unless it goes on with the list above it), after a closed fence or a
        heading, or as a fence or heading that interrupts a paragraph."""
        if self._fence or not line.strip():
            return False
        if self._closed:
            return True
        indented = line.startswith(("    ", "\t"))
        if self._blank:
            return not (self._list and (indented or _LIST_ITEM.match(line) is not None))
        return not indented and bool(opens_fence(line) or _HEADING.match(line))

    @property
    def prefix(self) -> str:
        """What a part starting here needs in front to render as it would in the whole."""
        return self._fence or self._table

    @property
    def plain(self) -> bool:
        """True outside fences and tables (a part may start here with nothing in front)."""
        return not (self._fence or self._table)

    def feed(self, line: str) -> None:
        """Take one complete line (without its line break)."""
        closed = False
        if self._fence:
            if closes_fence(line, self._marker):
                self._fence = self._marker = ""
                closed = True
        elif marker := opens_fence(line):
            self._fence, self._marker, self._table = line + "\n", marker, ""
        elif self._table:
            if "|" not in line or not line.strip():
                self._table = ""
        elif "|" in self._previous and _TABLE_DELIMITER.fullmatch(line) and "-" in line:
            self._table = f"{self._previous}\n{line}\n"
        if not self._fence and line.strip() and not closed:
            if _LIST_ITEM.match(line):
                self._list = True
            elif not (self._list and (line.startswith((" ", "\t")) or not self._blank)):
                self._list = False  # a paragraph's lazy lines stay in the list item
            closed = _HEADING.match(line) is not None
        if not self._fence:
            self._blank = not line.strip() and (self._blank or not closed)
            self._closed = closed
        self._previous = line


class _Frozen:
    """A finished part of a section, shown in one output: its text, the Markdown context
    it starts in, and its level in the merge counter (it holds MERGE_GROUP**level parts)."""

    __slots__ = ("level", "prefix", "text")

    def __init__(self, text: str, prefix: str, level: int) -> None:
        self.text = text
        self.prefix = prefix
        self.level = level


_PLACEHOLDER = object()  # an output this section took over, showing something else


class LiveSection:
    """One growing text shown live through a few display outputs, updated at a steady pace.

    Only the tail is resent: once resending it has cost ``TAIL_COST_FACTOR`` times its
    length, the finished part up to its last block boundary (inside a long block, as the
    module notes say) is frozen into its output and a new output continues with the rest.
    Frozen outputs are merged now and then so that they stay few. The first output may be
    a placeholder that already exists. Live updates carry Markdown only.
    """

    def __init__(
        self,
        publish: Publisher,
        render: Callable[[str, bool], dict[str, str]],
        throttle: Throttle,
        outputs: list[LiveOutput] | None = None,
        markdown: bool = True,
        placeholder: bool = False,
    ) -> None:
        self._publish = publish
        self._render = render  # (text, is the first output) -> bundle
        self._throttle = throttle
        self._markdown = markdown
        # Outputs in order: those given exist already and are empty, or (``placeholder``)
        # the first shows something else; more are made as needed.
        self._outputs: list[LiveOutput] = list(outputs or [])
        self._showing: list[object] = [None] * len(self._outputs)
        if placeholder and self._outputs:
            self._showing[0] = _PLACEHOLDER
        self._frozen: list[_Frozen] = []
        self._tail: list[str] = []
        self._tail_length = 0
        self._tail_prefix = ""
        self._tail_cost = 0  # characters of this tail sent so far
        self._line: list[str] = []  # the current line, not yet ended
        self._line_break = 0  # in the tail: just after its last line break
        self._boundary = 0  # in the tail: where its last block starts (0 for none)
        self._shown_length = 0  # of the tail, by the last update
        self._held = 0  # the last update showed the tail up to here, for freezing
        self._held_prefix = ""  # the Markdown context there
        self._context = MarkdownContext()
        self._pending = 0  # characters not shown yet

    @property
    def text(self) -> str:
        """Everything appended so far."""
        return "".join([*(part.text for part in self._frozen), *self._tail])

    @property
    def outputs(self) -> list[LiveOutput]:
        """The outputs this section showed text in (to be emptied when the reply ends)."""
        pairs = zip(self._outputs, self._showing, strict=True)
        return [output for output, shown in pairs if shown is not None]

    def append(self, delta: str) -> None:
        """Add text; an update goes out if one is due."""
        if not delta:
            return
        self._tail.append(delta)
        self._tail_length += len(delta)
        self._pending += len(delta)
        if "\n" in delta:
            self._scan(delta)
        else:
            self._line.append(delta)
        if self._throttle.due(self._pending):
            self.update()

    def _scan(self, delta: str) -> None:
        """Follow the Markdown context over the lines that ``delta`` ends, noting where
        the last block starts."""
        base = self._tail_length - len(delta)
        start = 0
        while (end := delta.find("\n", start)) >= 0:
            line = "".join([*self._line, delta[start:end]])
            self._line = []
            if self._context.starts_block(line) and self._line_break:
                self._boundary = self._line_break
            self._context.feed(line)
            start = end + 1
            self._line_break = base + start
            if self._context.block_ended:
                self._boundary = self._line_break
        if start < len(delta):
            self._line = [delta[start:]]

    def update(self) -> None:
        """Show the new text now.

        Freezing takes two updates and resends nothing: once the tail has cost enough,
        one update shows it only up to a line break (the rest of the line waits), and
        the next freezes exactly what that one showed and goes on in a new output.
        """
        if not self._pending:
            return
        tail = "".join(self._tail)
        if self._held:
            tail = self._freeze(tail)
        shown = tail
        if self._tail_cost >= TAIL_COST_FACTOR * len(tail):
            self._held = self._hold_point(tail)
            if self._held:
                shown = tail[: self._held]
                # A block boundary is outside fences and tables; a line break keeps the
                # context the lines so far left.
                inside = self._held == self._line_break and self._held != self._boundary
                self._held_prefix = self._context.prefix if inside else ""
        self._tail = [tail] if tail else []
        self._show(shown)
        self._tail_cost += len(shown)
        self._shown_length = len(shown)
        self._pending = len(tail) - len(shown)
        self._throttle.sent()

    def _hold_point(self, tail: str) -> int:
        """Where the tail may end for freezing, without hiding anything already shown:
        where its last block starts; else, once the one block has cost enough, its last
        line break, else (one very long line) its last space; 0 for none."""
        if self._boundary and self._boundary >= self._shown_length:
            return self._boundary
        if self._tail_cost < BLOCK_COST_FACTOR * len(tail):
            return 0
        line_break = self._line_break if self._line_break >= self._shown_length else 0
        if not self._context.plain:
            return line_break
        if len(tail) < LONG_PROSE_CHARS:
            return 0
        space = tail.rfind(" ") + 1
        return line_break or (space if space >= self._shown_length else 0)

    def _freeze(self, tail: str) -> str:
        """Freeze the part of ``tail`` that the last update showed (its output already
        shows it), merge frozen parts if due, and return the rest of the tail."""
        cut = self._held
        part = _Frozen(tail[:cut], self._tail_prefix, 0)
        self._frozen.append(part)
        self._showing[len(self._frozen) - 1] = part
        self._tail_prefix = self._held_prefix if self._markdown else ""
        self._tail_length -= cut
        self._line_break = max(self._line_break - cut, 0)
        self._boundary = max(self._boundary - cut, 0)
        self._held = self._tail_cost = self._shown_length = 0
        group = self._frozen[-MERGE_GROUP:]
        while len(group) == MERGE_GROUP and len({p.level for p in group}) == 1:
            merged = _Frozen("".join(p.text for p in group), group[0].prefix, group[0].level + 1)
            self._frozen[-MERGE_GROUP:] = [merged]
            group = self._frozen[-MERGE_GROUP:]
        return tail[cut:]

    def release(self) -> list[LiveOutput]:
        """Every output this section displayed, in order (each is to get a part of the
        finished text), forgetting the text itself."""
        displayed = [output for output in self._outputs if output.shown]
        self._frozen, self._tail, self._line = [], [], []
        self._showing = [None] * len(self._outputs)
        return displayed

    def close(self) -> None:
        """End the live view of this section (another begins below it): what is still
        pending is shown now."""
        if self._pending:
            self._held = 0
            tail = "".join(self._tail)
            self._show(tail)
            self._pending = 0

    def _show(self, tail: str) -> None:
        """Bring every output up to date: frozen parts that changed, the tail, and
        outputs left over after a merge emptied."""
        for position, part in enumerate(self._frozen):
            if self._shown_at(position) is not part:
                self._send(position, part, self._live_bundle(part.prefix + part.text, position))
        position = len(self._frozen)
        if tail:
            self._send(position, tail, self._live_bundle(self._tail_prefix + tail, position))
            position += 1
        for extra in range(position, len(self._outputs)):
            if self._showing[extra] is not None:
                self._send(extra, None, {})

    def _shown_at(self, position: int) -> object:
        return self._showing[position] if position < len(self._showing) else None

    def _live_bundle(self, text: str, position: int) -> dict[str, str]:
        bundle = self._render(text, position == 0)
        if len(bundle) > 1:
            # Live updates only matter to frontends that apply them, which all render
            # Markdown: skip the text/plain copy to halve the traffic. A frontend that
            # ignores updates (jupyter console) then prints nothing for them either.
            bundle.pop("text/plain", None)
        return bundle

    def _send(self, position: int, content: object, bundle: dict[str, str]) -> None:
        if position == len(self._outputs):
            # A new output starts empty and gets its text by update, like every live
            # text: a frontend that ignores updates (jupyter console) shows none of it,
            # only the finished reply.
            output = LiveOutput(self._publish)
            output.show({})
            self._outputs.append(output)
            self._showing.append(None)
        self._outputs[position].update(bundle)
        self._showing[position] = content


def split_blocks(text: str, count: int) -> list[tuple[str, str]]:
    """``text`` cut into at most ``count`` consecutive parts, as ``(prefix, part)``: at
    block boundaries where there are enough, else also at line breaks (a fence or table
    cut there is reopened by ``prefix``), else also at spaces.

    Memory stays a small fraction of the text (a position per line, none per space): this
    runs once on the finished reply, however long it is.
    """
    if count <= 1 or not text:
        return [("", text)]
    boundaries, breaks, prose = _cut_points(text, count)
    chosen = boundaries
    if len(chosen) < count - 1:
        chosen = sorted([*boundaries, *breaks])
    if len(chosen) < count - 1:  # fewer lines than parts: spaces in prose lines too
        spaces = (_space_near(text, prose, len(text) * i // count) for i in range(1, count))
        chosen = sorted({*chosen, *(space for space in spaces if space)})
    if len(chosen) > count - 1:  # evenly spread, by rank among the candidates
        step = len(chosen) / count
        picks = {chosen[min(len(chosen) - 1, round(step * i) - 1)] for i in range(1, count)}
        chosen = sorted(picks)
    inside = set(chosen).difference(boundaries)  # where a fence or table may need reopening
    prefixes = _prefixes_at(text, sorted(inside))
    parts: list[tuple[str, str]] = []
    previous, prefix = 0, ""
    for position in chosen:
        parts.append((prefix, text[previous:position]))
        previous, prefix = position, prefixes.get(position, "")
    parts.append((prefix, text[previous:]))
    return parts


def _cut_points(text: str, count: int) -> tuple[list[int], list[int], list[tuple[int, int]]]:
    """Where ``text`` may be cut: block boundaries, other line breaks, and (only while the
    lines are fewer than ``count``) the spans of lines outside fences and tables."""
    context = MarkdownContext()
    boundaries: list[int] = []
    breaks: list[int] = []
    prose: list[tuple[int, int]] = []
    start = 0
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\n")
        if start and not (boundaries and boundaries[-1] == start):
            (boundaries if context.starts_block(body) else breaks).append(start)
        if context.plain and len(breaks) + len(boundaries) < count:
            prose.append((start, start + len(body)))
        context.feed(body)
        start += len(line)
        if context.block_ended and start < len(text):
            boundaries.append(start)
    return boundaries, breaks, prose


def _space_near(text: str, prose: list[tuple[int, int]], target: int) -> int:
    """The cut just after the space nearest to ``target`` in a prose line (0 for none)."""
    cuts: list[int] = []
    for start, end in prose:
        middle = min(max(target, start), end - 1)
        cuts += [text.rfind(" ", start, middle) + 1, text.find(" ", middle, end - 1) + 1]
    return min((cut for cut in cuts if cut), key=lambda cut: abs(cut - target), default=0)


def _prefixes_at(text: str, positions: list[int]) -> dict[int, str]:
    """What a part starting at each of ``positions`` needs in front (a fence or table
    cut there is reopened): a second pass, up to the last position only."""
    wanted = set(positions)
    prefixes: dict[int, str] = {}
    context = MarkdownContext()
    start = 0
    last = max(positions, default=0)
    for line in text.splitlines(keepends=True):
        if start >= last:
            break
        context.feed(line.rstrip("\n"))
        start += len(line)
        if start in wanted and context.prefix:
            prefixes[start] = context.prefix
    return prefixes
