"""Run every benchmark and print a Markdown table: ``python -m bench.run`` (repo root).

Each figure is compared with a baseline measured in the same run. The table and the
machine description go to stdout, progress to stderr, and everything (with the raw
samples) to ``bench/results/latest.json``.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .common import REPO_ROOT, Row, isolated_environment

BENCHMARKS = (
    "load",
    "throughput",
    "ttft",
    "display_traffic",
    "images",
    "memory",
    "llama",
    "provider",
    "map",
    "typed_map",
    "streaming",
    "browser",
    "lite",
)
DEFAULT_OUTPUT = REPO_ROOT / "bench" / "results" / "latest.json"
# The repeat counts of the benchmark modules that ``--quick`` sets to one.
_REPEATS = ("ROUNDS", "RUNS", "PAIRED_RUNS", "THEIR_RUNS", "SAMPLES")
_PACKAGES = (
    "deepinfra-magic",
    "ipython",
    "httpx",
    "openai",
    "jupyter-ai-magics",
    "llama-cpp-python",
    "g4f",
)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _commit() -> str:
    try:
        done = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return done.stdout.strip()


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": affinity,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {package: _version(package) for package in _PACKAGES},
        "commit": _commit(),
    }


def _mark(met: bool | None) -> str:
    return "—" if met is None else ("✅ yes" if met else "❌ no")


def table(rows: list[Row]) -> str:
    """The results as a Markdown table, notes as a list under it."""
    lines = [
        "| Benchmark | Ours | Baseline | Ratio | Goal | Met? |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r.benchmark} | {r.ours} | {r.baseline} | {r.ratio} | {r.goal} | {_mark(r.met)} |"
        for r in rows
    ]
    # dict.fromkeys: rows of one benchmark often share a note; print it once.
    notes = list(
        dict.fromkeys(f"- {r.benchmark.split(' ', 1)[0]} {r.note}" for r in rows if r.note)
    )
    return "\n".join([*lines, "", *notes] if notes else lines)


def describe(info: dict[str, Any], seconds: float) -> str:
    """The machine in one Markdown paragraph."""
    versions = ", ".join(f"{name} {version}" for name, version in info["versions"].items())
    return (
        f"Machine: {info['cpu']}, {info['cores']} cores ({info['usable_cores']} usable), "
        f"{info['platform']}; Python {info['python']}; {versions}; commit {info['commit']}. "
        f"Whole run: {seconds:.0f} s."
    )


def _quick(module: Any) -> None:
    """One repetition of everything ``module`` repeats (its notes then say so too)."""
    for name in _REPEATS:
        if isinstance(getattr(module, name, None), int):
            setattr(module, name, 1)


def main(argv: list[str] | None = None) -> None:
    """Run the benchmarks, print the table and write the JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, help="run just these")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON results file")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="one round of each measurement: proves every row runs; its figures mean little",
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    rows: list[Row] = []
    timings: dict[str, float] = {}
    with isolated_environment():
        for name in args.only or BENCHMARKS:
            print(f"running {name}…", file=sys.stderr, flush=True)
            begun = time.perf_counter()
            module = importlib.import_module(f"bench.{name}")
            if args.quick:
                _quick(module)
            rows += module.measure()
            timings[name] = time.perf_counter() - begun
            print(f"  {name}: {timings[name]:.1f} s", file=sys.stderr, flush=True)
    seconds = time.perf_counter() - started
    info = machine()
    markdown = f"{table(rows)}\n\n{describe(info, seconds)}"
    if args.quick:
        markdown += " Quick run (`--quick`): one round of each, so the figures are rough."
    print(markdown)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "markdown": markdown,
        "machine": info,
        "seconds": seconds,
        "quick": args.quick,
        "benchmark_seconds": timings,
        "rows": [asdict(row) for row in rows],
    }
    args.output.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"\nresults written to {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
