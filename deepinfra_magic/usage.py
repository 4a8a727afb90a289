"""What a session has spent: requests, tokens, images and dollars, by model and by kind
(chat, images, map, batch), and the one rule that prices a request from the catalog.

Rules it keeps: plain bookkeeping, no I/O; a ledger is written only by the client that
holds it (never by a flow), so the magics hand theirs, :data:`SESSION_USAGE`, to every
client they build and ``%deepinfra_usage`` outlives a client rebuild; a price the API did
not report comes from ``ModelInfo.cost``, applied once, in :func:`priced`.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .types import Usage

if TYPE_CHECKING:
    from .catalog import ModelInfo

__all__ = ["SESSION_USAGE", "UsageLedger", "UsageTotals", "priced"]

KINDS = ("chat", "images", "map", "batch")


@dataclass
class UsageTotals:
    """Totals for one model, one kind, or everything."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    images: int = 0
    dollars: float = 0.0
    unpriced: int = 0  # requests whose cost nobody reported and the catalog did not know

    def add(self, other: UsageTotals) -> None:
        """Add another set of totals into this one."""
        self.requests += other.requests
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.images += other.images
        self.dollars += other.dollars
        self.unpriced += other.unpriced


@dataclass
class UsageLedger:
    """Thread-safe running totals, keyed by (kind, model)."""

    _rows: dict[tuple[str, str], UsageTotals] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(
        self,
        kind: str,
        model: str,
        usage: Usage | None = None,
        *,
        images: int = 0,
        cost: float | None = None,
        requests: int = 1,
    ) -> None:
        """Count finished requests of ``kind`` on ``model`` (cost: the usage's, else ``cost``)."""
        if cost is None and usage is not None:
            cost = usage.estimated_cost
        entry = UsageTotals(
            requests=requests,
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            images=images,
            dollars=cost or 0.0,
            unpriced=requests if cost is None else 0,
        )
        with self._lock:
            self._rows.setdefault((kind, model), UsageTotals()).add(entry)

    def total(self) -> UsageTotals:
        """Everything so far."""
        result = UsageTotals()
        for totals in self.snapshot().values():
            result.add(totals)
        return result

    def by(self, what: str) -> dict[str, UsageTotals]:
        """Totals grouped by ``"model"`` or ``"kind"``."""
        grouped: dict[str, UsageTotals] = {}
        for (kind, model), totals in self.snapshot().items():
            grouped.setdefault(model if what == "model" else kind, UsageTotals()).add(totals)
        return grouped

    def snapshot(self) -> dict[tuple[str, str], UsageTotals]:
        """A copy of the rows, safe to read while requests finish."""
        with self._lock:
            return {key: UsageTotals(**vars(value)) for key, value in self._rows.items()}

    def reset(self) -> None:
        """Forget everything (``%deepinfra_usage --reset``)."""
        with self._lock:
            self._rows.clear()


def priced(usage: Usage | None, info: ModelInfo | None, factor: float = 1.0) -> Usage | None:
    """``usage`` with its cost from the catalog's prices (times ``factor``, the batch
    discount) when the API did not report one; unchanged when it did or no price is known."""
    if usage is None or usage.estimated_cost is not None or info is None:
        return usage
    cost = info.cost(usage)
    return usage if cost is None else dataclasses.replace(usage, estimated_cost=cost * factor)


SESSION_USAGE = UsageLedger()
"""The magics' ledger: a kernel session's totals, handed to each client they build (and
the default of a client built without one)."""
