"""10. Live streaming in a real kernel: gaps between visible updates, their rate and traffic.

A kernel (ipykernel, over ZMQ) runs ``%%deepinfra`` against the fake server, which streams
a scripted reply at a set rate. Every display message's send time (its header date) and
JSON size are read from IOPub. Both designs run in the same kernel, one after the other:
the current view, and the old one (``bench.baseline_view``: the interval grows with the
live segment, freezing only at paragraph breaks). Replies: ``mixed`` (prose, a 300-line
code block, a table) and ``run-on`` (no line break at all).

* A visible update is a moment when the view changes: display messages sent within 5 ms
  of each other count once (a freeze or a merge sends a few at once).
* Gaps are between visible updates while the reply streams (first text to finished
  reply); updates a second = the most in any 1-s window.
* Bytes = JSON of every display message's content (placeholder, updates, the finished
  reply, footer, emptied outputs) over the UTF-8 size of the reply.

64 KB at 100 tokens/s would take 2 to 3 minutes per run, so that case (and 1 MB, for the
traffic) runs the real views on a virtual clock, fed the same tokens at the same pace.
"""

from __future__ import annotations

import bisect
import itertools
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepinfra_magic.display import ReplyView, reply_footer
from deepinfra_magic.types import ChatResult
from tests.fake_deepinfra import tokenize
from tests.kernel_helpers import collect

from .baseline_view import BaselineReplyView
from .common import API_KEY, MODEL, REPO_ROOT, Row, _control, configure_server, fake_server
from .replies import mixed_reply, run_on_reply

REPLIES: dict[str, Callable[[int], str]] = {"mixed": mixed_reply, "run-on": run_on_reply}
DESIGNS = {
    "new": "deepinfra_magic.display.reply.ReplyView",
    "old": "bench.baseline_view.BaselineReplyView",
}
REAL = [(16_000, 1000), (64_000, 1000), (16_000, 100)]  # (reply bytes, tokens a second)
SIMULATED = [(64_000, 100)]
TRAFFIC_ONLY = (1_000_000, 1000)
SAME_MOMENT = 0.005
GOAL_GAP = 0.25
GOAL_RATE = 12
GOAL_BYTES = 10.0


@dataclass
class Message:
    """One display message: when it was sent, its size, and whether it shows anything."""

    time: float
    size: int
    visible: bool
    final: bool  # shows the end of the reply (the last such one ends the stream)


def metrics(messages: list[Message]) -> dict[str, Any]:
    """Gaps, rate and traffic of one reply's display messages (see the module notes)."""
    first = next(i for i, m in enumerate(messages) if m.visible and i > 0)  # after placeholder
    last = max(i for i, m in enumerate(messages) if m.final)
    moments: list[float] = []
    for message in messages[first : last + 1]:
        if message.visible and (not moments or message.time - moments[-1] > SAME_MOMENT):
            moments.append(message.time)
    gaps = sorted(b - a for a, b in itertools.pairwise(moments)) or [0.0]
    times = [m.time for m in messages]
    return {
        "longest_gap": gaps[-1],
        "p90_gap": gaps[int(0.9 * (len(gaps) - 1))],
        "updates": len(moments),
        "peak_updates_per_s": max(
            bisect.bisect_left(moments, start + 1.0) - i for i, start in enumerate(moments)
        ),
        "peak_messages_per_s": max(
            bisect.bisect_left(times, start + 1.0) - i for i, start in enumerate(times)
        ),
        "messages": len(messages),
        "bytes": sum(m.size for m in messages),
        "seconds": moments[-1] - moments[0],
    }


def _size(content: dict[str, Any]) -> int:
    fields = {k: content.get(k) or {} for k in ("data", "metadata", "transient")}
    return len(json.dumps(fields, ensure_ascii=False).encode())


# --- the real kernel -----------------------------------------------------------------------------


@contextmanager
def _kernel(url: str) -> Iterator[Any]:
    """An ipykernel with the extension loaded, pointed at the fake server."""
    from jupyter_client.manager import KernelManager

    with tempfile.TemporaryDirectory(prefix="deepinfra-bench-kernel-") as scratch:
        env = dict(os.environ)
        env.update(
            DEEPINFRA_API_KEY=API_KEY,
            DEEPINFRA_BASE_URL=f"{url}/v1/openai",  # the fake server stands in for DeepInfra
            IPYTHONDIR=str(Path(scratch, "ipython")),
            XDG_CACHE_HOME=str(Path(scratch, "cache")),
            PYTHONPATH=str(REPO_ROOT),
        )
        manager = KernelManager(kernel_name="python3")
        manager.start_kernel(env=env, cwd=str(REPO_ROOT))
        client = manager.client()
        client.start_channels()
        try:
            client.wait_for_ready(timeout=60)
            _run(client, "%load_ext deepinfra_magic")
            _run(client, "%deepinfra_models")  # the catalog, outside the measured cells
            yield client
        finally:
            client.stop_channels()
            manager.shutdown_kernel(now=True)


def _run(kc: Any, code: str) -> list[dict[str, Any]]:
    execution = collect(kc, kc.execute(code, allow_stdin=False), timeout=600)
    assert execution.error is None, execution.error
    return execution.messages


def _calibrate(kc: Any, url: str) -> float:
    """Seconds the fake server and the kernel add to each token beyond its delay, measured
    on a short reply (so that the runs come close to the rates asked for)."""
    text = mixed_reply(4_000)
    delay = 0.001
    measured = _real(kc, url, "new", text, 1 / delay)
    return max(0.0, 1 / measured["rate"] - delay)


