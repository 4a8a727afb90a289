"""Typed values the client returns: chat stream events and the final chat result."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ChatEvent",
    "ChatResult",
    "ContentDelta",
    "ReasoningDelta",
    "Usage",
]


@dataclass(slots=True)
class ContentDelta:
    """A piece of the answer text, in arrival order (one per streamed token: kept cheap)."""

    text: str


@dataclass(slots=True)
class ReasoningDelta:
    """A piece of a reasoning model's ``reasoning_content``: shown apart from the answer."""

    text: str


@dataclass(frozen=True)
class Usage:
    """Token counts for one request, and its cost in dollars when the API reports it."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    estimated_cost: float | None = None

    @classmethod
    def from_json(cls, payload: Mapping[str, Any]) -> Usage:
        """Read an OpenAI-style ``usage`` object (DeepInfra adds ``estimated_cost``)."""
        prompt = int(payload.get("prompt_tokens") or 0)
        completion = int(payload.get("completion_tokens") or 0)
        cost = payload.get("estimated_cost")
        return cls(
            prompt_tokens=prompt,
            completion_tokens=completion,
            total_tokens=int(payload.get("total_tokens") or prompt + completion),
            estimated_cost=float(cost) if isinstance(cost, (int, float)) else None,
        )

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able form, for output metadata."""
        data: dict[str, Any] = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }
        if self.estimated_cost is not None:
            data["estimated_cost"] = self.estimated_cost
        return data


@dataclass
class ChatResult:
    """A finished (or stopped) chat reply: the last event of a stream, or a non-stream answer.

    ``interrupted`` is True when the user stopped the stream; ``error`` holds the
    one-line message when it broke. Either way ``text`` holds everything received.
    With a schema, ``parsed`` is the typed value (as the openai SDK names it) and
    ``repairs`` counts the repair requests it took (0 or 1).
    """

    text: str
    model: str
    reasoning: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None
    interrupted: bool = False
    error: str | None = None
    replayed_from: str | None = None  # the recording file, when replayed
    time_to_first_token: float | None = None
    duration: float | None = None
    parsed: Any = None
    repairs: int = 0

    @property
    def replayed(self) -> bool:
        """True when the reply came from a recording, not the network."""
        return self.replayed_from is not None

    @property
    def complete(self) -> bool:
        """True when the reply ended normally (not interrupted, no error)."""
        return not self.interrupted and self.error is None

    @property
    def tokens_per_second(self) -> float | None:
        """Output tokens per second after the first token, when measurable."""
        if not self.usage or self.duration is None or self.time_to_first_token is None:
            return None
        generating = self.duration - self.time_to_first_token
        if generating <= 0 or self.usage.completion_tokens <= 1:
            return None
        return (self.usage.completion_tokens - 1) / generating

    def metadata(self) -> dict[str, Any]:
        """What a notebook output records about this reply (never the prompt or key)."""
        return {
            "model": self.model,
            "finish_reason": self.finish_reason,
            "usage": self.usage.as_dict() if self.usage else None,
            "interrupted": self.interrupted,
            "error": self.error,
            "replayed": self.replayed,
            "replayed_from": self.replayed_from,
        }

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        state = "interrupted" if self.interrupted else ("failed" if self.error else "complete")
        preview = self.text if len(self.text) <= 60 else self.text[:57] + "..."
        return f"ChatResult(model={self.model!r}, {state}, text={preview!r})"


ChatEvent = ContentDelta | ReasoningDelta | ChatResult
