"""The base of every magic family: the state they share and how a cell ends.

Rules kept here:

* One instance carries every family (``DeepInfraMagics``, a :class:`FamilyMagics` with the
  families as mixins of :data:`Family`), so the state below exists once: the session (one
  client), the conversation, the cell log and its watcher, and the last results.
* A cell keeps what arrived, then ends in one of three ways (:class:`Outcome`): normally,
  with a one-line ``KeyboardInterrupt`` (Run All stops), or with its one-line error.
* With ``raise_on_error = False`` a magic's error is printed as one line instead.
* Loading imports no display, client, httpx or conversation: each is imported where it is
  first needed (the conversation is made by the first magic that reads it).
"""

from __future__ import annotations

import functools
import importlib
import sys
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar, cast

from IPython.core import magic
from IPython.core.error import UsageError

from ..errors import DeepInfraError
from ..notebook import CellLog
from .session import MagicSession
from .settings import MagicSettings
from .watch import CellWatcher

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

    from ..client import DeepInfraClient
    from ..conversation import Conversation
    from ..images import ImageResult
    from ..types import ChatResult


class _Later:
    """A module of the package, imported on its first attribute access."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attribute: str) -> Any:
        return getattr(importlib.import_module(f"deepinfra_magic.{self._name}"), attribute)


# The display and the map machinery, which the magics show through and call into: imported
# on first use, so registering the magics imports neither. The one place the magics name
# these modules (the families import them from here).
if TYPE_CHECKING:
    from .. import display, maps
else:
    display, maps = _Later("display"), _Later("maps")

__all__ = [
    "NO_FIELDS",
    "Family",
    "FamilyMagics",
    "Outcome",
    "cell_magic",
    "display",
    "given",
    "line_cell_magic",
    "line_magic",
    "maps",
    "one_line_errors",
    "one_line_interrupt",
]

F = TypeVar("F", bound=Callable[..., None])
T = TypeVar("T")

# The families' value objects (ChatCall, ImageCall…) are NamedTuples: they are defined when
# the magics register, and a frozen dataclass costs about a millisecond to define. This is
# their empty, read-only default for extra request fields.
NO_FIELDS: Mapping[str, Any] = MappingProxyType({})


class Outcome:
    """What a cell produced (``value``), and what stopped it: Ctrl-C or an error."""

    def __init__(self, value: Any = None, problem: BaseException | None = None) -> None:
        self.value = value
        self.problem = problem

    @property
    def interrupted(self) -> bool:
        """True when Ctrl-C stopped the cell (what arrived is in ``value``)."""
        return isinstance(self.problem, KeyboardInterrupt)


class FamilyMagics(MagicSettings):
    """The shared state of every family, and how to show and end a cell. Settings
    (``%config DeepInfraMagics``) come from :class:`MagicSettings`."""

    def __init__(self, shell: InteractiveShell) -> None:
        """The state every family shares, made once per loaded extension."""
        # Made before the configuration is applied: its changes call the settings observers.
        self.session = MagicSession(self._client_options)
        self._conversation = None
        super().__init__(shell=shell)
        self.last_response: ChatResult | None = None
        self.last_images: ImageResult | None = None
        self.last_map: maps.MapResult | None = None
        self.cells = CellLog()
        self.watcher = CellWatcher(shell, self.cells, self._label_exchanges, self._explain_hint)

    @property
    def conversation(self) -> Conversation:
        """The chat's memory, made (and its module imported) by the first magic that needs
        it, with the settings' system prompt and history length."""
        if self._conversation is None:
            from ..conversation import Conversation

            self._conversation = Conversation(self.system_prompt, self.max_history)
        return self._conversation

    def _label_exchanges(self, cell: str, label: str) -> None:
        """Name the exchanges a finished cell made (there are none before the first chat)."""
        if self._conversation is not None:
            self._conversation.label(cell, label)

    def client(self) -> DeepInfraClient:
        """The session's client (see ``MagicSession.client``)."""
        return self.session.client()

    def _explain_hint(self) -> None:
        """After a failing cell, when asked: how to ask the model why (no request)."""
        if self.explain_errors:
            hint = "💡 `%deepinfra_explain` asks the model why this cell failed."
            self.show(hint, display.plain(hint))

    @property
    def ip(self) -> InteractiveShell:
        """The shell this instance serves (always set: we are built with one)."""
        assert self.shell is not None
        return self.shell

    def publisher(self) -> display.Publisher:
        """Where this shell shows rich output (the watcher notes the images it shows)."""
        publish: display.Publisher = self.ip.display_pub.publish
        return publish

    def show(self, markdown: str, plain: str) -> None:
        """Show Markdown with a plain-text fallback."""
        self.publisher()(display.markdown_bundle(markdown, plain), {})

    def frontend(self) -> display.Frontend:
        """Where and how this shell shows output (``display_mode``; ``auto`` asks it)."""
        return display.frontend_of(self.ip, self.display_mode)

    def end_cell(self, outcome: Outcome) -> None:
        """After a cell kept what arrived: raise a fresh interrupt (its traceback is this
        cell's, not a worker thread's) unless told not to, or the error."""
        if outcome.interrupted:
            if self.raise_on_interrupt:
                raise one_line_interrupt() from None
        elif outcome.problem is not None:
            # A classroom token's refusal says why (expired, spent, model) in its one line.
            raise self.session.refusal(outcome.problem, getattr(outcome.value, "model", None))


