"""The main job: run examples/quickstart.ipynb end to end, headless, with no key and no
network, replaying the shipped recording; write the executed notebook and an HTML export
that reads right with no network (template ``scripts/nbconvert/offline``: nothing from a
CDN, images with their alt text).

    python scripts/run_quickstart.py [--out build] [--real-time]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbconvert import HTMLExporter

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "examples" / "quickstart.ipynb"
RECORDING = ROOT / "examples" / "quickstart.recording.json"
TEMPLATES = ROOT / "scripts" / "nbconvert"


def offline_html(notebook: nbformat.NotebookNode) -> str:
    """The notebook as HTML that fetches nothing: nbconvert's lab look, no CDN scripts."""
    exporter = HTMLExporter(extra_template_basedirs=[str(TEMPLATES)], template_name="offline")
    html, _ = exporter.from_notebook_node(notebook)
    return html


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the quickstart notebook from its recording.")
    parser.add_argument("--out", type=Path, default=ROOT / "build", help="output folder")
    parser.add_argument(
        "--real-time", action="store_true", help="replay at the recorded pace (default: instant)"
    )
    args = parser.parse_args(argv)

    # Replay regardless of any key in the environment: the main job never goes online.
    for name in ("DEEPINFRA_API_KEY", "DEEPINFRA_API_TOKEN", "DEEPINFRA_BASE_URL"):
        os.environ.pop(name, None)
    os.environ["DEEPINFRA_MAGIC_REPLAY"] = str(RECORDING)
    os.environ["DEEPINFRA_MAGIC_REPLAY_SPEED"] = "1" if args.real_time else "0"

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    started = time.perf_counter()
    client = NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    client.execute()
    elapsed = time.perf_counter() - started

    args.out.mkdir(parents=True, exist_ok=True)
    executed = args.out / "quickstart.ipynb"
    nbformat.write(notebook, executed)
    page = args.out / "quickstart.html"
    page.write_text(offline_html(notebook), encoding="utf-8")

    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    errors = sum(o.get("output_type") == "error" for o in outputs)
    images = sum(any(k.startswith("image/") for k in o.get("data", {})) for o in outputs)
    print(f"Ran {NOTEBOOK.relative_to(ROOT)} in {elapsed:.1f} s from {RECORDING.name}:")
    print(f"  {len(outputs)} outputs, {images} image(s), {errors} error(s); no key, no network.")
    print(f"  Executed notebook: {executed}")
    print(f"  HTML export:       {page} (reads right offline)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
