"""What the notebook holds, for prompts: cell sources, outputs, errors and shown images.

The magics feed a :class:`CellLog` from IPython's ``pre_run_cell``/``post_run_cell``
events and from displayed outputs; everything else here works on plain data (the cell
sources, the ``Out`` dict, the log) to resolve ``{In[3]}``, ``{Out[3]}``, ``{Err[3]}``,
``{Err}``, ``--see Out[3]`` and ``--see cell:3``.

It loads with ``%load_ext`` (the watcher needs a :class:`CellLog` before the first cell), so
it imports only the standard library and ``_config``, and its values are plain classes (a
dataclass costs a fraction of a millisecond to define); the Markdown helpers load with the
first prompt that needs them.

An error handled in an ``except`` block is told as it happened (:func:`handled_traceback`):
each frame at the line where it stood, never where the handler's frame is now.
"""

from __future__ import annotations

import binascii
import re
import traceback as _traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ._config import IMAGE_MIME_TYPES, TRACEBACK_CHAR_BUDGET

__all__ = [
    "CellError",
    "CellLog",
    "NotebookReferenceError",
    "ShownImage",
    "explain_prompt",
    "handled_traceback",
    "reference_namespace",
    "see_target",
    "shorten_traceback",
    "strip_ansi",
]

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")
_CELL = re.compile(r"^cell:(\d+)$")
_OUT = re.compile(r"^(?:Out\[(\d+)\]|_(\d+))$")


class NotebookReferenceError(LookupError):
    """A reference to a cell, output or error that does not exist (one line, naming what
    does)."""


class CellError:
    """A failed cell: its number, source and traceback (ANSI codes stripped)."""

    __slots__ = ("count", "source", "traceback")

    def __init__(self, count: int, source: str, traceback: str) -> None:
        self.count = count
        self.source = source
        self.traceback = traceback


class ShownImage:
    """An image a cell displayed (a plot shown inline, a generated image, ...)."""

    __slots__ = ("count", "data", "mime")

    def __init__(self, count: int, data: bytes, mime: str) -> None:
        self.count = count
        self.data = data
        self.mime = mime


class CellLog:
    """The running cell, the errors and the images shown, by execution count (the last
    ``keep`` of each, so a long session does not grow without bound)."""

    def __init__(self, keep: int = 20) -> None:
        self.keep = keep
        self.errors: dict[int, CellError] = {}
        self.images: dict[int, list[ShownImage]] = {}
        self.current: str | None = None  # identity of the running cell
        self._pending: list[tuple[bytes, str]] = []

    def started(self, cell_id: str | None, source: str) -> None:
        """A cell starts: notebooks give it an id; elsewhere its source stands in."""
        self.current = cell_id or "source:" + source
        self._pending.clear()

    def finished(self, count: int | None) -> None:
        """The cell ended as number ``count`` (IPython versions differ in when they count
        a cell, so its images are filed only now)."""
        if count is not None and self._pending:
            self.images[count] = [ShownImage(count, data, mime) for data, mime in self._pending]
            _trim(self.images, self.keep)
        self._pending.clear()
        self.current = None

    def failed(self, count: int, source: str, traceback: str) -> None:
        """Remember a cell's error."""
        self.errors[count] = CellError(count, source, strip_ansi(traceback))
        _trim(self.errors, self.keep)

    def shown(self, bundle: Mapping[str, Any]) -> None:
        """Note an image in a display bundle of the running cell (its first image type)."""
        if self.current is None:
            return
        for mime in IMAGE_MIME_TYPES:
            if mime in bundle:
                data = _image_bytes(bundle[mime])
                if data is not None:
                    self._pending.append((data, mime))
                return

    def last_error(self) -> CellError | None:
        """The most recent error, if any."""
        return self.errors[max(self.errors)] if self.errors else None

    def last_image(self) -> ShownImage | None:
        """The most recently shown image, if any."""
        return self.images[max(self.images)][-1] if self.images else None

    def error_for(self, count: int | None) -> CellError:
        """Cell ``count``'s error (the last error when None), or a one-line error."""
        if count is None:
            error = self.last_error()
            if error is None:
                raise NotebookReferenceError("No error to explain yet: no cell has failed.")
            return error
        if count not in self.errors:
            raise NotebookReferenceError(
                f"Cell {count} has no recorded error; {_listing('failed', self.errors)}."
            )
        return self.errors[count]


def _trim(items: dict[int, Any], keep: int) -> None:
    while len(items) > keep:
        del items[min(items)]


def _image_bytes(value: Any) -> bytes | None:
    """Display data holds images as base64 text (kernels) or raw bytes (IPython)."""
    import base64

    if isinstance(value, (bytes, bytearray)):
        raw = bytes(value)
        if raw[:4] in (b"\x89PNG", b"RIFF", b"GIF8") or raw[:2] == b"\xff\xd8":
            return raw
        value = raw.decode("ascii", "ignore")
    if isinstance(value, str):
        try:
            return base64.b64decode("".join(value.split()), validate=True)
        except (binascii.Error, ValueError):
            return None
    return None


def _listing(what: str, items: Mapping[int, Any]) -> str:
    if not items:
        return f"no cell has {what} yet"
    numbers = sorted(items)[-10:]
    return f"cells that {what}: " + ", ".join(str(n) for n in numbers)


def strip_ansi(text: str) -> str:
    """Text without terminal colour codes (IPython's tracebacks are coloured)."""
    return _ANSI.sub("", text)


# Where the machinery begins, going up from a handler: IPython running the cell, a kernel,
# this package's magic. Their frames are no part of the user's traceback.
_MACHINERY = ("IPython", "ipykernel", "deepinfra_magic")


