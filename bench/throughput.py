"""2. Streaming throughput: chunks per second through the whole ``%%deepinfra`` pipeline.

The fake server streams 20,000 content chunks with no delay. Measured, interleaved:

* ours: ``%%deepinfra`` in a real ``InteractiveShell`` whose display publisher serialises
  every message as a kernel does (the rich path, display updates included);
* (a) raw httpx: ``iter_lines()``, ``json.loads`` of each ``data:`` line, content joined;
* (b) the official ``openai`` SDK on ``<fake>/v1/openai``, ``stream=True``;
* and, to tell library cost from display cost, ``DeepInfraClient.chat`` alone.

Each path must deliver the whole reply; chunks/s is 20,000 over the wall time.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from tests.fake_deepinfra import filler_reply

from .common import (
    API_KEY,
    CHAT_PATH,
    MODEL,
    Row,
    chat_body,
    fake_server,
    magic_shell,
    median,
    openai_reply,
    raw_httpx_reply,
)

CHUNKS = 20_000
ROUNDS = 9
GOAL_RAW = 0.9
GOAL_OPENAI = 2.0


def _raw_httpx(url: str) -> Callable[[], str]:
    client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {API_KEY}"})
    return raw_httpx_reply(client, CHAT_PATH, chat_body())


def _openai_sdk(url: str) -> Callable[[], str]:
    import openai

    client = openai.OpenAI(api_key=API_KEY, base_url=f"{url}/v1/openai")
    body = chat_body()
    return openai_reply(
        client,
        model=body["model"],
        messages=body["messages"],
        stream_options=body["stream_options"],
    )


def _library(url: str) -> Callable[[], str]:
    from deepinfra_magic import ContentDelta, DeepInfraClient

    client = DeepInfraClient(base_url=f"{url}/v1/openai", catalog_disk_cache=False)

    def run() -> str:
        parts = []
        with client.chat(chat_body()["messages"], MODEL, max_tokens=CHUNKS) as stream:
            for event in stream:
                if isinstance(event, ContentDelta):
                    parts.append(event.text)
        return "".join(parts)

    return run


def _magic(url: str) -> Callable[[], str]:
    shell, magics, publisher = magic_shell(url)
    line = f"-m {MODEL} --new --max-tokens {CHUNKS}"
    prompt = chat_body()["messages"][0]["content"]

    def run() -> str:
        publisher.reset()
        shell.run_cell_magic("deepinfra", line, prompt)
        assert magics.last_response is not None and publisher.updates > 0
        return magics.last_response.text

    return run


def _paired_ratio(seconds: dict[str, list[float]], ours: str, theirs: str) -> float:
    """Median over rounds of our rate over theirs: neighbours in time share the load."""
    return median([b / a for a, b in zip(seconds[ours], seconds[theirs], strict=True)])


def measure() -> list[Row]:
    """Rows 2a (vs raw httpx), 2b (vs the openai SDK) and 2c (library alone, diagnostic)."""
    expected = filler_reply(CHUNKS)
    with fake_server(reply_tokens=CHUNKS, token_delay=0) as url:
        paths = {
            "magic": _magic(url),
            "raw_httpx": _raw_httpx(url),
            "openai": _openai_sdk(url),
            "library": _library(url),
        }
        seconds: dict[str, list[float]] = {name: [] for name in paths}
        cpu: dict[str, list[float]] = {name: [] for name in paths}
        for round_ in range(ROUNDS + 1):  # round 0 warms up imports and connections
            for name, run in paths.items():
                started, cpu_started = time.perf_counter(), time.process_time()
                text = run()
                elapsed = time.perf_counter() - started
                cpu_used = time.process_time() - cpu_started
                if text != expected:
                    raise RuntimeError(f"{name} got {len(text)} of {len(expected)} characters")
                if round_:
                    seconds[name].append(elapsed)
                    cpu[name].append(cpu_used)
    rate = {name: CHUNKS / median(values) for name, values in seconds.items()}
    cpu_us = {name: median(values) / CHUNKS * 1e6 for name, values in cpu.items()}
    ratio = {
        f"{ours}/{theirs}": _paired_ratio(seconds, ours, theirs)
        for ours, theirs in (("magic", "raw_httpx"), ("magic", "openai"), ("library", "raw_httpx"))
    }
    vs_raw, vs_openai = ratio["magic/raw_httpx"], ratio["magic/openai"]
    data = {
        "chunks": CHUNKS,
        "rounds": ROUNDS,
        "chunks_per_s": rate,
        "paired_ratios": ratio,
        "client_cpu_us_per_chunk": cpu_us,
        "seconds": seconds,
        "cpu_seconds": cpu,
    }
    return [
        Row(
            "2a. Streaming throughput vs raw httpx",
            f"{rate['magic']:,.0f} chunks/s",
            f"{rate['raw_httpx']:,.0f} chunks/s (httpx iter_lines + json)",
            f"{vs_raw:.3f}×",
            f"≥ {GOAL_RAW}×",
            vs_raw >= GOAL_RAW,
            data,
            f"Rates: medians of {ROUNDS} interleaved rounds; ratios: medians of the per-round "
            f"ratios. Client CPU per chunk: magic {cpu_us['magic']:.1f} µs, library alone "
            f"{cpu_us['library']:.1f} µs, raw httpx {cpu_us['raw_httpx']:.1f} µs, openai "
            f"{cpu_us['openai']:.1f} µs.",
        ),
        Row(
            "2b. Streaming throughput vs openai SDK",
            f"{rate['magic']:,.0f} chunks/s",
            f"{rate['openai']:,.0f} chunks/s (openai, stream=True)",
            f"{vs_openai:.2f}×",
            f"≥ {GOAL_OPENAI:g}×",
            vs_openai >= GOAL_OPENAI,
        ),
        Row(
            "2c. `DeepInfraClient.chat` alone vs raw httpx (diagnostic)",
            f"{rate['library']:,.0f} chunks/s",
            f"{rate['raw_httpx']:,.0f} chunks/s",
            f"{ratio['library/raw_httpx']:.3f}×",
            "— (splits 2a: library vs display)",
            None,
        ),
    ]
