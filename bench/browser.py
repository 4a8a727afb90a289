"""11. The browser's cost of a streamed reply: JupyterLab in headless Chromium (Playwright).

The 16 KB and 64 KB ``mixed`` replies stream from the fake server into a notebook, once
through ``%%deepinfra`` and once through the baseline: a cell that updates a Markdown
display with the whole text on every token (the naive way). While each streams, the page
records the main thread's long tasks (``PerformanceObserver``, type ``longtask``: tasks
over 50 ms), the longest time between two animation frames, and the main thread's whole
task time (DevTools ``Performance.getMetrics``: JupyterLab handles each message in a
short task, so a flood of updates keeps the thread busy without any long task). The
server's IOPub data rate limit is lifted so that the baseline's traffic is not dropped.

Needs Chromium (``/usr/bin/chromium`` or ``$DEEPINFRA_MAGIC_CHROMIUM``) and Playwright
(the test extra); without them the rows say so.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from tests.browser.jupyterlab import (
    CHROMIUM_ARGS,
    NotebookRunError,
    chromium_executable,
    open_notebook,
    start_jupyterlab,
    wait_for_kernel_idle,
    wait_for_output,
)

from .common import API_KEY, MODEL, Row, _control, configure_server, fake_server
from .replies import mixed_reply

SIZES = (16_000, 64_000)
RATE = 400  # tokens a second, the pace of the report that started this work
MARKER = "END-OF-THE-REPLY."
TIMEOUT_MS = 180_000

_PERF_JS = r"""
(() => {
  if (window.__benchPerf) { return; }
  const state = { tasks: [], longestFrame: 0, last: 0, running: false, started: 0 };
  new PerformanceObserver((list) => {
    if (state.running) { for (const e of list.getEntries()) { state.tasks.push(e.duration); } }
  }).observe({ type: 'longtask' });
  const frame = (t) => {
    if (state.running) {
      if (state.last) { state.longestFrame = Math.max(state.longestFrame, t - state.last); }
      state.last = t;
    }
    requestAnimationFrame(frame);
  };
  requestAnimationFrame(frame);
  state.start = () => {
    Object.assign(state, { tasks: [], longestFrame: 0, last: 0, running: true });
    state.started = performance.now();
  };
  state.stop = () => {
    state.running = false;
    return {
      long_tasks_ms: state.tasks.reduce((a, b) => a + b, 0),
      long_tasks: state.tasks.length,
      longest_frame_ms: state.longestFrame,
      seconds: (performance.now() - state.started) / 1000,
    };
  };
  window.__benchPerf = state;
})();
"""

SETUP = f"""%load_ext deepinfra_magic
from IPython.display import Markdown, display
from deepinfra_magic import ContentDelta, DeepInfraClient
client = DeepInfraClient()
def every_token():
    handle, shown = display(Markdown(""), display_id=True), ""
    with client.chat([{{"role": "user", "content": "Go"}}], "{MODEL}") as stream:
        for event in stream:
            if isinstance(event, ContentDelta):
                shown += event.text
                handle.update(Markdown(shown))
print("ready")
"""
DESIGNS = {
    "ours": f"%%deepinfra --new -m {MODEL} --max-tokens 1000000\nGo",
    "every token": "every_token()",
}
BASELINE_CAP_MS = 60_000  # the baseline falls ever further behind: measure a minute at most


def _notebook(path: Path) -> None:
    sources = [SETUP] + [DESIGNS[d] for _ in SIZES for d in DESIGNS]
    cells = [
        {
            "cell_type": "code",
            "id": f"c{i}",
            "metadata": {},
            "execution_count": None,
            "outputs": [],
            "source": s,
        }
        for i, s in enumerate(sources)
    ]
    kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    body = {"cells": cells, "metadata": {"kernelspec": kernelspec}, "nbformat": 4}
    path.write_text(json.dumps({**body, "nbformat_minor": 5}), encoding="utf-8")


def _busy_seconds(cdp: Any) -> float:
    """The renderer main thread's total task time so far (Chrome DevTools ``TaskDuration``)."""
    metrics = cdp.send("Performance.getMetrics")["metrics"]
    return float(next(m["value"] for m in metrics if m["name"] == "TaskDuration"))


