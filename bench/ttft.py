"""3. Added time to first token over raw httpx, warm connection pools in both.

The fake server sends the first chunk at once (no first-byte or token delay, a short
reply). Each sample is the time from starting the request to the first non-empty content
delta: through ``DeepInfraClient.chat(...)`` and through raw httpx (``iter_lines`` +
``json.loads``), alternating, with the same request body. Both read their reply to the
end, so the connection goes back to the pool for the next sample.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import httpx

from deepinfra_magic._config import DEFAULT_MAX_TOKENS, DEFAULT_TEMPERATURE

from .common import API_KEY, CHAT_PATH, MODEL, Row, chat_body, fake_server, median

SAMPLES = 1000
GOAL_MS = 2.0
REPLY_TOKENS = 8


def _raw_httpx(url: str) -> Callable[[], float]:
    client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {API_KEY}"})
    body = chat_body(temperature=DEFAULT_TEMPERATURE, max_tokens=DEFAULT_MAX_TOKENS)

    def run() -> float:
        started = time.perf_counter()
        first = 0.0
        with client.stream("POST", CHAT_PATH, json=body) as response:
            for line in response.iter_lines():
                if first or not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                choices = json.loads(line[6:])["choices"]
                if choices and choices[0]["delta"].get("content"):
                    first = time.perf_counter()
        return first - started

    return run


def _library(url: str) -> Callable[[], float]:
    from deepinfra_magic import ContentDelta, DeepInfraClient

    client = DeepInfraClient(base_url=f"{url}/v1/openai", catalog_disk_cache=False)
    messages = chat_body()["messages"]

    def run() -> float:
        started = time.perf_counter()
        first = 0.0
        with client.chat(messages, MODEL) as stream:
            for event in stream:
                if not first and isinstance(event, ContentDelta):
                    first = time.perf_counter()
        return first - started

    return run


def measure() -> list[Row]:
    """Row 3: median time to first token, ours minus raw httpx."""
    with fake_server(reply_tokens=REPLY_TOKENS, token_delay=0) as url:
        ours_run, raw_run = _library(url), _raw_httpx(url)
        ours_run(), raw_run()  # warm: imports done, one pooled connection each
        ours: list[float] = []
        raw: list[float] = []
        for _ in range(SAMPLES):
            ours.append(ours_run() * 1e3)
            raw.append(raw_run() * 1e3)
    ours_ms, raw_ms = median(ours), median(raw)
    added = ours_ms - raw_ms
    paired = median([a - b for a, b in zip(ours, raw, strict=True)])
    return [
        Row(
            "3. Time to first token, added over raw httpx",
            f"{ours_ms:.2f} ms",
            f"{raw_ms:.2f} ms (httpx iter_lines + json)",
            f"{added:+.2f} ms",
            f"≤ {GOAL_MS:g} ms added",
            added <= GOAL_MS,
            {
                "ours_ms": ours_ms,
                "raw_ms": raw_ms,
                "added_ms": added,
                "paired_median_added_ms": paired,
                "samples": SAMPLES,
            },
            f"Median of {SAMPLES} alternating requests each; the median of the paired "
            f"differences is {paired:+.2f} ms.",
        )
    ]