def _real(
    kc: Any, url: str, design: str, text: str, rate: float, overhead: float = 0.0
) -> dict[str, Any]:
    module, _, name = DESIGNS[design].rpartition(".")
    # The chat magic builds its view with display.reply_view when a cell runs: swap the
    # class it uses (bench.baseline_view.swap_reply_view), keeping the package's own view
    # to put back.
    _run(kc, f"import bench.baseline_view as bench_view, {module}")
    _run(kc, "bench_view.__dict__.setdefault('PACKAGE_VIEW', " + DESIGNS["new"] + ")")
    view = "bench_view.PACKAGE_VIEW" if design == "new" else f"{module}.{name}"
    _run(kc, f"bench_view.swap_reply_view({view})")
    configure_server(url, token_delay=max(0.0, 1 / rate - overhead))
    _control(url, "POST", "script", {"text": text})
    cell = f"%%deepinfra --new -m {MODEL} --max-tokens 1000000\nGo on."
    messages = _messages(_run(kc, cell), text)
    assert any(m.final for m in messages), "the reply did not end with the scripted text"
    result = metrics(messages)
    result["rate"] = len(tokenize(text)) / result["seconds"]
    return result


def _messages(iopub: list[dict[str, Any]], text: str) -> list[Message]:
    """The display messages of one reply of ``text``, from its IOPub messages."""
    messages = []
    for message in iopub:
        kind = message["msg_type"]
        if kind not in ("display_data", "update_display_data"):
            continue
        content = message["content"]
        data = content["data"]
        shown = str(data.get("text/plain", data.get("text/markdown", "")))
        messages.append(
            Message(
                message["header"]["date"].timestamp(),
                _size(content),
                bool(data),
                shown.endswith(text[-40:]),
            )
        )
    return messages


# --- the virtual clock ---------------------------------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def simulate(design: str, text: str, rate: int) -> dict[str, Any]:
    """The real view fed the fake server's tokens of ``text``, ``rate`` a second, on a
    virtual clock, publishing into a recorder that sizes each message as the kernel would."""
    clock = _Clock()
    messages: list[Message] = []

    def publish(
        data: dict[str, Any],
        metadata: dict[str, Any] | None = None,
        *,
        transient: dict[str, Any] | None = None,
        update: bool = False,
    ) -> None:
        content = {"data": data, "metadata": metadata or {}, "transient": transient or {}}
        shown = data.get("text/plain", data.get("text/markdown", ""))
        messages.append(Message(clock.now, _size(content), bool(data), shown.endswith(text[-40:])))

    view_class = ReplyView if design == "new" else BaselineReplyView
    view = view_class(publish, MODEL, 0.1, clock=clock)
    view.start()
    for index, token in enumerate(tokenize(text)):
        clock.now = (index + 1) / rate
        view.add_answer(token)
    result = ChatResult(text, MODEL, finish_reason="stop", duration=clock.now)
    view.finish(reply_footer(result), result.metadata(), text=text)
    measured = metrics(messages)
    measured["rate"] = rate
    return measured


# --- rows ----------------------------------------------------------------------------------------


def _describe(m: dict[str, Any], text_bytes: int) -> str:
    return (
        f"longest gap {m['longest_gap']:.2f} s, p90 {m['p90_gap']:.2f} s, "
        f"{m['peak_updates_per_s']}/s, {m['bytes'] / text_bytes:.1f}× bytes"
    )


def _row(label: str, new: dict[str, Any], old: dict[str, Any], text_bytes: int) -> Row:
    met = (
        new["longest_gap"] <= GOAL_GAP
        and new["peak_updates_per_s"] <= GOAL_RATE
        and new["bytes"] / text_bytes <= GOAL_BYTES
    )
    return Row(
        f"10. Live reply, {label}",
        _describe(new, text_bytes),
        "old: " + _describe(old, text_bytes),
        f"{new['longest_gap'] / old['longest_gap']:.2f}× longest gap",
        f"gap ≤ {GOAL_GAP} s, ≤ {GOAL_RATE} updates/s, ≤ {GOAL_BYTES:g}× bytes",
        met,
        {"new": new, "old": old, "text_bytes": text_bytes},
        "A visible update = display messages sent within 5 ms of each other; gaps while "
        "the reply streams; updates/s = the most in any 1-s window; bytes = JSON of every "
        "display message over the reply's UTF-8 size. Old = the design before this one, run "
        "the same way in the same run. 64 KB at 100 tok/s and 1 MB: the real views on a "
        "virtual clock (a real run would take minutes).",
    )


def measure() -> list[Row]:
    """Rows 10: both designs, both replies, real kernel and virtual clock."""
    rows = []
    with fake_server() as url, _kernel(url) as kc:
        overhead = _calibrate(kc, url)
        for size, rate in REAL:
            for kind, make in REPLIES.items():
                text = make(size)
                runs = {d: _real(kc, url, d, text, rate, overhead) for d in DESIGNS}
                label = f"{size // 1000} KB {kind} at {runs['new']['rate']:,.0f} tok/s (kernel)"
                rows.append(_row(label, runs["new"], runs["old"], len(text.encode())))
    for size, rate in SIMULATED:
        for kind, make in REPLIES.items():
            text = make(size)
            runs = {d: simulate(d, text, rate) for d in DESIGNS}
            label = f"{size // 1000} KB {kind} at {rate:,} tok/s (virtual clock)"
            rows.append(_row(label, runs["new"], runs["old"], len(text.encode())))
    size, rate = TRAFFIC_ONLY
    text = mixed_reply(size)
    runs = {d: simulate(d, text, rate) for d in DESIGNS}
    rows.append(
        _row(
            f"1 MB mixed at {rate:,} tok/s (virtual clock)",
            runs["new"],
            runs["old"],
            len(text.encode()),
        )
    )
    return rows
