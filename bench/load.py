"""1. Extension load: ``%load_ext`` time over a bare IPython start, in fresh processes,
and against commit 6e0e0bf measured in the same run (row 1c).

Each sample is a new ``python -c`` that starts an ``InteractiveShell`` and then times
``run_line_magic("load_ext", ...)``. It also reports whether httpx got imported and counts
socket connects and DNS lookups (an audit hook) while loading; with ``DEEPINFRA_BASE_URL``
pointed at the fake server, the server's request log must stay empty too.

Row 1c extracts the package as it was at 6e0e0bf (``git archive``) into a temporary
directory and alternates fresh processes loading ours and that one, so both see the same
machine load; the goal is a ratio of at most 1 (issue 19, item 7). The ratio is of the
loads' CPU time, which other processes on a shared machine disturb far less than the
wall-clock time (reported beside it).

Each child says where the package it loaded lives, and a sample loaded from another tree
(an editable install elsewhere) stops the run. The sandbox may set
PYTHONDONTWRITEBYTECODE; the children run without it after an untimed warm-up, so
modules load from cached bytecode as on a user's machine.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .common import REPO_ROOT, Row, fake_server, median, server_log

OURS = "deepinfra_magic"
THEIRS = "jupyter_ai_magics"
GOAL_MS = 30.0
RUNS = 7
THEIR_RUNS = 5  # a second each
BASE_COMMIT = "6e0e0bf"  # before the magics grew heavier (issue 19, item 7)
PAIRED_RUNS = 21  # ours and 6e0e0bf's, alternated

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
ready, ready_cpu = time.perf_counter(), time.process_time()
modules, before = set(sys.modules), len(network)
shell.run_line_magic("load_ext", sys.argv[1])
loaded, loaded_cpu = time.perf_counter(), time.process_time()
print(json.dumps({
    "ipython_start_ms": (ready - started) * 1e3,
    "load_ms": (loaded - ready) * 1e3,
    "load_cpu_ms": (loaded_cpu - ready_cpu) * 1e3,
    "httpx_imported": "httpx" in sys.modules,
    "modules_added": len(set(sys.modules) - modules),
    "network_events": len(network) - before,
    "package_file": sys.modules[sys.argv[1]].__file__,
}))
"""


def _child_env(base_url: str) -> dict[str, str]:
    env = dict(os.environ, DEEPINFRA_BASE_URL=f"{base_url}/v1/openai")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _sample(extension: str, env: dict[str, str], tree: Path = REPO_ROOT) -> dict[str, Any]:
    """One fresh process loading ``extension`` from the package found in ``tree``."""
    env = dict(env, PYTHONPATH=os.pathsep.join(filter(None, [str(tree), env.get("PYTHONPATH")])))
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, extension],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    sample: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    # Another copy of the package (an editable install elsewhere) must not stand in.
    if extension == OURS and not Path(sample["package_file"]).resolve().is_relative_to(
        tree.resolve()
    ):
        raise RuntimeError(f"{OURS} loaded from {sample['package_file']}, not from {tree}")
    return sample


def _samples(extension: str, env: dict[str, str], runs: int) -> list[dict[str, Any]]:
    _sample(extension, env)  # warm-up: bytecode written, IPython profile created
    return [_sample(extension, env) for _ in range(runs)]


@contextmanager
def _base_tree() -> Iterator[Path | None]:
    """The package as it was at :data:`BASE_COMMIT`, in a temporary directory (None
    outside a git checkout that has the commit)."""
    try:
        archive = subprocess.run(
            ["git", "archive", "--format=tar", BASE_COMMIT, OURS],
            cwd=REPO_ROOT,
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="deepinfra-base-") as directory:
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(directory, filter="data")
        yield Path(directory)


def _paired(env: dict[str, str], base: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Fresh loads of ours and of 6e0e0bf's, alternated (after one untimed warm-up each)."""
    _sample(OURS, env)
    _sample(OURS, env, base)
    ours, theirs = [], []
    for _ in range(PAIRED_RUNS):
        ours.append(_sample(OURS, env))
        theirs.append(_sample(OURS, env, base))
    return ours, theirs


def _against_base(paired: tuple[list[dict[str, Any]], list[dict[str, Any]]] | None) -> Row:
    """Row 1c: our ``%load_ext`` against 6e0e0bf's, measured in the same run."""
    title = f"1c. `%load_ext deepinfra_magic` against {BASE_COMMIT} (same run)"
    if paired is None:
        return Row(title, "—", "skipped", "—", "≤ 1.00×", None, note="no git checkout here.")
    ours, base = paired
    cpu, base_cpu = (median([s["load_cpu_ms"] for s in runs]) for runs in (ours, base))
    wall, base_wall = (median([s["load_ms"] for s in runs]) for runs in (ours, base))
    modules, base_modules = (median([s["modules_added"] for s in runs]) for runs in (ours, base))
    return Row(
        title,
        f"{cpu:.1f} ms CPU",
        f"{base_cpu:.1f} ms CPU ({BASE_COMMIT})",
        f"{cpu / base_cpu:.2f}×",
        f"≤ 1.00× (no heavier than {BASE_COMMIT})",
        cpu <= base_cpu,
        {
            "load_cpu_ms": cpu,
            "base_load_cpu_ms": base_cpu,
            "load_ms": wall,
            "base_load_ms": base_wall,
            "samples": ours,
            "base_samples": base,
        },
        f"{len(ours)} alternated loads each (medians); wall clock {wall:.1f} ms against "
        f"{base_wall:.1f} ms ({wall / base_wall:.2f}×); {modules:.0f} modules added against "
        f"{base_modules:.0f} at {BASE_COMMIT}.",
    )


def measure() -> list[Row]:
    """Rows 1a (our load vs a bare IPython start), 1b (vs jupyter_ai_magics) and 1c (vs
    6e0e0bf, alternated in the same run)."""
    with fake_server() as url, _base_tree() as base:
        env = _child_env(url)
        ours = _samples(OURS, env, RUNS)
        paired = _paired(env, base) if base is not None else None
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
        return [*rows, _against_base(paired)]
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
    return [*rows, _against_base(paired)]
