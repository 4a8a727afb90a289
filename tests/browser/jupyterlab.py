"""Drive a real JupyterLab in headless Chromium for the browser tests.

Server side: `start_jupyterlab` runs ``python -m jupyterlab`` in an isolated
environment (temporary config, data, runtime and IPython dirs; no news, update
checks or kernel-selection dialogs) and returns a `JupyterLabServer`.

Page side: `open_notebook`, `wait_for_kernel_idle`, `run_all_cells`,
`wait_for_execution_finished`, `collect_outputs`, `get_output_history`, ...
All waits are conditions evaluated in the page with a deadline, never sleeps.
Cell indices are 0-based positions in the notebook (``nb.cells[i]``), counting
Markdown and raw cells too.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS_DIR = REPO_ROOT / "test-artifacts" / "browser"

CHROMIUM_ENV = "DEEPINFRA_MAGIC_CHROMIUM"
REQUIRE_BROWSER_ENV = "DEEPINFRA_MAGIC_REQUIRE_BROWSER"
DEFAULT_CHROMIUM = Path("/usr/bin/chromium")

# Debian's Chromium as root without network: no sandbox (root), no GPU, and no
# background services whose failing connections would only add noise and delay.
CHROMIUM_ARGS: tuple[str, ...] = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)

SERVER_START_TIMEOUT_S = 90.0
KERNEL_READY_TIMEOUT_MS = 90_000
EXECUTION_TIMEOUT_MS = 120_000
OUTPUT_TIMEOUT_MS = 30_000
_POLL_MS = 100

STDERR_MIME = "application/vnd.jupyter.stderr"

# JupyterLab user settings written into a fresh user-settings dir (plugin id -> values).
LAB_USER_SETTINGS: dict[str, dict[str, Any]] = {
    # No "Would you like to get notified about official Jupyter news?" toast, no update check.
    "@jupyterlab/apputils-extension:notification": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
    "@jupyterlab/notebook-extension:tracker": {
        # Keep every cell attached to the DOM so off-screen outputs can be read.
        "windowingMode": "none",
        # Start the default kernel instead of asking for one when metadata lacks a kernelspec.
        "autoStartDefaultKernel": True,
        # No blank viewport-sized space after the last cell (keeps screenshots tight).
        "scrollPastEnd": False,
    },
    # Restart-and-run-all without a confirmation dialog.
    "@jupyterlab/apputils-extension:sessionDialogs": {"skipKernelRestartDialog": True},
    # No background writes of the notebook while a test inspects it.
    "@jupyterlab/docmanager-extension:plugin": {"autosave": False},
}

# page_config.json: frontend plugins switched off entirely (the news/update announcer).
LAB_PAGE_CONFIG: dict[str, Any] = {
    "disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True},
}

# Environment variables never passed to the server and its kernels unless given explicitly:
# user Jupyter/IPython locations, and DeepInfra credentials or switches from the developer's shell.
_DROPPED_ENV_PREFIXES = ("JUPYTER", "JPY_", "IPYTHON", "DEEPINFRA")


def chromium_executable() -> Path | None:
    """Return the Chromium binary to drive (``$DEEPINFRA_MAGIC_CHROMIUM`` or Debian's), if any."""
    configured = os.environ.get(CHROMIUM_ENV)
    candidate = Path(configured) if configured else DEFAULT_CHROMIUM
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return candidate
    return None


def artifact_path(name: str, suffix: str) -> Path:
    """Path under ``test-artifacts/browser/`` for ``name`` (made filesystem-safe), dirs created."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "artifact"
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS_DIR / f"{safe}{suffix}"


# --------------------------------------------------------------------------- server


@dataclass
class JupyterLabServer:
    """A running ``jupyter lab`` subprocess and what is needed to talk to it."""

    url: str
    """Base URL with trailing slash, e.g. ``http://127.0.0.1:PORT/``."""
    token: str
    root_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes]
    kernel_env: dict[str, str]
    """Extra environment variables the kernels of this server see."""

    def api(self, method: str, path: str, body: Any = None, timeout: float = 10.0) -> Any:
        """Call the Jupyter REST API (``path`` like ``api/sessions``); return decoded JSON."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path.lstrip("/"),
            data=data,
            method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload = response.read()
        return json.loads(payload) if payload else None

    def lab_url(self, path: str, workspace: str | None = None) -> str:
        """URL opening ``path`` (relative to the root dir) in a fresh, empty JupyterLab workspace.

        A new workspace per call means no tabs restored from an earlier test.
        """
        ws = workspace or f"t{uuid.uuid4().hex[:12]}"
        return f"{self.url}lab/workspaces/{ws}/tree/{quote(path)}?token={quote(self.token)}"

    def delete_all_sessions(self) -> None:
        """Shut down every notebook session (and its kernel) so tests do not share kernels."""
        if self.process.poll() is not None:
            return
        for session in self.api("GET", "api/sessions"):
            with contextlib.suppress(urllib.error.HTTPError):
                self.api("DELETE", f"api/sessions/{session['id']}")

    def log_text(self) -> str:
        """Everything the server (and its kernels) wrote to stdout/stderr so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self, timeout: float = 15.0) -> None:
        """Shut down cleanly: REST shutdown, then SIGTERM, then SIGKILL, each with a deadline."""
        if self.process.poll() is None:
            with contextlib.suppress(OSError, urllib.error.URLError, ValueError):
                self.api("POST", "api/shutdown", timeout=5.0)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.terminate()
                try:
                    self.process.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(timeout=timeout)


