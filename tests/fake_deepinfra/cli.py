"""Out of process: ``python -m tests.fake_deepinfra`` (``main``) and the helper that starts
it as a subprocess for benchmarks. ``--help`` says which URL a client takes and lists the
``/_fake/*`` controls (:data:`CONTROL_ENDPOINTS`, each answered by ``FakeDeepInfra.control``)."""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn, get_args

from .catalog import DEFAULT_CATALOG, CatalogModel
from .server import FakeDeepInfra
from .wire import CONTROL_PREFIX, URL_LINE_PREFIX, ImageSize, ImageStyle

# --------------------------------------------------------------------------------------------
# Running in a separate process

_REPO_ROOT = Path(__file__).resolve().parents[2]
_CLI_FIELDS = (
    "token_delay",
    "first_byte_delay",
    "reply_tokens",
    "image_style",
    "image_size",
    "image_delay",
    "max_concurrent",
)


# The controls of a running server, as ``FakeDeepInfra.control`` answers them: each POST
# takes the keyword arguments of the method of the same name as a JSON object.
CONTROL_ENDPOINTS = {
    f"GET {CONTROL_PREFIX}log": "every request, disconnect and the peak concurrency, as JSON",
    f"POST {CONTROL_PREFIX}reset": "forget faults, scripts, files, logs; start config again",
    f"POST {CONTROL_PREFIX}config": 'change config fields, e.g. {"token_delay": 0.05}',
    f"POST {CONTROL_PREFIX}fault": 'queue a fault, e.g. {"status": 502, "body_style": "html"}',
    f"POST {CONTROL_PREFIX}script": 'queue a canned reply, e.g. {"text": "Hi", "match": "hello"}',
    f"POST {CONTROL_PREFIX}wait_for_disconnect": 'wait for clients to hang up, {"timeout": 5}',
    f"POST {CONTROL_PREFIX}wait_streams_closed": 'wait until no response is open, {"timeout": 5}',
}


def _help_epilog() -> str:
    """How to point a client at the server, its controls, and its vision models."""
    vision = ", ".join(entry.name for entry in DEFAULT_CATALOG if entry.is_vision)
    controls = "\n".join(f"  {name:<36} {what}" for name, what in CONTROL_ENDPOINTS.items())
    return (
        f"It prints {URL_LINE_PREFIX}http://127.0.0.1:PORT, then serves until SIGTERM or "
        "Ctrl-C.\nClients take that URL plus /v1/openai, DeepInfra's OpenAI-compatible "
        "root:\n  DEEPINFRA_BASE_URL=http://127.0.0.1:PORT/v1/openai  (any non-empty key "
        f"works)\n\nControls, under that URL (not under /v1/openai):\n{controls}\n\n"
        f"The default catalog has text, image and vision models (vision: {vision})."
    )


def _json_default(value: Any) -> Any:
    """JSON forms of config values that json cannot encode by itself."""
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, CatalogModel):
        return value.to_json()
    raise TypeError(f"cannot send {type(value).__name__} to the fake server")


def start_subprocess_server(**config: Any) -> tuple[str, subprocess.Popen[str]]:
    """Run the server in its own process (``python -m tests.fake_deepinfra``); returns its URL
    and the process, which the caller ends with ``terminate()`` and ``wait()``."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.fake_deepinfra",
            "--config",
            json.dumps(config, default=_json_default),
        ],
        cwd=_REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    with process.stdout:
        line = process.stdout.readline().strip()
    if not line.startswith(URL_LINE_PREFIX):
        process.kill()
        process.wait()
        raise RuntimeError(f"fake server did not start (printed {line!r})")
    return line.removeprefix(URL_LINE_PREFIX), process


def _interrupt(signum: int, frame: FrameType | None) -> NoReturn:
    """Turn SIGTERM into KeyboardInterrupt so the server shuts down the same way as on Ctrl-C."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    """Command line: serve until SIGTERM/SIGINT, after printing the URL line."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.fake_deepinfra",
        description="Fake DeepInfra API on 127.0.0.1.",
        epilog=_help_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--token-delay", type=float)
    parser.add_argument("--first-byte-delay", type=float)
    parser.add_argument("--reply-tokens", type=int)
    parser.add_argument("--image-style", choices=get_args(ImageStyle))
    parser.add_argument("--image-size", choices=get_args(ImageSize))
    parser.add_argument("--image-delay", type=float)
    parser.add_argument("--max-concurrent", type=int)
    parser.add_argument(
        "--config", type=json.loads, default={}, help="JSON object of any config fields"
    )
    args = parser.parse_args(argv)
    config = dict(args.config)
    config.update(
        {name: getattr(args, name) for name in _CLI_FIELDS if getattr(args, name) is not None}
    )

    signal.signal(signal.SIGTERM, _interrupt)
    server = FakeDeepInfra(port=args.port, **config)
    print(f"{URL_LINE_PREFIX}{server.url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
