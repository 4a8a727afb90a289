"""What reaches the frontend, and when: bundles, one ``plain()``, the frontend, ``LiveOutput``.

Rules kept here (Rich's ``Live`` is the model: it owns *when and where*, views own *what*):

* Every bundle is Markdown with a text/plain fallback (:func:`markdown_bundle`), never HTML
  built from model text; :func:`plain` is the one way Markdown becomes its text/plain copy.
* One :class:`Frontend` value says what the frontend can do (apply live Markdown updates,
  show widgets, where text goes); it is chosen once, by :func:`frontend_of`. Views read it
  and never look at the shell.
* Only :class:`LiveOutput` publishes with a display id. The first ``show`` displays, later
  ones update in place. A frontend without live updates gets the first ``show`` only: it
  is printed once.
* No output is left empty: a saved notebook keeps every output ever displayed (JupyterLab
  and nbclient remove outputs only by ``clear_output``, which would also wipe whatever
  else the cell printed, a notice on stderr or the user's own lines). So a live view ends
  *in place* (:func:`settle_live`): its live outputs get the finished parts, and the
  closing output that follows (a footer, a caption) is fresh display data whose first
  text/plain also carries the text of those parts, then is updated to its own. jupyter
  console, which ignores updates and prints text/plain, thus prints everything once;
  frontends that apply updates show each part once.
* Nothing here imports the client or the shell; IPython is imported only to test the
  frontend's publisher class.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TextIO

from .._markdown import escape_dollars

__all__ = [
    "METADATA_KEY",
    "Frontend",
    "LiveOutput",
    "Publisher",
    "frontend_of",
    "markdown_bundle",
    "metadata_for",
    "plain",
    "rich_display_available",
    "settle_live",
]

METADATA_KEY = "deepinfra_magic"


class Publisher(Protocol):
    """The shell's display publisher (``shell.display_pub.publish``)."""

    def __call__(
        self,
        data: dict[str, Any],
        metadata: dict[str, Any] | None = ...,
        *,
        transient: dict[str, Any] | None = ...,
        update: bool = ...,
    ) -> None: ...


def plain(markdown: str) -> str:
    """The text/plain copy of a Markdown line: the same words without code marks or
    emphasis, and escaped dollars (``\\$`` in table cells) shown as written."""
    return markdown.replace("`", "").replace("*", "").replace("\\$", "$")


def markdown_bundle(markdown: str, plain: str | None = None) -> dict[str, str]:
    """Markdown with a text/plain fallback in the same bundle (headless runs keep text).

    Dollars that are not math are escaped in the Markdown only, so that Jupyter shows
    prices as written; the text/plain copy keeps the plain ``$``."""
    return {
        "text/markdown": escape_dollars(markdown),
        "text/plain": markdown if plain is None else plain,
    }


def metadata_for(info: dict[str, Any] | None) -> dict[str, Any]:
    """Output metadata under our own key (stored in the .ipynb)."""
    return {METADATA_KEY: info} if info else {}


def rich_display_available(shell: Any) -> bool:
    """True when the frontend renders Markdown and applies display updates in place.

    A capability check, not a class-name sniff: terminal IPython formats only text/plain
    and its base publisher prints every update (a wall of repeated text).
    """
    from IPython.core.displaypub import DisplayPublisher

    formatter = getattr(shell, "display_formatter", None)
    publisher = getattr(shell, "display_pub", None)
    if formatter is None or publisher is None:
        return False
    return "text/markdown" in formatter.active_types and type(publisher) is not DisplayPublisher


@dataclass(frozen=True)
class Frontend:
    """What the frontend can show: the one choice every view reads.

    ``live``: it renders Markdown and applies display updates in place (a notebook);
    otherwise text is printed once (a terminal). ``widgets``: a kernel that can show
    ipywidgets. ``stream``: where printed text goes (``sys.stdout`` when None)."""

    publish: Publisher
    live: bool
    widgets: bool = False
    stream: TextIO | None = None

    @property
    def out(self) -> TextIO:
        """The stream printed text goes to."""
        return self.stream if self.stream is not None else sys.stdout

    def live_output(self, display_id: str | None = None) -> LiveOutput:
        """A new live output on this frontend."""
        return LiveOutput(self.publish, self.live, display_id)


def frontend_of(shell: Any, display_mode: str = "auto") -> Frontend:
    """The frontend of ``shell``: ``display_mode`` ``"auto"`` asks it what it can do,
    ``"markdown"``/``"text"`` say it."""
    live = rich_display_available(shell) if display_mode == "auto" else display_mode == "markdown"
    widgets = getattr(shell, "kernel", None) is not None
    return Frontend(shell.display_pub.publish, live, widgets)


def new_display_id() -> str:
    """A fresh display id."""
    return uuid.uuid4().hex[:16]


class LiveOutput:
    """One output shown now and changed in place later, owning its display id.

    The first :meth:`show` displays, later ones update in place; a frontend without live
    updates (``live=False``) gets the first one only, printed once.
    """

    __slots__ = ("_publish", "display_id", "live", "shown")

    def __init__(
        self, publish: Publisher, live: bool = True, display_id: str | None = None
    ) -> None:
        self._publish = publish
        self.live = live
        self.display_id = display_id or new_display_id()
        self.shown = False

    def show(self, bundle: dict[str, Any]) -> None:
        """Display ``bundle``, or put it in place of what this output shows."""
        if self.shown and not self.live:
            return
        self._publish(bundle, {}, transient={"display_id": self.display_id}, update=self.shown)
        self.shown = True

    def update(self, bundle: dict[str, Any], metadata: dict[str, Any] | None = None) -> None:
        """Put ``bundle`` in place of what this output shows (on a live frontend)."""
        if self.live:
            transient = {"display_id": self.display_id}
            self._publish(bundle, metadata or {}, transient=transient, update=True)
            self.shown = True

    def settle(self, bundle: dict[str, Any]) -> None:
        """End with ``bundle`` kept: in place of what is shown live, else as a fresh output."""
        if self.shown and self.live:
            self.show(bundle)
        else:
            self._publish(bundle, {})

    def empty(self) -> None:
        """Empty this output on a live frontend (JupyterLab then renders nothing for it)."""
        if self.live:
            self._publish({}, {}, transient={"display_id": self.display_id}, update=True)


def settle_live(
    publish: Publisher,
    placed: Iterable[tuple[LiveOutput, dict[str, Any]]],
    closing: Iterable[dict[str, Any]],
    metadata: dict[str, Any] | None,
    missed: Sequence[str] = (),
) -> None:
    """The end of a live view, leaving no output empty: each ``placed`` live output gets its
    finished bundle in place, then the ``closing`` bundles follow as fresh outputs. The
    first closing bundle is published with ``missed`` (the plain text of what was placed,
    which a frontend ignoring updates never saw, in pieces joined once here: a long reply
    is not copied piece by piece) in front of its text/plain, then updated to its own."""
    info = metadata_for(metadata)
    for output, bundle in placed:
        output.update(bundle, info)
    for index, bundle in enumerate(closing):
        if index or not missed:
            publish(bundle, info)
            continue
        first = LiveOutput(publish)
        first.show({**bundle, "text/plain": "".join([*missed, "\n", bundle.get("text/plain", "")])})
        first.update(bundle, info)