def handled_traceback(error: BaseException, cell_name: Callable[[str], str | None]) -> str:
    """The traceback of ``error`` while an ``except`` block handles it, as it would read had
    it reached the cell: the user's frames that called the handling frame, then the
    exception's own frames, each at its line (``tb_lineno``). IPython's formatter may show a
    frame at the line it has reached since, which inside ``except`` is the magic's call.
    ``cell_name`` turns a code file name into ``Cell In[3]`` (None: keep the name)."""
    trace = error.__traceback__
    callers = []
    frame = trace.tb_frame.f_back if trace is not None else None
    while frame is not None and str(frame.f_globals.get("__name__")).split(".")[0] not in (
        _MACHINERY
    ):
        callers.append((frame, frame.f_lineno))
        frame = frame.f_back
    stack = _traceback.StackSummary.extract([*reversed(callers), *_traceback.walk_tb(trace)])
    for entry in stack:
        entry.filename = cell_name(entry.filename) or entry.filename  # lines already read
    told = _traceback.TracebackException(type(error), error, trace)
    told.stack = stack
    return "".join(told.format())


def shorten_traceback(text: str, budget: int = TRACEBACK_CHAR_BUDGET) -> str:
    """A traceback within ``budget`` characters: the start and, above all, the end (where
    the error is) are kept; the middle is cut."""
    text = strip_ansi(text).strip("\n")
    if len(text) <= budget:
        return text
    head = text[: budget // 4].rsplit("\n", 1)[0]
    tail = text[-(budget * 3 // 4) :].split("\n", 1)[-1]
    return f"{head}\n… ({len(text) - len(head) - len(tail)} characters cut) …\n{tail}"


def explain_prompt(error: CellError, budget: int = TRACEBACK_CHAR_BUDGET) -> str:
    """The question %deepinfra_explain asks: the cell's source and its traceback."""
    from ._markdown import verbatim

    source = error.source.strip("\n")
    if len(source) > budget:
        source = source[: budget - 20].rstrip() + "\n# … (cut here)"
    return (
        "A cell in my Jupyter notebook failed. Explain the error in a few sentences, then "
        "give the corrected cell as one Python code block.\n\n"
        f"The cell (In [{error.count}]):\n{verbatim(source, 'python')}\n\n"
        f"The error:\n{verbatim(shorten_traceback(error.traceback, budget), '')}"
    )


class _Lookup:
    """``In``/``Out``/``Err`` in a --vars template: ``{Out[3]}``, and ``{Err}`` alone."""

    def __init__(
        self,
        name: str,
        numbers: Sequence[int],
        get: Callable[[int], str],
        what: str,
        bare: Callable[[], str] | None = None,
    ) -> None:
        self._name, self._numbers, self._get = name, numbers, get
        self._what, self._bare = what, bare

    def __getitem__(self, key: Any) -> str:
        if isinstance(key, int) and key in self._numbers:
            return self._get(key)
        listing = _listing(self._what, dict.fromkeys(self._numbers))
        raise NotebookReferenceError(f"{{{self._name}[{key}]}} does not exist; {listing}.")

    def __format__(self, spec: str) -> str:
        if self._bare is not None:
            return self._bare()
        raise NotebookReferenceError(
            f"{{{self._name}}} needs a cell number, e.g. {{{self._name}[3]}}."
        )


def reference_namespace(
    namespace: Mapping[str, Any],
    sources: Sequence[str],
    outputs: Mapping[int, Any],
    log: CellLog,
    describe: Callable[[Any], str],
    budget: int = TRACEBACK_CHAR_BUDGET,
) -> dict[str, Any]:
    """The user's variables plus ``In``/``Out``/``Err`` views for a --vars template
    (tracebacks come in a code fence, so they read as written).

    ``sources`` are the raw cell sources (index = execution count), ``outputs`` the ``Out``
    dict, ``describe`` turns an output into text (a table as text, anything else as repr).
    """
    from ._markdown import verbatim

    def last_error() -> str:
        error = log.last_error()
        if error is None:
            raise NotebookReferenceError("{Err} has nothing to show: no cell has failed yet.")
        return verbatim(shorten_traceback(error.traceback, budget), "")

    cells = [n for n in range(1, len(sources)) if sources[n].strip()]
    return {
        **namespace,
        "In": _Lookup("In", cells, lambda n: sources[n], "ran"),
        "Out": _Lookup("Out", sorted(outputs), lambda n: describe(outputs[n]), "have an output"),
        "Err": _Lookup(
            "Err",
            sorted(log.errors),
            lambda n: verbatim(shorten_traceback(log.errors[n].traceback, budget), ""),
            "failed",
            last_error,
        ),
    }


def see_target(expression: str, outputs: Mapping[int, Any], log: CellLog) -> Any:
    """What a ``--see`` expression names when it is a notebook reference: the images a
    cell showed (``cell:3``, a list of ShownImage) or an output (``Out[3]``); None for any
    other expression (the caller evaluates it)."""
    cell = _CELL.match(expression.strip())
    if cell:
        count = int(cell.group(1))
        if count in log.images:
            return list(log.images[count])
        if count in outputs:
            return outputs[count]
        listing = _listing("showed images", log.images)
        raise NotebookReferenceError(f"cell:{count} showed no image and has no output; {listing}.")
    out = _OUT.match(expression.strip())
    if out:
        count = int(out.group(1) or out.group(2))
        if count not in outputs:
            raise NotebookReferenceError(
                f"{expression.strip()} does not exist; {_listing('have an output', outputs)}."
            )
        return outputs[count]
    return None
