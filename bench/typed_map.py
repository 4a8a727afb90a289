"""12. Typed answers over a table: what ``--schema`` costs per row, and what distinct
prompts save.

- 12a: parse-and-validate overhead per row, in µs: ``Schema.parse`` on the replies of a
  1,000-row map (the work a schema adds to each row), and the map's wall time per row with
  and without a schema, in the same run against the same server (interleaved rounds,
  medians).
- 12b: the request count for a 1,000-row table with 30% duplicate rows: the server must
  see exactly the distinct prompts.

The fake server (its own process) answers at once (no latency), so the map's own work shows.
Run alone with ``python -m bench.typed_map``.
"""

from __future__ import annotations

import random
import time
from typing import Any

from .common import CHAT_PATH, MODEL, Row, fake_server, isolated_environment, median, server_log

ROWS = 1000
DUPLICATES = 0.3
CONCURRENCY = 16
ROUNDS = 3
SPEC = "sentiment: positive|negative|mixed, confidence: float, tags: list[str], ok: bool?"
TEMPLATE = "Label row {}"


def _map(url: str, items: list[str], schema: Any) -> tuple[float, Any]:
    from deepinfra_magic import DeepInfraClient

    with DeepInfraClient(base_url=f"{url}/v1/openai", catalog_disk_cache=False) as client:
        started = time.perf_counter()
        result = client.map(
            items, TEMPLATE, MODEL, concurrency=CONCURRENCY, max_tokens=40, resume=False,
            schema=schema,
        )  # fmt: skip
        return time.perf_counter() - started, result


def _parse_cost(texts: list[str]) -> float:
    """Seconds per reply of ``Schema.parse`` (median of rounds over every reply)."""
    from deepinfra_magic.schema import Schema

    schema = Schema.from_spec(SPEC)
    rounds = []
    for _ in range(5):
        started = time.perf_counter()
        for text in texts:
            schema.parse(text)
        rounds.append((time.perf_counter() - started) / len(texts))
    return median(rounds)


def measure() -> list[Row]:
    """Rows 12a and 12b."""
    items = [f"{index:04d}" for index in range(ROWS)]
    plain: list[float] = []
    typed: list[float] = []
    with fake_server() as url:
        _map(url, items[:50], SPEC)  # warm-up: imports and pooled connections
        for _ in range(ROUNDS):  # interleaved, so a busy moment hits both alike
            seconds, _ = _map(url, items, None)
            plain.append(seconds / ROWS)
            seconds, result = _map(url, items, SPEC)
            assert result.answered == ROWS and result.failed == 0
            typed.append(seconds / ROWS)
        parse = _parse_cost([row.text for row in result.rows])
        distinct = [f"{index:04d}" for index in range(round(ROWS * (1 - DUPLICATES)))]
        table = distinct + random.Random(7).choices(distinct, k=ROWS - len(distinct))
        random.Random(8).shuffle(table)
        before = sum(r["path"] == CHAT_PATH for r in server_log(url)["requests"])
        _, deduplicated = _map(url, table, SPEC)
        sent = sum(r["path"] == CHAT_PATH for r in server_log(url)["requests"]) - before
    ours, theirs = median(typed), median(plain)
    return [
        Row(
            "12a. Parse and validate one typed row (`Schema.parse`, inline spec of 4 fields)",
            f"{parse * 1e6:.0f} µs",
            f"map wall time per row: {ours * 1e6:.0f} µs typed, {theirs * 1e6:.0f} µs plain",
            f"{parse / theirs:.3f}× of a plain row",
            "— (report)",
            None,
            {"parse_seconds": parse, "typed_row_seconds": typed, "plain_row_seconds": plain},
            note=f"{ROWS:,} rows, concurrency {CONCURRENCY}, medians of {ROUNDS} rounds.",
        ),
        Row(
            f"12b. Map {ROWS:,} rows with {DUPLICATES:.0%} duplicates, `--schema`",
            f"{sent:,} requests",
            f"{len(distinct):,} distinct prompts",
            f"{sent / len(distinct):.3f}×",
            "= distinct prompts",
            sent == len(distinct) == deduplicated.distinct,
            {"requests": sent, "distinct": len(distinct), "rows": ROWS},
        ),
    ]


if __name__ == "__main__":
    with isolated_environment():
        for row in measure():
            print(f"{row.benchmark}: {row.ours} · {row.baseline} · {row.ratio}")
