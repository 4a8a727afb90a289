"""A prompt over a table, and its Batch API path: the library's map wing (no IPython).

Rules it keeps: ``rows`` plans (templates, requests, keys, estimates) and holds the
results; ``store`` keeps answers on disk; ``scheduler`` decides which row goes when and
moves no bytes; ``drive`` moves them; ``batch`` is the Batch API, its flows and the pure
merge of a batch's answers into a job. Modules import only downward in that order
(``store`` ← ``rows`` ← ``scheduler`` ← ``drive``; ``batch`` on ``rows`` and ``store``),
never the client: the client calls in, handing over its transport, catalog and ledger.
"""

from __future__ import annotations

from .batch import DISCOUNT, BatchJob, BatchOutcome, merge_batch
from .rows import (
    CostEstimate,
    MapInterrupted,
    MapJob,
    MapProgress,
    MapResult,
    MapRow,
    RowError,
    plan_map,
    read_rows,
)
from .scheduler import AdaptiveLimit, RowScheduler
from .store import AnswerStore, answer_key

__all__ = [
    "DISCOUNT",
    "AdaptiveLimit",
    "AnswerStore",
    "BatchJob",
    "BatchOutcome",
    "CostEstimate",
    "MapInterrupted",
    "MapJob",
    "MapProgress",
    "MapResult",
    "MapRow",
    "RowError",
    "RowScheduler",
    "answer_key",
    "merge_batch",
    "plan_map",
    "read_rows",
]
