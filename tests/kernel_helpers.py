"""Helpers for the magics' tests: reading captured display messages, the fake server's
request log, a display publisher that is interrupted, and driving a kernel over ZMQ.

Nothing here stands in for deepinfra_magic: the shell, the publishers and the kernel are
IPython's and Jupyter's own (``InterruptingPublisher`` is IPython's capturing publisher
with Ctrl-C arriving while it publishes).
"""

from __future__ import annotations

import contextlib
import os
import queue
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from IPython.core.displaypub import CapturingDisplayPublisher
from IPython.utils.capture import RichOutput
from jupyter_client.manager import KernelManager

from deepinfra_magic._config import ENV_VARS
from tests.fake_deepinfra import CANARY_KEY, CHAT_PATH, FakeDeepInfra

MARKDOWN = "text/markdown"
PLAIN = "text/plain"
METADATA_KEY = "deepinfra_magic"
IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp", "image/gif")
MAGIC_ENV_VARS = ENV_VARS  # every variable the package reads (deepinfra_magic/_config.py)


@contextlib.contextmanager
def running_kernel(env: dict[str, str], *, load: bool = False) -> Iterator[Any]:
    """A real IPython kernel started with ``env``, its client ready (and the extension loaded
    when ``load``); the client's ``manager`` can interrupt it. Shut down on exit."""
    manager = KernelManager(kernel_name="python3")
    manager.start_kernel(env=env)
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        client.manager = manager
        if load:
            assert run(client, "%load_ext deepinfra_magic").error is None
        yield client
    finally:
        client.stop_channels()
        if manager.has_kernel:
            manager.shutdown_kernel(now=True)


def magic_process_env(url: str, root: Path, *, key: str | None = CANARY_KEY) -> dict[str, str]:
    """``os.environ`` for a child process (kernel, ipython, python) of the magics' tests: the
    fake server, the key (None: no key), its own IPYTHONDIR (``root/ipython``, so the history
    database can be read) and catalog cache (``root/xdg-cache``)."""
    env = {k: v for k, v in os.environ.items() if k not in MAGIC_ENV_VARS}
    env["DEEPINFRA_BASE_URL"] = url
    if key is not None:
        env["DEEPINFRA_API_KEY"] = key
    env["IPYTHONDIR"] = str(root / "ipython")
    env["XDG_CACHE_HOME"] = str(root / "xdg-cache")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


# --- the fake server's log ------------------------------------------------------------------------


def chat_bodies(server: FakeDeepInfra) -> list[dict[str, Any]]:
    """JSON bodies of the chat completion requests the server received, in order."""
    return [r.json for r in server.requests if r.path == CHAT_PATH]


def paths(server: FakeDeepInfra) -> list[str]:
    """``METHOD path`` of every API request the server received, in order."""
    return [f"{r.method} {r.path}" for r in server.requests]


# --- captured display messages --------------------------------------------------------------------


def display_id(output: RichOutput) -> str | None:
    """The display id of a captured output (None for a plain display)."""
    transient = output.transient or {}
    return transient.get("display_id")


def notebook_view(outputs: Iterable[RichOutput]) -> list[RichOutput]:
    """What a notebook shows once the messages are applied, as JupyterLab and nbclient
    apply them: an update replaces every output shown under its display id, and an
    output whose bundle is empty renders nothing (so it is left out here)."""
    shown: list[RichOutput] = []
    for output in outputs:
        ident = display_id(output)
        if output.update:
            shown = [
                RichOutput(output.data, output.metadata, output.transient)
                if display_id(old) == ident
                else old
                for old in shown
            ]
        else:
            shown.append(output)
    return [output for output in shown if output.data]


def console_view(outputs: Iterable[RichOutput]) -> list[str]:
    """What jupyter console prints: the text/plain of each fresh display, as it arrives
    (it ignores ``update_display_data``)."""
    return [str(o.data[PLAIN]) for o in outputs if not o.update and PLAIN in o.data]


@dataclass
class Reply:
    """The display messages of one ``%%deepinfra`` cell, and what a notebook shows of them:
    the finished reply (reasoning, answer or note) then the footer."""

    outputs: list[RichOutput]
    placeholder: RichOutput = field(init=False)
    shown: list[RichOutput] = field(init=False)

    def __post_init__(self) -> None:
        assert self.outputs, "the magic published nothing"
        self.placeholder = self.outputs[0]
        self.shown = notebook_view(self.outputs)

    def messages_for(self, ident: str | None) -> list[RichOutput]:
        """Every message that shows or updates display ``ident``."""
        return [o for o in self.outputs if display_id(o) == ident]

    @property
    def live(self) -> list[RichOutput]:
        """The live updates that carried text (the finished reply's updates carry our
        metadata; live ones carry none)."""
        return [o for o in self.outputs if o.update and o.data and not o.metadata]

    @property
    def answer(self) -> list[RichOutput]:
        """The outputs that show the finished answer (or note), in order: a long reply ends
        cut at block boundaries over the outputs it streamed in."""
        parts = self.shown[:-1] if len(self.shown) > 1 else self.shown
        return [
            part
            for part in parts
            if not str(part.data.get(MARKDOWN, part.data.get(PLAIN, ""))).startswith(("💭", ">"))
        ]

    @property
    def footer(self) -> RichOutput:
        """The last output shown: the footer line."""
        return self.shown[-1]

    @property
    def final(self) -> RichOutput:
        """The end of the finished answer (or note) as shown: the output before the footer."""
        return self.shown[-2] if len(self.shown) > 1 else self.shown[-1]

    @property
    def final_text(self) -> str:
        """The final answer as plain text (all its parts)."""
        return "".join(str(part.data[PLAIN]) for part in self.answer)

    @property
    def metadata(self) -> dict[str, Any]:
        """Our metadata on the final answer."""
        info: dict[str, Any] = self.final.metadata[METADATA_KEY]
        return info

    @property
    def footer_text(self) -> str:
        """The footer line as plain text."""
        return str(self.footer.data[PLAIN])


