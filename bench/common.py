"""What the benchmarks share: result rows, the fake server, a kernel-like display publisher."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import statistics
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from IPython.core.displaypub import DisplayPublisher

from tests.fake_deepinfra import CHAT_PATH, filler_reply, start_subprocess_server, tokenize

if TYPE_CHECKING:
    import httpx
    import openai
    from IPython.core.interactiveshell import InteractiveShell

    from deepinfra_magic.magics import DeepInfraMagics

__all__ = [
    "API_KEY",
    "CHAT_PATH",
    "IMAGE_MODEL",
    "MODEL",
    "REPO_ROOT",
    "Row",
    "WirePublisher",
    "chat_body",
    "configure_server",
    "fake_server",
    "filler_tokens",
    "isolated_environment",
    "magic_shell",
    "median",
    "server_log",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
MODEL = "meta-llama/Llama-3.3-70B-Instruct-Turbo"
IMAGE_MODEL = "black-forest-labs/FLUX-1-schnell"
API_KEY = "bench-key-not-secret"
# Settings of the user's environment that would change what is measured.
_CLEARED_ENV = (
    "DEEPINFRA_BASE_URL",
    "DEEPINFRA_FLAVOUR",
    "DEEPINFRA_API_TOKEN",
    "DEEPINFRA_MAGIC_REPLAY",
    "DEEPINFRA_MAGIC_RECORD",
    "DEEPINFRA_MAGIC_REPLAY_SPEED",
)


@dataclass
class Row:
    """One line of the results table, plus the numbers behind it for the JSON file."""

    benchmark: str
    ours: str
    baseline: str
    ratio: str
    goal: str
    met: bool | None  # None: reported only, no goal
    data: dict[str, Any] = field(default_factory=dict)
    note: str = ""


def raw_httpx_reply(client: httpx.Client, path: str, body: dict[str, Any]) -> Callable[[], str]:
    """The raw-httpx baseline: ``iter_lines()``, ``json.loads`` of each ``data:`` line, the
    content joined (what a careful hand-written client does, and nothing more)."""

    def run() -> str:
        parts = []
        with client.stream("POST", path, json=body) as response:
            for line in response.iter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                choices = json.loads(line[6:])["choices"]
                if choices and choices[0]["delta"].get("content"):
                    parts.append(choices[0]["delta"]["content"])
        return "".join(parts)

    return run


def openai_reply(client: openai.OpenAI, **create: Any) -> Callable[[], str]:
    """The openai SDK baseline: ``chat.completions.create(stream=True, **create)``, the
    content joined."""

    def run() -> str:
        parts = []
        for chunk in client.chat.completions.create(stream=True, **create):
            if chunk.choices and chunk.choices[0].delta.content:
                parts.append(chunk.choices[0].delta.content)
        return "".join(parts)

    return run


def median(values: list[float]) -> float:
    """The median of the samples."""
    return statistics.median(values)


@contextlib.contextmanager
def isolated_environment() -> Iterator[Path]:
    """A key for the fake server, and IPython/cache dirs in a temporary folder, so the
    user's history, catalog cache and DeepInfra settings neither matter nor change."""
    saved = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="deepinfra-bench-") as scratch:
        for name in _CLEARED_ENV:
            os.environ.pop(name, None)
        os.environ["DEEPINFRA_API_KEY"] = API_KEY
        os.environ["IPYTHONDIR"] = str(Path(scratch, "ipython"))
        os.environ["XDG_CACHE_HOME"] = str(Path(scratch, "cache"))
        try:
            yield Path(scratch)
        finally:
            os.environ.clear()
            os.environ.update(saved)


@contextlib.contextmanager
def fake_server(**config: Any) -> Iterator[str]:
    """The fake DeepInfra in its own process (so it takes no GIL from the client); its URL."""
    url, process = start_subprocess_server(**config)
    try:
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def _control(url: str, method: str, path: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{url}/_fake/{path}",
        data=data,
        method=method,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def configure_server(url: str, **changes: Any) -> None:
    """Change the running fake server's config (``POST /_fake/config``)."""
    _control(url, "POST", "config", changes)


def server_log(url: str) -> dict[str, Any]:
    """What the fake server observed (``GET /_fake/log``)."""
    log: dict[str, Any] = _control(url, "GET", "log")
    return log


def filler_tokens(size: int) -> list[str]:
    """The fake server's filler tokens (``reply_tokens``), as many as make ``size`` bytes."""
    tokens = tokenize(filler_reply(size))  # a filler token has at least one byte
    total = itertools.accumulate(len(token.encode()) for token in tokens)
    count = next(index for index, length in enumerate(total, 1) if length >= size)
    return tokens[:count]


def chat_body(**extra: Any) -> dict[str, Any]:
    """A streamed chat request as the magic sends it (usage asked for in the last chunk)."""
    return {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Tell me a long story."}],
        "stream": True,
        "stream_options": {"include_usage": True},
        **extra,
    }


class WirePublisher(DisplayPublisher):
    """A display publisher that serialises every message to JSON as a kernel does, then
    drops it, keeping counts, sizes and times (so the rich path is taken, nothing is kept).

    Sizes are of the message content (``data``, ``metadata``, ``transient``), not the
    kernel protocol's fixed per-message header.
    """

    def __init__(self, clock: Callable[[], float] = time.perf_counter, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.clock = clock
        self.times: list[float] = []
        self.sizes: list[int] = []
        self.updates = 0

    def reset(self) -> None:
        """Forget what was published so far."""
        self.times.clear()
        self.sizes.clear()
        self.updates = 0

    def publish(
        self,
        data: dict[str, Any],
        metadata: dict[str, Any] | None = None,
        source: Any = None,
        *,
        transient: dict[str, Any] | None = None,
        update: bool = False,
        **kwargs: Any,
    ) -> None:
        """Serialise one display_data / update_display_data message and note it."""
        content = {"data": data, "metadata": metadata or {}, "transient": transient or {}}
        self.sizes.append(len(json.dumps(content, ensure_ascii=False).encode()))
        self.times.append(self.clock())
        self.updates += update

    @property
    def messages(self) -> int:
        """Display messages published since the last reset."""
        return len(self.sizes)

    @property
    def total_bytes(self) -> int:
        """Bytes of message content published since the last reset."""
        return sum(self.sizes)


def magic_shell(base_url: str) -> tuple[InteractiveShell, DeepInfraMagics, WirePublisher]:
    """The process's IPython shell with the extension loaded, pointed at ``base_url``,
    publishing through a fresh :class:`WirePublisher`."""
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    from deepinfra_magic.magics import DeepInfraMagics

    config = Config()
    config.HistoryManager.enabled = False  # no history database in the temporary IPYTHONDIR
    shell = InteractiveShell.instance(config=config)
    publisher = WirePublisher(shell=shell)
    shell.display_pub = publisher
    if "DeepInfraMagics" not in shell.magics_manager.registry:
        shell.run_line_magic("load_ext", "deepinfra_magic")
    magics = shell.magics_manager.registry["DeepInfraMagics"]
    assert isinstance(magics, DeepInfraMagics)
    magics.base_url = f"{base_url}/v1/openai"  # the fake server stands in for DeepInfra
    magics.display_mode = "auto"
    return shell, magics, publisher
