"""1. Extension load: ``%load_ext`` time over a bare IPython start, in fresh processes.

Each sample is a new ``python -c`` that starts an ``InteractiveShell`` and then times
``run_line_magic("load_ext", ...)``. It also reports whether httpx got imported and counts
socket connects and DNS lookups (an audit hook) while loading; with ``DEEPINFRA_BASE_URL``
pointed at the fake server, the server's request log must stay empty too.

The sandbox may set PYTHONDONTWRITEBYTECODE; the children run without it after an
untimed warm-up, so modules load from cached bytecode as on a user's machine.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from typing import Any

from .common import REPO_ROOT, Row, fake_server, median, server_log

OURS = "deepinfra_magic"
THEIRS = "jupyter_ai_magics"
GOAL_MS = 30.0
RUNS = 7
THEIR_RUNS = 5  # a second each

_CHILD = """
import json, sys, time
network = []
sys.addaudithook(
    lambda event, args: network.append(event)
    if event in ("socket.connect", "socket.getaddrinfo") else None
)
started = time.perf_counter()
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
ready = time.perf_counter()
modules, before = set(sys.modules), len(network)
shell.run_line_magic("load_ext", sys.argv[1])
loaded = time.perf_counter()
print(json.dumps({
    "ipython_start_ms": (ready - started) * 1e3,
    "load_ms": (loaded - ready) * 1e3,
    "httpx_imported": "httpx" in sys.modules,
    "modules_added": len(set(sys.modules) - modules),
    "network_events": len(network) - before,
}))
"""


def _child_env(base_url: str) -> dict[str, str]:
    env = dict(os.environ, DEEPINFRA_BASE_URL=f"{base_url}/v1/openai")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _sample(extension: str, env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, extension],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    sample: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return sample


def _samples(extension: str, env: dict[str, str], runs: int) -> list[dict[str, Any]]:
    _sample(extension, env)  # warm-up: bytecode written, IPython profile created
    return [_sample(extension, env) for _ in range(runs)]


def measure() -> list[Row]:
    """Rows 1a (our load vs a bare IPython start) and 1b (vs jupyter_ai_magics)."""
    with fake_server() as url:
        env = _child_env(url)
        ours = _samples(OURS, env, RUNS)
        requests = len(server_log(url)["requests"])
        theirs = _samples(THEIRS, env, THEIR_RUNS) if importlib.util.find_spec(THEIRS) else None
    load = median([s["load_ms"] for s in ours])
    bare = median([s["ipython_start_ms"] for s in ours])
    httpx = any(s["httpx_imported"] for s in ours)
    network = sum(s["network_events"] for s in ours)
    quiet = requests == 0 and network == 0
    rows = [
        Row(
            "1a. `%load_ext deepinfra_magic`, added to IPython start",
            f"{load:.1f} ms",
            f"{bare:.0f} ms (bare IPython start)",
            f"{load / bare:.2f}×",
            f"≤ {GOAL_MS:g} ms added, no network",
            load <= GOAL_MS and quiet,
            {
                "load_ms": load,
                "ipython_start_ms": bare,
                "requests": requests,
                "network_events": network,
                "httpx_imported": httpx,
                "samples": ours,
            },
            f"httpx imported: {'yes' if httpx else 'no'}; "
            f"{median([s['modules_added'] for s in ours]):.0f} modules added; "
            f"{requests} requests at the fake server and {network} socket connects or DNS "
            f"lookups in {len(ours)} loads.",
        )
    ]
    if theirs is None:
        rows.append(
            Row(
                f"1b. `%load_ext {THEIRS}` (comparison)",
                f"{load:.1f} ms",
                "skipped",
                "—",
                "— (comparison)",
                None,
                note=f"{THEIRS} is not installed: `pip install -e .[bench]` adds it.",
            )
        )
        return rows
    their_load = median([s["load_ms"] for s in theirs])
    rows.append(
        Row(
            f"1b. `%load_ext {THEIRS}` (comparison)",
            f"{load:.1f} ms",
            f"{their_load:.0f} ms ({THEIRS})",
            f"{load / their_load:.3f}×",
            "— (comparison)",
            None,
            {"load_ms": their_load, "samples": theirs},
            f"{THEIRS} adds {median([s['modules_added'] for s in theirs]):.0f} modules; "
            f"httpx imported: {'yes' if any(s['httpx_imported'] for s in theirs) else 'no'}.",
        )
    )
    return rows