def _free_port() -> int:
    """A currently free TCP port on 127.0.0.1 (the server is told not to try others)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _write_lab_config(config_dir: Path, settings_dir: Path) -> None:
    """Write the page_config.json and user settings that keep JupyterLab free of popups."""
    labconfig = config_dir / "labconfig"
    labconfig.mkdir(parents=True, exist_ok=True)
    (labconfig / "page_config.json").write_text(json.dumps(LAB_PAGE_CONFIG), encoding="utf-8")
    for plugin_id, values in LAB_USER_SETTINGS.items():
        package, plugin = plugin_id.split(":")
        target = settings_dir / package / f"{plugin}.jupyterlab-settings"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(values, indent=2), encoding="utf-8")


def isolated_env(base_dir: Path, extra_env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for the server and kernels: this Python's venv, temp Jupyter/IPython dirs.

    The python3 kernelspec still resolves to ``sys.executable`` (it is the server's native
    kernel), so the kernel runs in the same venv as pytest.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(_DROPPED_ENV_PREFIXES)}
    dirs = {
        "HOME": base_dir / "home",
        "JUPYTER_CONFIG_DIR": base_dir / "jupyter-config",
        "JUPYTER_DATA_DIR": base_dir / "jupyter-data",
        "JUPYTER_RUNTIME_DIR": base_dir / "jupyter-runtime",
        "IPYTHONDIR": base_dir / "ipython",
        "XDG_CONFIG_HOME": base_dir / "xdg-config",
        "XDG_DATA_HOME": base_dir / "xdg-data",
        "XDG_CACHE_HOME": base_dir / "xdg-cache",
    }
    for key, path in dirs.items():
        path.mkdir(parents=True, exist_ok=True)
        env[key] = str(path)
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([venv_bin, env.get("PATH", "")])
    env.update(
        {
            "JUPYTER_PLATFORM_DIRS": "1",  # no "Jupyter is migrating its paths" warning
            "PYTHONNOUSERSITE": "1",  # no ~/.local site-packages in server or kernel
            "PYDEVD_DISABLE_FILE_VALIDATION": "1",  # quiet debugpy notice in the kernel log
        }
    )
    env.update(extra_env or {})
    return env


def _server_command(port: int, token: str, root_dir: Path, base_dir: Path) -> list[str]:
    """Command line of the JupyterLab server (``-m jupyterlab`` avoids a PATH lookup)."""
    return [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--allow-root",  # tests may run as root (containers, CI)
        "--ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root_dir}",
        "--ServerApp.terminals_enabled=False",
        "--LabApp.news_url=None",  # never fetch the news feed
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",  # never query PyPI for extensions
        f"--LabApp.user_settings_dir={base_dir / 'lab-user-settings'}",
        f"--LabApp.workspaces_dir={base_dir / 'lab-workspaces'}",
    ]


def start_jupyterlab(
    base_dir: Path,
    extra_env: Mapping[str, str] | None = None,
    timeout_s: float = SERVER_START_TIMEOUT_S,
) -> JupyterLabServer:
    """Start JupyterLab under ``base_dir`` and return once ``GET /api/status`` answers.

    ``extra_env`` is added to the server's environment, which every kernel inherits
    (e.g. ``{"DEEPINFRA_MAGIC_REPLAY": "/path/recording.jsonl"}``). A port taken between
    choosing and binding it is retried with another port.
    """
    base_dir.mkdir(parents=True, exist_ok=True)
    root_dir = base_dir / "root"
    root_dir.mkdir(exist_ok=True)
    env = isolated_env(base_dir, extra_env)
    _write_lab_config(Path(env["JUPYTER_CONFIG_DIR"]), base_dir / "lab-user-settings")
    token = uuid.uuid4().hex
    log_path = base_dir / "jupyterlab.log"
    last_error = ""
    for _attempt in range(3):
        port = _free_port()
        with log_path.open("ab") as log:
            log.write(f"\n=== starting JupyterLab on port {port} ===\n".encode())
            log.flush()
            process = subprocess.Popen(
                _server_command(port, token, root_dir, base_dir),
                cwd=root_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        server = JupyterLabServer(
            url=f"http://127.0.0.1:{port}/",
            token=token,
            root_dir=root_dir,
            log_path=log_path,
            process=process,
            kernel_env=dict(extra_env or {}),
        )
        outcome = _wait_for_status(server, timeout_s)
        if outcome == "ready":
            return server
        server.stop()
        last_error = outcome
        if "is not available" not in server.log_text():
            break
    tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-40:])
    raise RuntimeError(f"JupyterLab did not start: {last_error}\n--- log tail ---\n{tail}")


def _wait_for_status(server: JupyterLabServer, timeout_s: float) -> str:
    """Poll ``/api/status`` until it answers 200; the pause between tries is a process wait."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            server.api("GET", "api/status", timeout=2.0)
            return "ready"
        except (OSError, urllib.error.URLError, ValueError):
            pass
        try:
            code = server.process.wait(timeout=_POLL_MS / 1000)
            return f"server exited with code {code}"
        except subprocess.TimeoutExpired:
            continue
    return f"no answer from {server.url}api/status within {timeout_s:.0f}s"


