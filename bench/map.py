"""9. A prompt over 1,000 rows: ``DeepInfraClient.map`` against the ideal N·L/C and against
``AsyncOpenAI`` with an ``asyncio.Semaphore``, and against a server that admits 8 requests
at once and answers 429 to the rest.

The fake server (its own process) answers every chat completion after ``LATENCY`` seconds.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

from .common import API_KEY, CHAT_PATH, MODEL, Row, fake_server, median, server_log

ROWS = 1000
LATENCY = 0.2
CONCURRENCY = 32
ADMITTED = 8
GOAL = 1.15
ROUNDS = 3
TEMPLATE = "Label row {}"


def _items() -> list[str]:
    return [f"{index:04d}" for index in range(ROWS)]


def _ours(url: str, concurrency: int = CONCURRENCY) -> tuple[float, Any]:
    from deepinfra_magic import DeepInfraClient

    with DeepInfraClient(base_url=f"{url}/v1/openai", catalog_disk_cache=False) as client:
        started = time.perf_counter()
        result = client.map(
            _items(), TEMPLATE, MODEL, concurrency=concurrency, max_tokens=3, resume=False
        )
        return time.perf_counter() - started, result


def _ours_async(url: str) -> float:
    from deepinfra_magic import AsyncDeepInfraClient

    async def main() -> float:
        async with AsyncDeepInfraClient(
            base_url=f"{url}/v1/openai", catalog_disk_cache=False
        ) as client:
            started = time.perf_counter()
            result = await client.map(
                _items(), TEMPLATE, MODEL, concurrency=CONCURRENCY, max_tokens=3, resume=False
            )
            assert result.answered == ROWS
            return time.perf_counter() - started

    return asyncio.run(main())


def _openai(url: str) -> tuple[float, int]:
    """AsyncOpenAI with a semaphore: the usual hand-written loop. Returns (seconds, failed)."""
    import openai

    async def main() -> tuple[float, int]:
        client = openai.AsyncOpenAI(api_key=API_KEY, base_url=f"{url}/v1/openai")
        semaphore = asyncio.Semaphore(CONCURRENCY)

        async def one(item: str) -> str | None:
            async with semaphore:
                try:
                    reply = await client.chat.completions.create(
                        model=MODEL,
                        messages=[{"role": "user", "content": TEMPLATE.format(item)}],
                        max_tokens=3,
                    )
                except openai.APIError:
                    return None
                return reply.choices[0].message.content

        started = time.perf_counter()
        answers = await asyncio.gather(*(one(item) for item in _items()))
        seconds = time.perf_counter() - started
        await client.close()
        return seconds, sum(answer is None for answer in answers)

    return asyncio.run(main())


def measure() -> list[Row]:
    """Rows 9: the ideal-latency run and the 429 run."""
    ideal = ROWS * LATENCY / CONCURRENCY
    samples: dict[str, list[float]] = {"sync": [], "async": [], "openai": []}
    with fake_server(first_byte_delay=LATENCY) as url:
        _ours(url, 4)  # warm-up: imports and pooled connections
        for _ in range(ROUNDS):  # interleaved, so a busy moment hits every variant alike
            seconds, result = _ours(url)
            assert result.answered == ROWS
            samples["sync"].append(seconds)
            samples["async"].append(_ours_async(url))
            seconds, their_failed = _openai(url)
            samples["openai"].append(seconds)
    ours, ours_async, theirs = (median(samples[name]) for name in ("sync", "async", "openai"))
    rows = [
        Row(
            f"9a. Map {ROWS:,} prompts at {LATENCY} s latency, concurrency {CONCURRENCY}, "
            "`DeepInfraClient.map`",
            f"{ours:.2f} s",
            f"{ideal:.2f} s (ideal N·L/C)",
            f"{ours / ideal:.3f}×",
            f"≤ {GOAL:g}×",
            ours / ideal <= GOAL,
            {"seconds": samples["sync"], "ideal": ideal},
        ),
        Row(
            "9a. The same, `AsyncDeepInfraClient.map`",
            f"{ours_async:.2f} s",
            f"{ideal:.2f} s (ideal N·L/C)",
            f"{ours_async / ideal:.3f}×",
            f"≤ {GOAL:g}×",
            ours_async / ideal <= GOAL,
            {"seconds": samples["async"], "ideal": ideal},
        ),
        Row(
            "9a. The same, `AsyncOpenAI` + `asyncio.Semaphore` (comparison)",
            f"{theirs:.2f} s",
            f"{ideal:.2f} s (ideal N·L/C)",
            f"{theirs / ideal:.3f}×",
            "— (comparison)",
            None,
            {"seconds": samples["openai"], "ideal": ideal, "failed": their_failed},
        ),
    ]
    rows += _rate_limited()
    return rows


def _rate_limited() -> list[Row]:
    capacity_ideal = ROWS * LATENCY / ADMITTED
    with fake_server(first_byte_delay=LATENCY, max_concurrent=ADMITTED) as url:
        ours, result = _ours(url)
        log = server_log(url)
        sent = Counter(
            request["json"]["messages"][-1]["content"]
            for request in log["requests"]
            if request["path"] == CHAT_PATH
        )
        duplicated = sum(sent[row.prompt] > 1 + row.rate_limited for row in result.rows)
        refused = sum(row.rate_limited for row in result.rows)
        theirs, their_failed = _openai(url)
    finished = result.answered
    met = finished == ROWS and duplicated == 0
    return [
        Row(
            f"9b. Map {ROWS:,} prompts, server admits {ADMITTED} at once (429 + Retry-After: 1 "
            f"beyond), `DeepInfraClient.map` at concurrency {CONCURRENCY}",
            f"{ours:.1f} s, {finished:,}/{ROWS:,} answered, {duplicated} duplicated",
            f"{capacity_ideal:.1f} s (ideal at {ADMITTED} at once)",
            f"{ours / capacity_ideal:.2f}×",
            "all finish, none duplicated (time: report)",
            met,
            {
                "seconds": ours,
                "answered": finished,
                "duplicated": duplicated,
                "refused_429": refused,
                "ideal": capacity_ideal,
            },
        ),
        Row(
            "9b. The same server, `AsyncOpenAI` + `asyncio.Semaphore(32)` (comparison)",
            f"{theirs:.1f} s, {ROWS - their_failed:,}/{ROWS:,} answered",
            f"{capacity_ideal:.1f} s (ideal at {ADMITTED} at once)",
            f"{theirs / capacity_ideal:.2f}×",
            "— (comparison)",
            None,
            {"seconds": theirs, "failed": their_failed},
            note=(
                f"The server answers each completion after {LATENCY} s (own process); 9a: "
                f"medians of {ROUNDS} interleaved rounds. With "
                f"8 admitted, our map met {refused} refusals (429), halved its concurrency "
                "and grew it back; a row counts as duplicated if the server saw more "
                "requests for it than its refusals plus one. The openai SDK retries a 429 "
                "twice (honouring Retry-After), then the row fails."
            ),
        ),
    ]
