"""A chat conversation: the system prompt, then the last few complete exchanges."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Conversation", "Exchange"]


@dataclass(frozen=True)
class Exchange:
    """One complete turn: what the user asked and what the model answered."""

    prompt: str
    reply: str
    model: str


@dataclass
class Conversation:
    """Multi-turn memory. Only complete replies are stored: an interrupted or failed turn
    would teach the model a half answer, so it is left out (and the caller says so)."""

    system_prompt: str = ""
    max_history: int = 5
    exchanges: list[Exchange] = field(default_factory=list)

    def messages(self, prompt: str, system_prompt: str | None = None) -> list[dict[str, str]]:
        """The messages to send for ``prompt``: system first, then the last exchanges."""
        system = self.system_prompt if system_prompt is None else system_prompt
        messages = [{"role": "system", "content": system}] if system else []
        for exchange in self.window():
            messages.append({"role": "user", "content": exchange.prompt})
            messages.append({"role": "assistant", "content": exchange.reply})
        messages.append({"role": "user", "content": prompt})
        return messages

    def window(self) -> list[Exchange]:
        """The exchanges that are sent: the last ``max_history`` ones."""
        if self.max_history <= 0:
            return []
        return self.exchanges[-self.max_history :]

    def add(self, prompt: str, reply: str, model: str) -> None:
        """Remember a complete exchange."""
        self.exchanges.append(Exchange(prompt, reply, model))

    def reset(self) -> None:
        """Forget every exchange (the system prompt stays)."""
        self.exchanges.clear()

    def __len__(self) -> int:
        return len(self.exchanges)