class JupyterLabFactory:
    """Start JupyterLab once per distinct kernel environment; stop them all at session end."""

    def __init__(self, make_base_dir: Callable[[], Path]) -> None:
        self._make_base_dir = make_base_dir
        self._servers: dict[tuple[tuple[str, str], ...], JupyterLabServer] = {}

    @property
    def servers(self) -> list[JupyterLabServer]:
        """Servers started so far."""
        return list(self._servers.values())

    def __call__(self, extra_env: Mapping[str, str] | None = None) -> JupyterLabServer:
        """Return the (possibly already running) server whose kernels see ``extra_env``."""
        key = tuple(sorted((extra_env or {}).items()))
        if key not in self._servers:
            base_dir = self._make_base_dir()
            try:
                self._servers[key] = start_jupyterlab(base_dir, extra_env)
            except Exception:
                log = base_dir / "jupyterlab.log"
                if log.exists():
                    shutil.copyfile(log, artifact_path("jupyterlab-startup-failure", ".log"))
                raise
        return self._servers[key]

    def stop_all(self, keep_logs: bool) -> None:
        """Stop every server; copy their logs to the artifacts dir if ``keep_logs``."""
        for number, server in enumerate(self._servers.values()):
            server.stop()
            if keep_logs:
                shutil.copyfile(server.log_path, artifact_path(f"jupyterlab-{number}", ".log"))
        self._servers.clear()


@dataclass
class BrowserLog:
    """What the page reported: console messages, uncaught errors, failed requests."""

    console: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)

    def dump(self) -> str:
        """All entries as text, for a failure artifact."""
        sections = {
            "console": self.console,
            "page errors": self.page_errors,
            "failed requests": self.failed_requests,
        }
        return "\n".join(
            f"== {title} ==\n" + "\n".join(entries) for title, entries in sections.items()
        )


