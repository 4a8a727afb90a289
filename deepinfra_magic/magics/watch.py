"""Following the notebook's cells from IPython's events: which cell runs, which fails
(with the traceback IPython showed), and which images each one shows.

Rules kept here:

* ``%%deepinfra --see`` and ``%deepinfra_explain`` read what this notes in a
  :class:`CellLog`; nothing else writes to it.
* One registration per loaded extension, undone entirely by :meth:`CellWatcher.disconnect`.
* Our own errors (UsageError, DeepInfraError) and Ctrl-C are not failures to explain.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError

from ..errors import DeepInfraError

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

    from ..notebook import CellLog

__all__ = ["CellWatcher"]


class CellWatcher:
    """Registers for ``pre_run_cell``/``post_run_cell`` and wraps the display publisher
    (one instance, undone by :meth:`disconnect`); ``label(cell, "In [7]")`` names what a
    finished cell asked the model, and ``after_failure`` runs after a cell fails with an
    error that is not ours."""

    def __init__(
        self,
        shell: InteractiveShell,
        cells: CellLog,
        label: Callable[[str, str], None],
        after_failure: Callable[[], None],
    ) -> None:
        self.shell = shell
        self.cells = cells
        self.label = label
        self.after_failure = after_failure
        self._publisher: Any = None  # the display publisher whose images we note

    def connect(self) -> None:
        """Follow the cells: which one runs, what fails, which images are shown."""
        self.shell.events.register("pre_run_cell", self._pre_run_cell)
        self.shell.events.register("post_run_cell", self._post_run_cell)
        publisher = self.shell.display_pub
        original = publisher.publish

        def publish(data: dict[str, Any], *args: Any, **kwargs: Any) -> None:
            if not kwargs.get("update"):
                self.cells.shown(data)
            original(data, *args, **kwargs)

        publisher.publish = publish  # type: ignore[method-assign]  # one instance, undone on unload
        self._publisher = (publisher, publish)

    def disconnect(self) -> None:
        """Unregister and put the publisher back (nothing to undo after a reload)."""
        for event, callback in (
            ("pre_run_cell", self._pre_run_cell),
            ("post_run_cell", self._post_run_cell),
        ):
            if callback in self.shell.events.callbacks[event]:
                self.shell.events.unregister(event, callback)
        if self._publisher is not None:
            publisher, ours = self._publisher
            if vars(publisher).get("publish") is ours:
                del publisher.publish
            self._publisher = None

    def _pre_run_cell(self, info: Any) -> None:
        self.cells.started(getattr(info, "cell_id", None), info.raw_cell)

    def _post_run_cell(self, result: Any) -> None:
        count = result.execution_count
        if self.cells.current is not None and count is not None:
            self.label(self.cells.current, f"In [{count}]")
        self.cells.finished(count)
        error = result.error_in_exec or result.error_before_exec
        if error is None or isinstance(error, (KeyboardInterrupt, UsageError, DeepInfraError)):
            return
        count = count if count is not None else self.shell.execution_count
        before = result.error_before_exec is not None
        self.cells.failed(count, result.info.raw_cell, self.traceback(error, before))
        self.after_failure()

    def file_handled(self, error: Exception) -> None:
        """Inside an ``except`` block: file the error being handled as the running cell's,
        so a notebook can show the lesson without failing (papermill, Run All). Its
        traceback is its own (``notebook.handled_traceback``), not the magic's call."""
        from ..notebook import handled_traceback

        history = self.shell.history_manager
        inputs = (history.input_hist_raw if history else None) or [""]  # running cell last
        self.cells.failed(len(inputs) - 1, inputs[-1], handled_traceback(error, self._cell_name))

    def _cell_name(self, filename: str) -> str | None:
        """``Cell In[3]`` for the code of a cell, as IPython's tracebacks name it."""
        named = self.shell.compile.format_code_name(filename)
        return " ".join(named) if named else None

    def traceback(self, error: BaseException, before_exec: bool = False) -> str:
        """The traceback as IPython showed it (colour codes are stripped later)."""
        import traceback

        if before_exec:
            return "".join(traceback.format_exception_only(type(error), error))
        try:
            lines = self.shell.InteractiveTB.structured_traceback(
                type(error), error, error.__traceback__
            )
            return "\n".join(lines)
        except Exception:  # a formatter failure must not break the user's cell
            return "".join(traceback.format_exception(type(error), error, error.__traceback__))
