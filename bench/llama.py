"""7. A real OpenAI-compatible server: a 300-token reply from llama.cpp's server.

llama-cpp-python's server runs a tiny random-weight model (tests/llama), greedy, so every
path gets the same 300 tokens. Timed in interleaved rounds, in this process: wall time and
client CPU (``time.process_time``; the server is another process) of

* ours: ``DeepInfraClient.chat`` streaming, no key, base URL ``http://127.0.0.1:P/v1``;
* (a) raw httpx: ``iter_lines()`` and ``json.loads`` of each ``data:`` line;
* (b) the official ``openai`` SDK, ``stream=True``.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.llama.server import MODEL, running_server

from .common import Row, median, openai_reply, raw_httpx_reply

TOKENS = 300
ROUNDS = 15
MESSAGES = [{"role": "user", "content": "Tell me everything about rivers."}]
OPTIONS = {"max_tokens": TOKENS, "temperature": 0.0, "seed": 7}


def _raw_httpx(url: str) -> Callable[[], str]:
    body = {"model": MODEL, "messages": MESSAGES, "stream": True, **OPTIONS}
    return raw_httpx_reply(httpx.Client(base_url=url), "/chat/completions", body)


def _openai_sdk(url: str) -> Callable[[], str]:
    import openai

    client = openai.OpenAI(api_key="sk-no-key-required", base_url=url)
    return openai_reply(client, model=MODEL, messages=MESSAGES, **OPTIONS)


def _library(url: str) -> Callable[[], str]:
    from deepinfra_magic import ContentDelta, DeepInfraClient

    client = DeepInfraClient(base_url=url, catalog_disk_cache=False)

    def run() -> str:
        parts = []
        with client.chat(MESSAGES, MODEL, **OPTIONS) as stream:  # type: ignore[arg-type]
            for event in stream:
                if isinstance(event, ContentDelta):
                    parts.append(event.text)
        return "".join(parts)

    return run


def measure() -> list[Row]:
    """Rows 7a (vs raw httpx) and 7b (vs the openai SDK)."""
    with tempfile.TemporaryDirectory(prefix="deepinfra-bench-llama-") as scratch:
        with running_server(Path(scratch)) as server:
            paths = {
                "library": _library(server.url),
                "raw_httpx": _raw_httpx(server.url),
                "openai": _openai_sdk(server.url),
            }
            seconds: dict[str, list[float]] = {name: [] for name in paths}
            cpu: dict[str, list[float]] = {name: [] for name in paths}
            texts: dict[str, str] = {}
            for round_ in range(ROUNDS + 1):  # round 0 warms up imports and connections
                for name, run in paths.items():
                    started, cpu_started = time.perf_counter(), time.process_time()
                    texts[name] = run()
                    elapsed = time.perf_counter() - started
                    cpu_used = time.process_time() - cpu_started
                    if round_:
                        seconds[name].append(elapsed)
                        cpu[name].append(cpu_used)
    if len(set(texts.values())) != 1 or not texts["library"]:
        raise RuntimeError("the three clients decoded different replies")
    wall_ms = {name: median(values) * 1e3 for name, values in seconds.items()}
    cpu_ms = {name: median(values) * 1e3 for name, values in cpu.items()}
    ratios = {
        theirs: median([a / b for a, b in zip(seconds["library"], seconds[theirs], strict=True)])
        for theirs in ("raw_httpx", "openai")
    }
    data = {"tokens": TOKENS, "rounds": ROUNDS, "wall_ms": wall_ms, "client_cpu_ms": cpu_ms}
    data |= {"paired_wall_ratios": ratios, "seconds": seconds, "cpu_seconds": cpu}
    note = (
        f"llama-cpp-python's server on a tiny random model, {TOKENS} greedy tokens; medians of "
        f"{ROUNDS} interleaved rounds, ratios: medians of the per-round ratios (wall time, "
        f"lower is faster). Client CPU per reply: ours {cpu_ms['library']:.1f} ms, raw httpx "
        f"{cpu_ms['raw_httpx']:.1f} ms, openai {cpu_ms['openai']:.1f} ms."
    )
    return [
        Row(
            f"7a. Real llama.cpp server, {TOKENS}-token reply: `DeepInfraClient.chat` vs raw httpx",
            f"{wall_ms['library']:.1f} ms, CPU {cpu_ms['library']:.1f} ms",
            f"{wall_ms['raw_httpx']:.1f} ms, CPU {cpu_ms['raw_httpx']:.1f} ms "
            "(httpx iter_lines + json)",
            f"{ratios['raw_httpx']:.2f}× time",
            "— (report)",
            None,
            data,
            note,
        ),
        Row(
            f"7b. Real llama.cpp server, {TOKENS}-token reply: vs openai SDK",
            f"{wall_ms['library']:.1f} ms, CPU {cpu_ms['library']:.1f} ms",
            f"{wall_ms['openai']:.1f} ms, CPU {cpu_ms['openai']:.1f} ms (openai, stream=True)",
            f"{ratios['openai']:.2f}× time",
            "— (report)",
            None,
        ),
    ]
