"""What the display tests share: a fake clock and a recording publisher.

The recorder stands in for the shell's publisher (it keeps each message as IPython's
capturing publisher does); ``tests.kernel_helpers.notebook_view``/``console_view`` read
the messages the way JupyterLab and jupyter console do.
"""

from __future__ import annotations

import json
from typing import Any

from IPython.utils.capture import RichOutput

from deepinfra_magic.display import ReplyView
from tests.kernel_helpers import MARKDOWN, notebook_view


class Clock:
    """Time that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Recorder:
    """Keeps every display message, as ``RichOutput`` objects."""

    def __init__(self) -> None:
        self.outputs: list[RichOutput] = []

    def __call__(
        self,
        data: dict[str, Any],
        metadata: dict[str, Any] | None = None,
        *,
        transient: dict[str, Any] | None = None,
        update: bool = False,
    ) -> None:
        self.outputs.append(RichOutput(data, metadata or {}, transient or {}, update))

    @property
    def bytes(self) -> int:
        return sum(len(json.dumps(o.data, ensure_ascii=False).encode()) for o in self.outputs)


def stream(view: ReplyView, clock: Clock, tokens: list[str], rate: float) -> None:
    """Feed ``tokens`` to the answer, ``rate`` a second, on the fake clock; then let the
    updates go out that the next tokens would send (a freeze takes two: the first may hold
    back text after a block boundary)."""
    for token in tokens:
        clock.now += 1 / rate
        view.add_answer(token)
    assert view.answer is not None
    view.answer.update()
    view.answer.update()


def words(text: str) -> list[str]:
    """``text`` in 4-character tokens, like a model's."""
    return [text[i : i + 4] for i in range(0, len(text), 4)]


def live_texts(outputs: list[RichOutput]) -> list[str]:
    """What the live outputs show at this moment, in order (updates applied)."""
    return [o.data[MARKDOWN] for o in notebook_view(outputs)]


def saved_outputs(outputs: list[RichOutput]) -> list[RichOutput]:
    """Every output a saved notebook keeps (JupyterLab and nbclient keep each display, with
    its updates applied), empty ones included."""
    saved: list[RichOutput] = []
    for output in outputs:
        ident = (output.transient or {}).get("display_id")
        if not output.update:
            saved.append(output)
            continue
        saved = [
            RichOutput(output.data, output.metadata, output.transient)
            if (old.transient or {}).get("display_id") == ident
            else old
            for old in saved
        ]
    return saved
