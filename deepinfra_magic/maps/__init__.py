"""A prompt over a table, and its Batch API path: the library's map wing (no IPython).

Rules it keeps: ``rows`` plans (templates, requests, keys, estimates) and holds the
results; ``store`` keeps answers on disk; ``scheduler`` decides which row goes when and
moves no bytes; ``drive`` moves them; ``batch`` is the Batch API, its flows and the pure
merge of a batch's answers into a job. Modules import only downward in that order
(``store`` ← ``rows`` ← ``scheduler`` ← ``drive``; ``batch`` on ``rows`` and ``store``),
never the client: the client calls in, handing over its transport, catalog and ledger.
"""

from __future__ import annotations

from .batch import DISCOUNT, BatchJob, merge_batch
from .rows import MapInterrupted, MapJob, MapProgress, MapResult, RowError, plan_map

__all__ = [
    "DISCOUNT",
    "BatchJob",
    "MapInterrupted",
    "MapJob",
    "MapProgress",
    "MapResult",
    "RowError",
    "merge_batch",
    "plan_map",
]