def _run_cell(page: Any, index: int, marker: str, timeout_ms: int) -> dict[str, Any]:
    """Run one cell (select it, Shift+Enter) and measure until ``marker`` is shown, or
    until ``timeout_ms`` (then ``finished`` is False: the figures are a lower bound)."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("Performance.enable")
    busy = _busy_seconds(cdp)
    page.evaluate("() => window.__benchPerf.start()")
    cell = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell").nth(index)
    cell.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Shift+Enter")
    finished = True
    try:
        wait_for_output(page, index, text=marker, timeout_ms=timeout_ms)
    except NotebookRunError:
        finished = False
    result: dict[str, Any] = page.evaluate("() => window.__benchPerf.stop()")
    result["busy_ms"] = (_busy_seconds(cdp) - busy) * 1000
    result["shown_chars"] = page.evaluate(
        "(i) => window.__labRecorder.outputText(window.__labRecorder.cell(i)).length", index
    )
    result["finished"] = finished
    cdp.detach()
    return result


def _measure_all(chromium: Path) -> dict[tuple[int, str], dict[str, Any]]:
    """Each design at each size: the page's figures, and how much of the reply it showed."""
    from playwright.sync_api import sync_playwright

    results: dict[tuple[int, str], dict[str, Any]] = {}
    with fake_server() as url, tempfile.TemporaryDirectory(prefix="bench-lab-") as scratch:
        base = Path(scratch)
        config = base / "jupyter-config"
        config.mkdir(parents=True)
        limits = {"ServerApp": {"iopub_data_rate_limit": 1e12, "iopub_msg_rate_limit": 1e9}}
        (config / "jupyter_server_config.json").write_text(json.dumps(limits))
        env = {"DEEPINFRA_BASE_URL": f"{url}/v1/openai", "DEEPINFRA_API_KEY": API_KEY}
        lab = start_jupyterlab(base, env)
        try:
            notebook = base / "bench.ipynb"
            _notebook(notebook)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=str(chromium), headless=True, args=list(CHROMIUM_ARGS)
                )
                page = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
                page.add_init_script(_PERF_JS)
                open_notebook(page, lab, notebook)
                _run_cell(page, 0, "ready", TIMEOUT_MS)  # the setup cell
                configure_server(url, token_delay=1 / RATE)
                index = 1
                for size in SIZES:
                    text = mixed_reply(size - len(MARKER) - 2) + f"\n\n{MARKER}"
                    cap = TIMEOUT_MS
                    for design in DESIGNS:
                        _control(url, "POST", "script", {"text": text})
                        results[(size, design)] = result = _run_cell(page, index, MARKER, cap)
                        # The baseline gets twice our time (at most a minute); then a fresh
                        # page, so that a backlog of updates does not weigh on the next run.
                        cap = min(int(result["seconds"] * 2000) + 5000, BASELINE_CAP_MS)
                        page.reload()
                        wait_for_kernel_idle(page)
                        index += 1
                browser.close()
        finally:
            lab.stop()
    return results


def measure() -> list[Row]:
    """Rows 11: long-task time and longest frame, ours against every-token updates."""
    chromium = chromium_executable()
    try:
        import playwright  # noqa: F401
    except ImportError:
        chromium = None
    if chromium is None:
        return [Row("11. Browser cost", "not measured", "—", "—", "—", None, {}, "No Chromium.")]
    results = _measure_all(chromium)
    rows = []
    for size in SIZES:
        ours, base = results[(size, "ours")], results[(size, "every token")]
        shown = base["shown_chars"] / max(ours["shown_chars"], 1)
        unfinished = (
            ""
            if base["finished"]
            else f", {shown:.0%} of the reply shown when stopped after {base['seconds']:.0f} s"
        )
        rows.append(
            Row(
                f"11. Browser cost, {size // 1000} KB reply at {RATE} tok/s (JupyterLab)",
                f"long tasks {ours['long_tasks_ms']:,.0f} ms, longest frame "
                f"{ours['longest_frame_ms']:,.0f} ms, busy {ours['busy_ms']:,.0f} ms "
                f"in {ours['seconds']:.0f} s",
                f"every token: long tasks {base['long_tasks_ms']:,.0f} ms, longest frame "
                f"{base['longest_frame_ms']:,.0f} ms, busy {base['busy_ms']:,.0f} ms "
                f"in {base['seconds']:.0f} s{unfinished}",
                f"{ours['busy_ms'] / max(base['busy_ms'], 1):.2f}× busy time",
                "— (report)",
                None,
                {"ours": ours, "every_token": base},
                "Headless Chromium, 1280×1000; long tasks = the main thread's tasks over 50 ms "
                "(PerformanceObserver), summed from the run until the reply's last words show; "
                "longest frame = the longest time between two animation frames then; busy = "
                "the main thread's task time (DevTools TaskDuration) then. The "
                "baseline cell updates a Markdown display with the whole text on every token; it "
                "gets twice our time (at most a minute) to show the end, else its figures are a "
                "lower bound.",
            )
        )
    return rows