# What each family class derives from. A type checker reads a family as a FamilyMagics, so
# its body is checked against the shared state and the settings; at run time it is a plain
# mixin of ``DeepInfraMagics`` (which derives from FamilyMagics itself), because every
# traitlets class costs a fraction of a millisecond to define: it walks all its members.
if TYPE_CHECKING:
    Family = FamilyMagics
else:
    Family = object


# IPython's markers record a method for ``@magics_class`` and return it unchanged; typed
# so, a family's body can name its own magic (``parse_argstring(self.deepinfra, line)``).
def line_magic(method: F) -> F:
    """IPython's ``@line_magic``."""
    return cast("F", magic.line_magic(method))


def cell_magic(method: F) -> F:
    """IPython's ``@cell_magic``."""
    return cast("F", magic.cell_magic(method))


def line_cell_magic(method: F) -> F:
    """IPython's ``@line_cell_magic``."""
    return cast("F", magic.line_cell_magic(method))


def given(option: T | None, setting: T) -> T:
    """A cell's option when given, else the setting."""
    return setting if option is None else option


def one_line_errors(method: F) -> F:
    """With ``raise_on_error = False`` a magic's error is shown as its one line and the
    cell ends normally (notebooks that teach errors still run to the end); else raised."""

    @functools.wraps(method)
    def run(self: Any, *args: Any, **kwargs: Any) -> None:
        try:
            method(self, *args, **kwargs)
        except (DeepInfraError, UsageError) as exc:
            if self.raise_on_error:
                raise
            show_error_line(self.shell, f"{type(exc).__name__}: {exc}")

    return run  # type: ignore[return-value]


def show_error_line(shell: Any, line: str) -> None:
    """In a kernel, ``line`` is the cell's display data, which every frontend shows and
    saves (Voilà drops stderr); in a terminal it goes to stderr."""
    if getattr(shell, "kernel", None) is None:
        print(line, file=sys.stderr)
        return
    shell.display_pub.publish(
        data={"text/plain": line}, metadata={"deepinfra_magic": {"error_line": True}}
    )


def one_line_interrupt() -> KeyboardInterrupt:
    """The interrupt that ends a stopped cell: still a ``KeyboardInterrupt`` (Run All stops),
    shown by IPython as one line instead of the magic's frames (its ``_render_traceback_``)."""
    interrupt = KeyboardInterrupt("stopped; what arrived is kept above")
    setattr(interrupt, "_render_traceback_", lambda: [f"KeyboardInterrupt: {interrupt}"])  # noqa: B010
    return interrupt