# --------------------------------------------------------------------------- page

# Installed in every page before JupyterLab's own scripts. Records each distinct text state
# of every cell's outputs, plus whether a cell showed the busy prompt "[*]" since the last
# reset, so tests can assert on streaming without racing against the page.
RECORDER_JS = r"""
(() => {
  if (window.__labRecorder) { return; }
  const OUT = '.jp-OutputArea-output';
  const rec = { history: {}, runStarted: false };
  window.__labRecorder = rec;
  rec.panel = () => document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
  rec.cells = () => {
    const panel = rec.panel();
    return panel ? Array.from(panel.querySelectorAll('.jp-Notebook .jp-Cell')) : [];
  };
  rec.cell = (index) => rec.cells()[index] ?? null;
  // Top-level outputs only: widgets may nest output areas, whose text the parent already has.
  rec.outputs = (root) => Array.from(root.querySelectorAll(OUT))
    .filter((el) => el.parentElement.closest(OUT) === null);
  rec.outputText = (cell) => rec.outputs(cell).map((el) => el.innerText).join('\n');
  rec.prompt = (cell) => {
    const el = cell.querySelector('.jp-InputPrompt');
    return el ? el.innerText.trim() : '';
  };
  rec.kernel = () => {
    const panel = rec.panel();
    const indicator = panel && panel.querySelector('.jp-Notebook-ExecutionIndicator');
    const name = panel && panel.querySelector('[data-jp-item-name="kernelName"]');
    return {
      status: indicator ? indicator.getAttribute('data-status') : null,
      name: name ? name.innerText.trim() : null,
    };
  };
  rec.dialog = () => {
    const el = document.querySelector('.jp-Dialog');
    return el ? el.innerText.trim() : null;
  };
  rec.state = () => ({
    kernel: rec.kernel(),
    dialog: rec.dialog(),
    prompts: rec.cells().map((cell) => rec.prompt(cell)),
    runStarted: rec.runStarted,
  });
  rec.snapshot = (seed = false) => {
    const now = performance.timeOrigin + performance.now();
    rec.cells().forEach((cell, index) => {
      if (rec.prompt(cell).includes('*')) { rec.runStarted = true; }
      const text = rec.outputText(cell);
      const states = rec.history[index] ?? (rec.history[index] = []);
      if (states.length === 0 || states[states.length - 1].text !== text) {
        states.push({ t: now, text, seed });
      }
    });
  };
  rec.reset = () => {
    rec.history = {};
    rec.runStarted = false;
    rec.snapshot(true);
  };
  const inNotebook = (record) => {
    const node = record.target.nodeType === Node.ELEMENT_NODE
      ? record.target : record.target.parentElement;
    return node !== null && node.closest('.jp-Notebook') !== null;
  };
  new MutationObserver((records) => {
    if (records.some(inNotebook)) { rec.snapshot(); }
  }).observe(document, { subtree: true, childList: true, characterData: true });
})();
"""

_KERNEL_READY_JS = r"""
() => {
  const rec = window.__labRecorder;
  const dialog = rec.dialog();
  if (dialog !== null) { return { dialog }; }
  const { status, name } = rec.kernel();
  if (status === 'dead') { return { dead: name }; }
  const ready = status === 'idle' && !!name && name !== 'No Kernel' && rec.cells().length > 0;
  return ready ? { ok: true } : false;
}
"""

_EXECUTION_DONE_JS = r"""
() => {
  const rec = window.__labRecorder;
  const dialog = rec.dialog();
  if (dialog !== null) { return { dialog }; }
  const { status } = rec.kernel();
  if (status === 'dead') { return { dead: true }; }
  rec.snapshot();
  if (!rec.runStarted || status !== 'idle') { return false; }
  const code = rec.cells().filter((cell) => cell.classList.contains('jp-CodeCell'));
  const prompts = code.map((cell) => rec.prompt(cell));
  if (prompts.some((p) => p.includes('*'))) { return false; }
  const images = rec.cells().flatMap((cell) => rec.outputs(cell))
    .flatMap((el) => Array.from(el.querySelectorAll('img')));
  if (images.some((img) => !img.complete)) { return false; }
  return { ok: true, prompts };
}
"""

