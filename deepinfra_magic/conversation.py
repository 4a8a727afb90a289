"""A chat conversation: the system prompt, then the last few complete turns.

Turns remember the notebook cell they came from: running a cell again replaces its
earlier turn, so a re-run never feeds the model its own stale answer. (A request and
its recorded answer is a different thing: ``recording.Exchange``.)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Content", "Conversation", "Turn"]

Content = str | list[dict[str, Any]]  # a string, or OpenAI-style content parts


@dataclass(frozen=True)
class Turn:
    """One complete turn: what the user asked and what the model answered."""

    prompt: str
    reply: str
    model: str
    cell: str | None = None  # which cell asked (its id, or its source outside notebooks)
    label: str = ""  # how to show that cell, e.g. ``In [7]``
    content: Content | None = None  # what was sent, when it was more than the prompt
    attached: str = ""  # what went along with the prompt, e.g. ``1 image, 1 table``

    @property
    def sent(self) -> Content:
        """The user message content as it was sent."""
        return self.prompt if self.content is None else self.content


@dataclass
class Conversation:
    """Multi-turn memory. Only complete replies are stored: an interrupted or failed turn
    would teach the model a half answer, so it is left out (and the caller says so)."""

    system_prompt: str = ""
    max_history: int = 5
    exchanges: list[Turn] = field(default_factory=list)

    def messages(
        self,
        prompt: Content,
        system_prompt: str | None = None,
        *,
        cell: str | None = None,
        images: bool = True,
    ) -> list[dict[str, Any]]:
        """The messages to send for ``prompt``: system first, then the last exchanges.

        ``cell``'s own earlier exchange is left out (it is being re-run). An image already
        in a later message is sent only there; ``images=False`` (a model that cannot see)
        replaces earlier images with a short note.
        """
        system = self.system_prompt if system_prompt is None else system_prompt
        messages: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
        for exchange in self.window(cell):
            messages.append({"role": "user", "content": exchange.sent})
            messages.append({"role": "assistant", "content": exchange.reply})
        messages.append({"role": "user", "content": prompt})
        return _images_once(messages, keep=images)

    def window(self, cell: str | None = None) -> list[Turn]:
        """The exchanges that are sent: the last ``max_history`` ones (not ``cell``'s)."""
        if self.max_history <= 0:
            return []
        others = [e for e in self.exchanges if cell is None or e.cell != cell]
        return others[-self.max_history :]

    def add(
        self,
        prompt: str,
        reply: str,
        model: str,
        *,
        cell: str | None = None,
        label: str = "",
        content: Content | None = None,
        attached: str = "",
    ) -> None:
        """Remember a complete exchange; one from the same cell is replaced."""
        if cell is not None:
            self.exchanges = [e for e in self.exchanges if e.cell != cell]
        self.exchanges.append(Turn(prompt, reply, model, cell, label, content, attached))

    def label(self, cell: str, label: str) -> None:
        """Name the cell an exchange came from (known once the cell has run); ``cell`` also
        names the exchanges whose key is ``cell#<topic>``."""
        self.exchanges = [
            dataclasses.replace(e, label=label)
            if e.cell and not e.label and e.cell.partition("#")[0] == cell
            else e
            for e in self.exchanges
        ]

    def reset(self) -> None:
        """Forget every exchange (the system prompt stays)."""
        self.exchanges.clear()

    def __len__(self) -> int:
        return len(self.exchanges)


def _images_once(messages: list[dict[str, Any]], keep: bool) -> list[dict[str, Any]]:
    """Each distinct image only in the last message that holds it (or nowhere, for a
    model that cannot see: then earlier images become a note, the last message is kept)."""
    import hashlib  # here, not at the top: loading the extension stays light

    seen: set[str] = set()
    result: list[dict[str, Any]] = []
    for position, message in enumerate(reversed(messages)):
        content = message.get("content")
        if not isinstance(content, list):
            result.append(message)
            continue
        parts: list[dict[str, Any]] = []
        for part in content:
            url = part.get("image_url", {}).get("url") if part.get("type") == "image_url" else None
            if not isinstance(url, str):
                parts.append(part)
                continue
            digest = hashlib.sha256(url.encode()).hexdigest()
            if digest in seen:
                parts.append({"type": "text", "text": "[the same image is attached below]"})
            elif keep or position == 0:
                seen.add(digest)
                parts.append(part)
            else:
                parts.append({"type": "text", "text": "[an image was attached here]"})
        result.append({**message, "content": parts})
    result.reverse()
    return result