def images_in(outputs: Iterable[RichOutput]) -> list[RichOutput]:
    """Captured outputs that carry an image."""
    return [o for o in outputs if any(mime in o.data for mime in IMAGE_TYPES)]


def all_text(outputs: Iterable[RichOutput]) -> str:
    """Every string value of every bundle and metadata, for leak checks."""
    parts: list[str] = []
    for output in outputs:
        parts.extend(str(value) for value in output.data.values())
        parts.append(repr(output.metadata))
    return "\n".join(parts)


class InterruptingPublisher(CapturingDisplayPublisher):
    """IPython's capturing publisher, with Ctrl-C arriving while update number
    ``interrupt_at`` is being published (that update is lost, as a real interrupt would
    lose it); later messages are captured normally."""

    def __init__(self, interrupt_at: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.interrupt_at = interrupt_at
        self.updates_seen = 0

    def publish(
        self,
        data: dict[str, Any],
        metadata: dict[str, Any] | None = None,
        source: Any = None,
        *,
        transient: dict[str, Any] | None = None,
        update: bool = False,
    ) -> None:
        if update:
            self.updates_seen += 1
            if self.updates_seen == self.interrupt_at:
                raise KeyboardInterrupt
        super().publish(data, metadata, transient=transient, update=update)

    @property
    def rich_outputs(self) -> list[RichOutput]:
        """The captured messages as ``RichOutput`` objects (as ``capture_output`` gives)."""
        return [RichOutput(**kwargs) for kwargs in self.outputs]


# --- a kernel over ZMQ ----------------------------------------------------------------------------


@dataclass
class Execution:
    """What one execute request produced on IOPub, and its reply."""

    reply: dict[str, Any]
    messages: list[dict[str, Any]]

    def of_type(self, *types: str) -> list[dict[str, Any]]:
        """IOPub messages of the given types, in order."""
        return [m for m in self.messages if m["msg_type"] in types]

    @property
    def error(self) -> dict[str, Any] | None:
        """The content of the ``error`` message, if the cell failed."""
        errors = self.of_type("error")
        return errors[-1]["content"] if errors else None

    @property
    def stdout(self) -> str:
        """Everything the cell wrote to stdout."""
        return "".join(
            m["content"]["text"] for m in self.of_type("stream") if m["content"]["name"] == "stdout"
        )

    def console_text(self) -> str:
        """What jupyter console prints: streams, the text/plain of fresh displays and
        results, and errors, in order; it ignores ``update_display_data``."""
        parts: list[str] = []
        for message in self.messages:
            kind, content = message["msg_type"], message["content"]
            if kind == "stream":
                parts.append(content["text"])
            elif kind in ("display_data", "execute_result") and PLAIN in content["data"]:
                parts.append(content["data"][PLAIN] + "\n")
            elif kind == "error":
                parts.append("\n".join(content["traceback"]) + "\n")
        return "".join(parts)

    def notebook_outputs(self) -> list[dict[str, Any]]:
        """The cell's outputs as a notebook shows them: updates applied by display id (as
        nbclient and JupyterLab do), outputs left with an empty bundle dropped."""
        outputs: list[dict[str, Any]] = []
        for message in self.messages:
            kind, content = message["msg_type"], message["content"]
            ident = (content.get("transient") or {}).get("display_id")
            if kind == "update_display_data":
                for output in outputs:
                    if output.get("display_id") == ident:
                        output.update(data=content["data"], metadata=content["metadata"])
            elif kind in ("display_data", "execute_result", "stream", "error"):
                outputs.append({"output_type": kind, "display_id": ident, **content})
        return [o for o in outputs if o["output_type"] != "display_data" or o["data"]]


def collect(
    kc: Any, msg_id: str, timeout: float = 60.0, seen: list[dict[str, Any]] | None = None
) -> Execution:
    """IOPub messages of request ``msg_id`` until the kernel goes idle, then its reply."""
    messages = list(seen or [])
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"the kernel did not finish request {msg_id} in {timeout} s")
        try:
            message = kc.get_iopub_msg(timeout=remaining)
        except queue.Empty:
            continue
        if message["parent_header"].get("msg_id") != msg_id:
            continue
        messages.append(message)
        if message["msg_type"] == "status" and message["content"]["execution_state"] == "idle":
            break
    reply = kc.get_shell_msg(timeout=timeout)
    while reply["parent_header"].get("msg_id") != msg_id:
        reply = kc.get_shell_msg(timeout=timeout)
    return Execution(reply, messages)


def run(kc: Any, code: str, timeout: float = 60.0) -> Execution:
    """Execute ``code`` in the kernel and wait until it is done."""
    return collect(kc, kc.execute(code, allow_stdin=False), timeout)