_COLLECT_JS = r"""
() => {
  const rec = window.__labRecorder;
  return rec.cells().map((cell, index) => {
    const outputs = rec.outputs(cell);
    const type = cell.classList.contains('jp-CodeCell') ? 'code'
      : cell.classList.contains('jp-MarkdownCell') ? 'markdown' : 'raw';
    const inside = (selector) => outputs.flatMap((el) => Array.from(el.querySelectorAll(selector)));
    return {
      index,
      cell_type: type,
      prompt: rec.prompt(cell),
      outputs: outputs.map((el) => ({
        mime_type: el.getAttribute('data-mime-type') ?? '',
        text: el.innerText,
        html: el.innerHTML,
      })),
      code_blocks: inside('pre code').map((el) => el.innerText),
      images: inside('img').map((img) => ({
        src: (img.currentSrc || img.src).slice(0, 80),
        natural_width: img.naturalWidth,
        natural_height: img.naturalHeight,
        complete: img.complete,
      })),
    };
  });
}
"""

_OUTPUT_MATCH_JS = r"""
([index, text, selector]) => {
  const rec = window.__labRecorder;
  const cell = rec.cell(index);
  if (cell === null) { return false; }
  const outputs = rec.outputs(cell);
  if (text !== null && !rec.outputText(cell).includes(text)) { return false; }
  if (selector !== null && !outputs.some((el) => el.querySelector(selector) !== null)) {
    return false;
  }
  return outputs.length > 0;
}
"""


class NotebookRunError(AssertionError):
    """JupyterLab did not reach the expected state (dialog, dead kernel, cells not run)."""


@dataclass(frozen=True)
class OutputItem:
    """One rendered output of a cell (``.jp-OutputArea-output``)."""

    mime_type: str
    text: str
    html: str = field(repr=False)


@dataclass(frozen=True)
class ImageInfo:
    """An ``<img>`` in a cell's outputs; natural size > 0 means real pixels were decoded."""

    src: str
    natural_width: int
    natural_height: int
    complete: bool


@dataclass(frozen=True)
class CellOutputs:
    """What the browser shows for one cell after execution."""

    index: int
    cell_type: str
    execution_count: int | None
    outputs: tuple[OutputItem, ...]
    code_blocks: tuple[str, ...]
    """``innerText`` of every ``pre code`` element (rendered Markdown code blocks)."""
    images: tuple[ImageInfo, ...]

    @property
    def text(self) -> str:
        """Concatenated visible text of all outputs (same as the recorder's states)."""
        return "\n".join(item.text for item in self.outputs)

    @property
    def mime_types(self) -> list[str]:
        """MIME type chosen by JupyterLab for each output, in order."""
        return [item.mime_type for item in self.outputs]

    @property
    def stderr(self) -> list[str]:
        """Text of stderr outputs; JupyterLab renders tracebacks and render errors this way too."""
        return [item.text for item in self.outputs if item.mime_type == STDERR_MIME]

    @property
    def has_errors(self) -> bool:
        """True if any output is stderr, a traceback, or a failed render."""
        return bool(self.stderr)


def install_output_recorder(page: Page) -> None:
    """Make the output recorder run in ``page`` now and after every navigation."""
    page.add_init_script(RECORDER_JS)  # the script is a no-op where already installed
    if page.url not in ("", "about:blank"):
        page.evaluate(RECORDER_JS)


