"""Out of process: ``python -m tests.fake_deepinfra`` (``main``) and the helper that starts
it as a subprocess for benchmarks."""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn, get_args

from .catalog import CatalogModel
from .server import FakeDeepInfra
from .wire import URL_LINE_PREFIX, ImageSize, ImageStyle

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
        prog="python -m tests.fake_deepinfra", description="Fake DeepInfra API on 127.0.0.1."
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
