"""6. Memory: peak RSS added by streaming a 1 MB reply through ``%%deepinfra``.

Each sample is a fresh process (``python -m bench.memory MODE URL TOKENS``) that loads the
extension and streams a short warm-up reply (httpx imported, catalog fetched). Then it
resets the kernel's peak-RSS mark to the current RSS (``/proc/self/clear_refs``), streams
the 1 MB reply at full speed and reads the peak (``VmHWM``). ``markdown`` is the rich path
(display messages serialised as a kernel does, then dropped); ``text`` prints the reply to
a null stdout; ``baseline`` is the rich path with the old live view
(``bench.baseline_view``), measured the same way in the same run.

Linux only. ``getrusage().ru_maxrss`` is not used: it cannot be reset, so it would still
hold the peak of the imports, and a child started with vfork + exec (as ``subprocess``
does) inherits the parent's peak in it.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import subprocess
import sys
from typing import Any

from .common import MODEL, REPO_ROOT, Row, fake_server, filler_tokens, magic_shell, median

REPLY_BYTES = 1_000_000
MODES = ("markdown", "text", "baseline")
GOAL_TIMES_REPLY = 4.0
RUNS = 3


def _peak_rss() -> int:
    """This process's peak resident set size since the last reset, in bytes."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # kB
    raise RuntimeError("no VmHWM in /proc/self/status")


def _reset_peak() -> int:
    """Restart the peak-RSS mark from the current RSS; returns that RSS in bytes."""
    with open("/proc/self/clear_refs", "w", encoding="ascii") as clear_refs:
        clear_refs.write("5")
    return _peak_rss()


def child(mode: str, url: str, tokens: int) -> dict[str, Any]:
    """In the fresh process: the RSS baseline after warming up, and the peak after the reply."""
    shell, magics, _ = magic_shell(url)
    magics.display_mode = "markdown" if mode == "baseline" else mode
    if mode == "baseline":
        from .baseline_view import BaselineReplyView, swap_reply_view

        swap_reply_view(BaselineReplyView)
    line = f"-m {MODEL} --new --max-tokens "
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        shell.run_cell_magic("deepinfra", line + "50", "Warm up.")
        gc.collect()
        baseline = _reset_peak()
        shell.run_cell_magic("deepinfra", line + str(tokens), "Go on.")
        peak = _peak_rss()
    assert magics.last_response is not None
    return {
        "baseline_bytes": baseline,
        "peak_bytes": peak,
        "added_bytes": peak - baseline,
        "text_bytes": len(magics.last_response.text.encode()),
    }


def _sample(mode: str, url: str, tokens: int) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.memory", mode, url, str(tokens)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    sample: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return sample


def measure() -> list[Row]:
    """Rows 6: added peak RSS in rich (markdown) and text mode, per MB of reply."""
    tokens = len(filler_tokens(REPLY_BYTES))
    with fake_server(reply_tokens=tokens, token_delay=0) as url:
        samples = {mode: [_sample(mode, url, tokens) for _ in range(RUNS)] for mode in MODES}
    rows = []
    old = median([s["added_bytes"] for s in samples["baseline"]])
    for mode in MODES[:2]:
        added = median([s["added_bytes"] for s in samples[mode]])
        text = samples[mode][0]["text_bytes"]
        base = median([s["baseline_bytes"] for s in samples[mode]])
        rich = mode == "markdown"
        rows.append(
            Row(
                f"6. Peak RSS streaming a 1 MB reply, `display_mode = {mode}`",
                f"+{added / 2**20:.1f} MiB",
                f"{text / 2**20:.2f} MiB reply"
                + (f"; old view +{old / 2**20:.1f} MiB" if rich else ""),
                f"{added / text:.1f}× the reply",
                f"≤ {GOAL_TIMES_REPLY:g}× the reply (aim)" if rich else "— (report)",
                added / text <= GOAL_TIMES_REPLY if rich else None,
                {
                    "added_bytes": added,
                    "baseline_bytes": base,
                    "text_bytes": text,
                    "samples": samples[mode],
                    "old_view_added_bytes": old if rich else None,
                },
                f"Fresh process each, median of {RUNS}; baseline after import and a warm-up "
                f"reply: {base / 2**20:.0f} MiB.",
            )
        )
    return rows


if __name__ == "__main__":
    print(json.dumps(child(sys.argv[1], sys.argv[2], int(sys.argv[3]))))