def _wait(page: Page, expression: str, what: str, timeout_ms: int, arg: Any = None) -> Any:
    """``page.wait_for_function`` with a readable `NotebookRunError` on timeout or failure.

    The condition may answer ``{dialog: text}`` or ``{dead: ...}`` to stop waiting early.
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

    try:
        handle = page.wait_for_function(expression, arg=arg, timeout=timeout_ms, polling=_POLL_MS)
    except PlaywrightTimeoutError:
        state = page.evaluate("() => window.__labRecorder && window.__labRecorder.state()")
        raise NotebookRunError(
            f"timed out after {timeout_ms / 1000:.0f}s {what}; page state: {state}"
        ) from None
    result = handle.json_value()
    if isinstance(result, dict) and "dialog" in result:
        raise NotebookRunError(f"{what}: JupyterLab shows a dialog:\n{result['dialog']}")
    if isinstance(result, dict) and "dead" in result:
        raise NotebookRunError(f"{what}: the kernel died")
    return result


def open_notebook(
    page: Page,
    server: JupyterLabServer,
    notebook: Path,
    *,
    name: str | None = None,
    extra_files: Sequence[Path] = (),
    timeout_ms: int = KERNEL_READY_TIMEOUT_MS,
) -> str:
    """Copy ``notebook`` (and ``extra_files`` beside it) into the server root and open it.

    ``name`` is the path relative to the root dir (default: the file's name); the kernel's
    working directory is the notebook's folder. Returns that path once the kernel is idle.
    """
    target_name = name or notebook.name
    target = server.root_dir / target_name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(notebook, target)
    for extra in extra_files:
        shutil.copyfile(extra, target.parent / extra.name)
    install_output_recorder(page)
    page.goto(server.lab_url(target_name))
    wait_for_kernel_idle(page, timeout_ms=timeout_ms)
    return target_name


def wait_for_kernel_idle(page: Page, timeout_ms: int = KERNEL_READY_TIMEOUT_MS) -> None:
    """Wait until the notebook shows its cells and a connected kernel whose status is idle.

    The toolbar's ``.jp-Notebook-ExecutionIndicator[data-status]`` reads "idle" even before a
    kernel exists, so the kernel name item must also name a kernel (not "No Kernel").
    """
    _wait(page, _KERNEL_READY_JS, "waiting for an idle kernel", timeout_ms)


def run_all_cells(page: Page, timeout_ms: int = 30_000) -> None:
    """Click Run ▸ Run All Cells and wait until a cell shows the busy prompt ``[*]``.

    Resets the output history first, so it then holds only this run's states.
    """
    reset_output_history(page)
    page.get_by_role("menuitem", name="Run", exact=True).click()
    item = page.get_by_role("menuitem", name="Run All Cells", exact=True)
    item.wait_for(state="visible", timeout=timeout_ms)
    if item.get_attribute("aria-disabled") == "true":
        raise NotebookRunError("Run All Cells is disabled: is a notebook the active tab?")
    item.click()
    _wait(page, "() => window.__labRecorder.runStarted", "waiting for a cell to start", timeout_ms)


def wait_for_execution_finished(
    page: Page, timeout_ms: int = EXECUTION_TIMEOUT_MS, *, inserted_cells: int = 0
) -> None:
    """Wait until no cell shows ``[*]``, the kernel is idle and output images have loaded.

    Raises `NotebookRunError` if a code cell was left unexecuted (a failing cell makes
    JupyterLab skip the rest), a dialog appeared, or the kernel died. ``inserted_cells``
    is how many cells the run itself added (``set_next_input``): those stay unexecuted.
    """
    value = _wait(page, _EXECUTION_DONE_JS, "waiting for execution to finish", timeout_ms)
    not_run = [p for p in value["prompts"] if not re.search(r"\[\d+\]", p)]
    if len(not_run) != inserted_cells:
        errors = [text for cell in collect_outputs(page) for text in cell.stderr]
        raise NotebookRunError(
            f"{len(not_run)} code cell(s) did not run (prompts {value['prompts']}); "
            f"stderr outputs: {errors}"
        )


def run_all_and_wait(page: Page, timeout_ms: int = EXECUTION_TIMEOUT_MS) -> list[CellOutputs]:
    """Run all cells, wait for the run to finish and return the collected outputs."""
    run_all_cells(page)
    wait_for_execution_finished(page, timeout_ms=timeout_ms)
    return collect_outputs(page)


def error_lessons(cells: list[CellOutputs]) -> list[str]:
    """The one-line errors the cells show as output (``Name: message``), in order: what
    ``raise_on_error = False`` displays instead of a traceback (Voilà drops stderr)."""
    return [
        item.text.strip()
        for cell in cells
        for item in cell.outputs
        if re.match(r"[A-Za-z]+Error: ", item.text)
    ]


def collect_outputs(page: Page) -> list[CellOutputs]:
    """Read every cell's rendered outputs (text, MIME types, code blocks, images)."""
    cells: list[dict[str, Any]] = page.evaluate(_COLLECT_JS)
    result = []
    for cell in cells:
        match = re.search(r"\[(\d+)\]", cell["prompt"])
        result.append(
            CellOutputs(
                index=cell["index"],
                cell_type=cell["cell_type"],
                execution_count=int(match.group(1)) if match else None,
                outputs=tuple(OutputItem(**item) for item in cell["outputs"]),
                code_blocks=tuple(cell["code_blocks"]),
                images=tuple(ImageInfo(**image) for image in cell["images"]),
            )
        )
    return result


def output_locator(page: Page, cell_index: int) -> Locator:
    """Playwright locator for the rendered outputs of one cell (for ``expect`` assertions).

    Unlike `collect_outputs` it also matches outputs nested in widgets.
    """
    cells = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell")
    return cells.nth(cell_index).locator(".jp-OutputArea-output")


def wait_for_output(
    page: Page,
    cell_index: int,
    *,
    text: str | None = None,
    selector: str | None = None,
    timeout_ms: int = OUTPUT_TIMEOUT_MS,
) -> None:
    """Wait until a cell's outputs contain ``text`` and/or an element matching ``selector``.

    Rendering (e.g. Markdown) finishes asynchronously after the kernel reports completion;
    wait on a marker of the final state before asserting on it.
    """
    what = f"waiting for cell {cell_index} output (text={text!r}, selector={selector!r})"
    _wait(page, _OUTPUT_MATCH_JS, what, timeout_ms, arg=[cell_index, text, selector])


def reset_output_history(page: Page) -> None:
    """Forget recorded output states; current outputs become a hidden baseline."""
    page.evaluate(RECORDER_JS)  # no-op if the init script already installed it
    page.evaluate("() => window.__labRecorder.reset()")


def get_output_timeline(page: Page, cell_index: int) -> list[tuple[float, str]]:
    """``(epoch seconds, text)`` for each distinct output state of a cell since the last reset.

    Includes empty states (outputs cleared) but not the baseline taken at reset.
    """
    states: list[dict[str, Any]] = page.evaluate(
        "(i) => window.__labRecorder.history[i] ?? []", cell_index
    )
    return [(state["t"] / 1000.0, state["text"]) for state in states if not state["seed"]]


def get_output_history(page: Page, cell_index: int, *, include_empty: bool = False) -> list[str]:
    """Distinct non-empty output texts of a cell, in order; the last one is the latest state."""
    texts = [text for _, text in get_output_timeline(page, cell_index)]
    return texts if include_empty else [text for text in texts if text.strip()]


def save_screenshot(
    page: Page, name: str, *, whole_notebook: bool = True, max_height: int = 8000
) -> Path:
    """Save a full-page PNG to ``test-artifacts/browser/<name>.png`` and return its path.

    JupyterLab scrolls inside the notebook, so a full-page shot alone shows only the
    viewport; with ``whole_notebook`` the viewport is made tall enough (up to ``max_height``)
    for every cell, then restored.
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

    path = artifact_path(name, ".png")
    original = page.viewport_size
    overflow = int(page.evaluate(_NOTEBOOK_OVERFLOW_JS)) if whole_notebook else 0
    if original is None or overflow <= 0:
        page.screenshot(path=str(path), full_page=True)
        return path
    height = min(original["height"] + overflow, max_height)
    page.set_viewport_size({"width": original["width"], "height": height})
    try:
        # Lumino lays out again on the resize; wait until the notebook fits (or cannot grow).
        with contextlib.suppress(PlaywrightTimeoutError):  # a partial shot still helps
            page.wait_for_function(
                f"() => ({_NOTEBOOK_OVERFLOW_JS})() <= 0 || window.innerHeight >= {max_height}",
                timeout=10_000,
                polling=_POLL_MS,
            )
        page.screenshot(path=str(path), full_page=True)
    finally:
        page.set_viewport_size(original)
    return path


_NOTEBOOK_OVERFLOW_JS = """() => {
  const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
  const scroller = panel && panel.querySelector('.jp-WindowedPanel-outer');
  return scroller ? scroller.scrollHeight - scroller.clientHeight : 0;
}"""
