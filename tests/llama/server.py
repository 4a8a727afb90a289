"""Two real llama.cpp servers, run as a user runs them, on a tiny model, and a proxy.

* llama-cpp-python's: ``python -m llama_cpp.server --model M --model_alias tiny --host
  127.0.0.1 --port P`` (the recipe in llama-cpp-python's README).
* llama.cpp's native ``llama-server`` (the server Ollama and LM Studio wrap), built from
  the llama.cpp vendored in the same sdist by ``scripts/ensure-llama-server``:
  ``llama-server -m M --alias tiny --host 127.0.0.1 --port P -c N`` (its README's recipe).
* LiteLLM's proxy in front of the native server, from its own venv
  (``scripts/ensure-litellm``): ``litellm --config C --host 127.0.0.1 --port P`` with a
  master key (LiteLLM's docs' recipe for an OpenAI-compatible backend).

Their output is collected line by line, so a test can wait for what the server says, such
as that a client hung up.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

from tests.llama.tiny_model import write_tiny_llama

MODEL = "tiny"
CONTEXT = 32768  # n_ctx: room for a long reply that a test can interrupt mid-way
NATIVE_CONTEXT = 512  # llama-server's n_ctx: small, so an overlong prompt is cheap to send
ENSURE_LLAMA_SERVER = Path(__file__).parents[2] / "scripts" / "ensure-llama-server"
ENSURE_LITELLM = Path(__file__).parents[2] / "scripts" / "ensure-litellm"
LITELLM_MASTER_KEY = "sk-litellm-master-0123456789"  # the proxy's own key, made up here


def free_port() -> int:
    """A port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def python_server_command(model: Path, port: int) -> list[str]:
    """llama-cpp-python's server on ``model``, one thread."""
    return [
        sys.executable, "-m", "llama_cpp.server", "--model", str(model),
        "--model_alias", MODEL, "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", str(CONTEXT), "--n_threads", "1", "--n_threads_batch", "1",
    ]  # fmt: skip


def _ensured(script: Path) -> Path:
    """The path a ``scripts/ensure-*`` script prints (it builds or installs it first when
    missing: minutes, once)."""
    found = subprocess.run(
        [str(script), sys.executable], capture_output=True, text=True, check=False
    )
    if found.returncode != 0:
        raise RuntimeError(f"scripts/{script.name} failed:\n{found.stderr[-3000:]}")
    return Path(found.stdout.strip().splitlines()[-1])


def native_server_binary() -> Path:
    """The cached llama-server binary."""
    return _ensured(ENSURE_LLAMA_SERVER)


def native_server_command(model: Path, port: int) -> list[str]:
    """llama.cpp's native server on ``model``: one slot of NATIVE_CONTEXT tokens, one thread."""
    return [
        str(native_server_binary()), "-m", str(model), "--alias", MODEL,
        "--host", "127.0.0.1", "--port", str(port), "-c", str(NATIVE_CONTEXT),
        "-np", "1", "-t", "1", "-tb", "1",
    ]  # fmt: skip


def litellm_command(config: Path, port: int) -> list[str]:
    """LiteLLM's proxy serving the models of ``config``."""
    return [
        str(_ensured(ENSURE_LITELLM)), "--config", str(config), "--host", "127.0.0.1",
        "--port", str(port), "--telemetry", "False", "--num_workers", "1",
    ]  # fmt: skip


class LlamaServer:
    """A running server process (llama.cpp's, or a proxy in front of one): its URL and
    everything it printed. ``ready`` is the path that answers 200 once it serves."""

    def __init__(
        self,
        model: Path,
        command: Callable[[Path, int], list[str]],
        ready: str = "/v1/models",
        env: dict[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.root = f"http://127.0.0.1:{self.port}"
        self.url = self.root + "/v1"  # what a user sets as DEEPINFRA_BASE_URL
        self._ready = ready
        self._probes = 0
        self._lines: list[str] = []
        self._changed = threading.Condition()
        env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
        self._process = subprocess.Popen(
            command(model, self.port),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self._reader = threading.Thread(target=self._read, name="llama-server-log", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            with self._changed:
                self._lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def log(self) -> str:
        """Everything the server printed so far."""
        with self._changed:
            return "\n".join(self._lines)

    def mark(self) -> int:
        """A position in the log, to wait for lines printed after it."""
        with self._changed:
            return len(self._lines)

    def settled_mark(self) -> int:
        """A position after every request answered so far has been logged: an access-log
        line can come after its answer, so a probe request's own line is waited for first
        (llama-cpp-python's server logs each request, query string included)."""
        self._probes += 1
        probe = f"/models?settled={self._probes}"
        httpx.get(self.url + probe, timeout=30).raise_for_status()
        assert self.wait_for_line(probe), f"the server never logged {probe}"
        return self.mark()

    def wait_for_line(self, text: str, *, after: int = 0, timeout: float = 30.0) -> bool:
        """True once the server prints a line containing ``text`` (after ``mark()``)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not any(text in line for line in self._lines[after:]):
                left = deadline - time.monotonic()
                if left <= 0 or (self._process.poll() is not None and not self._reader.is_alive()):
                    return False
                self._changed.wait(left)
            return True

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Poll ``GET /v1/models`` until it answers; fail with the server's log if it dies."""
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=5) as http:
            while True:
                if self._process.poll() is not None:
                    raise RuntimeError(f"the server exited early:\n{self.log[-3000:]}")
                with contextlib.suppress(httpx.TransportError):
                    if http.get(self.root + self._ready).status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"the server not ready in {timeout:g} s:\n{self.log[-3000:]}"
                    )
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._process.wait(0.1)  # the poll interval, and it notices an exit

    def stop(self) -> None:
        """Terminate the server and wait for it."""
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(20)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(20)
        self._reader.join(5)


@contextlib.contextmanager
def running_server(
    directory: Path, command: Callable[[Path, int], list[str]] = python_server_command
) -> Iterator[LlamaServer]:
    """A tiny random model written into ``directory``, served until the block ends."""
    server = LlamaServer(write_tiny_llama(directory / "tiny.gguf"), command)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def running_litellm(directory: Path, backend: LlamaServer) -> Iterator[LlamaServer]:
    """LiteLLM's proxy routing the model ``tiny`` to ``backend``, until the block ends.

    Its config is the documented one for an OpenAI-compatible backend (``openai/`` prefix,
    ``api_base``); cooldowns are off, so that one failed request (an image the backend
    cannot make) does not make the proxy refuse the next ones for a while. The cost map
    is read from the package, not fetched.
    """
    config = directory / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        f"  - model_name: {MODEL}\n"
        "    litellm_params:\n"
        f"      model: openai/{MODEL}\n"
        f"      api_base: {backend.url}\n"
        "      api_key: none\n"
        "router_settings:\n"
        "  disable_cooldowns: true\n"
    )
    env = {"LITELLM_MASTER_KEY": LITELLM_MASTER_KEY, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    server = LlamaServer(config, litellm_command, ready="/health/liveliness", env=env)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()
