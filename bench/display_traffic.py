"""4. Display traffic of a streamed reply at a realistic rate: messages and bytes.

The rate is 1 KB/s of reply text (≈ 250 tokens/s of 4-byte tokens; the fake server's
filler tokens average ~6 bytes, so it sends ~170 of them a second).

* 1 KB and 10 KB: the real ``%%deepinfra`` against the fake server streaming at that rate,
  through a publisher that serialises each message as a kernel does.
* 100 KB (100 s of streaming, too long for this run): the real ``ReplyView`` fed the
  same token sequence, with a virtual clock driving the real ``Throttle``/``LiveSection``
  code; the 10 KB reply is simulated too, at the rate its real run achieved, to check the
  simulation against the real run.

Counted: every display message of the reply (placeholder, updates, final update, footer),
the JSON bytes of their content, and the most messages in any one-second window.
"""

from __future__ import annotations

import bisect
import time
from typing import Any

from deepinfra_magic.display import ReplyView, reply_footer
from deepinfra_magic.types import ChatResult

from .common import (
    MODEL,
    Row,
    WirePublisher,
    configure_server,
    fake_server,
    filler_tokens,
    magic_shell,
    median,
)

BYTES_PER_SECOND = 1_000
UPDATE_INTERVAL = 0.1  # the magic's default DeepInfraMagics.update_interval
GOAL_RATE = 12.0
GOAL_BYTES_RATIO = 10.0
REAL_SIZES = {1_000: 3, 10_000: 2}  # reply bytes: runs
SIMULATED_SIZE = 100_000
CHECK_SIZE = 10_000  # simulated too, at the rate its real run achieved


def _token_delay() -> float:
    tokens = filler_tokens(100_000)
    return sum(len(token.encode()) for token in tokens) / len(tokens) / BYTES_PER_SECOND


def _peak_rate(times: list[float]) -> int:
    """The most messages within any one-second window (``times`` is in order)."""
    return max(bisect.bisect_left(times, start + 1.0) - i for i, start in enumerate(times))


def _moments(times: list[float]) -> list[float]:
    """Visible updates: messages sent within 5 ms of each other count once (freezing a
    part or ending the reply sends a few at once, and the page shows them together)."""
    moments: list[float] = []
    for time_ in times:
        if not moments or time_ - moments[-1] > 0.005:
            moments.append(time_)
    return moments


def _traffic(publisher: WirePublisher, text: str, seconds: float) -> dict[str, Any]:
    return {
        "messages": publisher.messages,
        "updates": publisher.updates,
        "bytes": publisher.total_bytes,
        "text_bytes": len(text.encode()),
        "bytes_ratio": publisher.total_bytes / len(text.encode()),
        "seconds": seconds,
        "mean_rate": publisher.messages / seconds,
        "peak_rate": _peak_rate(_moments(publisher.times)),
        "peak_messages_rate": _peak_rate(publisher.times),
    }


class _VirtualClock:
    """A clock that reads whatever time the simulation set."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _simulate(tokens: list[str], delay: float) -> dict[str, Any]:
    """Feed the real ReplyView the tokens one ``delay`` apart on a virtual clock."""
    clock = _VirtualClock()
    publisher = WirePublisher(clock=clock)
    view = ReplyView(publisher.publish, MODEL, UPDATE_INTERVAL, clock=clock)
    view.start()
    for index, token in enumerate(tokens):
        clock.now = index * delay
        view.add_answer(token)
    text = "".join(tokens)
    result = ChatResult(text, MODEL, finish_reason="stop", duration=clock.now)
    view.finish(reply_footer(result), result.metadata())
    return _traffic(publisher, text, max(clock.now, delay))


def _real(url: str, size: int, runs: int, delay: float) -> dict[str, Any]:
    """The median of ``runs`` real replies of ``size`` bytes at the benchmark's rate."""
    shell, magics, publisher = magic_shell(url)
    tokens = len(filler_tokens(size))
    configure_server(url, reply_tokens=tokens, token_delay=delay)
    samples = []
    for _ in range(runs):
        publisher.reset()
        started = time.perf_counter()
        shell.run_cell_magic("deepinfra", f"-m {MODEL} --new --max-tokens {tokens}", "Go on.")
        seconds = time.perf_counter() - started
        assert magics.last_response is not None
        samples.append(_traffic(publisher, magics.last_response.text, seconds))
    result: dict[str, Any] = {key: median([s[key] for s in samples]) for key in samples[0]}
    result["runs"] = samples
    return result


def _row(label: str, size: int, traffic: dict[str, Any], goal_bytes: bool) -> Row:
    rate_ok = traffic["peak_rate"] <= GOAL_RATE
    bytes_ok = traffic["bytes_ratio"] <= GOAL_BYTES_RATIO
    goal = f"≤ {GOAL_RATE:g} updates/s" + (f", ≤ {GOAL_BYTES_RATIO:g}× bytes" if goal_bytes else "")
    return Row(
        f"4. Display traffic, {size // 1000} KB reply ({label})",
        f"{traffic['messages']:.0f} msgs, peak {traffic['peak_rate']:.0f} updates/s "
        f"({traffic['peak_messages_rate']:.0f} msgs/s), "
        f"{traffic['bytes'] / 1000:,.1f} KB sent",
        f"{traffic['text_bytes'] / 1000:,.1f} KB final text",
        f"{traffic['bytes_ratio']:.1f}× bytes",
        goal,
        rate_ok and (bytes_ok or not goal_bytes),
        traffic,
    )


def measure() -> list[Row]:
    """Rows 4: real 1 KB and 10 KB replies, simulated 100 KB (and 10 KB to check)."""
    delay = _token_delay()
    with fake_server() as url:
        real = {size: _real(url, size, runs, delay) for size, runs in REAL_SIZES.items()}
    rows = [
        _row(f"real magic at {t['text_bytes'] / t['seconds'] / 1000:.2f} KB/s", size, t, False)
        for size, t in real.items()
    ]
    simulated = _simulate(filler_tokens(SIMULATED_SIZE), delay)
    rows.append(_row("real ReplyView, virtual clock at 1 KB/s", SIMULATED_SIZE, simulated, True))
    actual = real[CHECK_SIZE]
    tokens = filler_tokens(CHECK_SIZE)
    check = _simulate(tokens, actual["seconds"] / len(tokens))
    simulated["check"] = {"size": CHECK_SIZE, "simulated": check}
    rows[-1].note = (
        f"Updates per second = the most visible updates in any 1-s window (placeholder and "
        f"footer included; messages sent within 5 ms count once, msgs/s counts each); bytes = "
        f"JSON of each message's content. Check of the simulation: "
        f"the {CHECK_SIZE // 1000} KB reply simulated at its real rate gives "
        f"{check['messages']} msgs and {check['bytes_ratio']:.1f}× bytes, the real run "
        f"{actual['messages']:.0f} msgs and {actual['bytes_ratio']:.1f}× bytes."
    )
    return rows
