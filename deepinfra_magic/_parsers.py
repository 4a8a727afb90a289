"""The magics' option parsers, one per magic, and what each magic's options may not set.

Each parser is attached to its magic with :func:`documented`, so ``%%deepinfra?`` shows
the usage argparse generates from it (as IPython's ``magic_arguments`` does).
"""

from __future__ import annotations

import argparse
import functools
import keyword
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from IPython.core.error import UsageError

from ._args import MagicParser, bounded_float, bounded_int
from .errors import DeepInfraError

__all__ = [
    "CHAT_RESERVED",
    "IMAGE_RESERVED",
    "PARSERS",
    "check_variable_name",
    "documented",
    "image_fields",
    "one_line_errors",
    "one_line_interrupt",
]

F = TypeVar("F", bound=Callable[..., None])


# Request fields the magics set themselves, and the option that sets each one.
CHAT_RESERVED = {
    "temperature": "use -t/--temperature",
    "max_tokens": "use --max-tokens",
    "model": "use -m/--model",
    "messages": "the cell body is the prompt (-s/--system, --new and max_history shape the rest)",
    "stream": "use --no-stream to wait for the whole reply",
}
IMAGE_RESERVED = {
    "prompt": "write the prompt after the options",
    "model": "use -m/--model",
    "n": "use -n/--num-images",
    "num_images": "use -n/--num-images",
    "heartbeat": "it is not a request field",
}


def chat_parser() -> MagicParser:
    parser = MagicParser("%%deepinfra", "Chat with a DeepInfra model; the cell is the prompt.")
    parser.add_argument("-m", "--model", help="model name (default: DeepInfraMagics.default_model)")
    parser.add_argument("-s", "--system", help="system prompt for this cell")
    parser.add_argument("-t", "--temperature", type=bounded_float(0.0, 2.0))
    parser.add_argument("--max-tokens", type=bounded_int(1))
    parser.add_argument("-p", "--param", action="append", metavar="KEY=VALUE")
    parser.add_argument("--new", action="store_true", help="start a fresh conversation")
    parser.add_argument("--no-stream", action="store_true")
    parser.add_argument("-f", "--format", choices=("markdown", "text", "code"), default="markdown")
    parser.add_argument("-o", "--out", metavar="VAR")
    parser.add_argument("--vars", action="store_true", help="fill {name} from the notebook")
    parser.add_argument("--see", action="append", metavar="EXPR", help="attach a plot or table")
    return parser


def explain_parser() -> MagicParser:
    parser = MagicParser("%deepinfra_explain", "Explain the last error, or cell N's.")
    parser.add_argument("cell", nargs="?", type=bounded_int(1), metavar="N")
    parser.add_argument("-m", "--model")
    parser.add_argument("-f", "--format", choices=("markdown", "text", "code"), default="markdown")
    parser.add_argument("-o", "--out", metavar="VAR")
    parser.add_argument("--no-stream", action="store_true")
    return parser


def image_parser() -> MagicParser:
    parser = MagicParser("%deepinfra_image", "Generate images; options first, then the prompt.")
    parser.add_argument("-m", "--model")
    parser.add_argument("--width", type=bounded_int(64, 4096))
    parser.add_argument("--height", type=bounded_int(64, 4096))
    parser.add_argument("-n", "--num-images", type=bounded_int(1, 16), default=1)
    parser.add_argument("--seed", type=bounded_int(0))
    parser.add_argument("--steps", type=bounded_int(1, 500))
    parser.add_argument("--guidance", type=bounded_float(0.0, 100.0))
    parser.add_argument("--negative", metavar="TEXT")
    parser.add_argument("-p", "--param", action="append", metavar="KEY=VALUE")
    parser.add_argument("--save", metavar="PATH")
    parser.add_argument("-o", "--out", metavar="VAR")
    return parser


def models_parser() -> MagicParser:
    parser = MagicParser("%deepinfra_models", "List DeepInfra's featured models.")
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("--text", action="store_true")
    kind.add_argument("--images", action="store_true")
    kind.add_argument("--vision", action="store_true", help="chat models that can see images")
    parser.add_argument("--refresh", action="store_true")
    parser.add_argument("--pick", action="store_true")
    parser.add_argument("pattern", nargs="?")
    return parser


def replay_parser(name: str) -> MagicParser:
    parser = MagicParser(name)
    parser.add_argument("path", nargs="?", help="a recording file, or 'off'")
    if name == "%deepinfra_replay":
        parser.add_argument("--speed", type=bounded_float(0.0))
        parser.add_argument("--if-no-key", action="store_true")
    return parser


def map_parser() -> MagicParser:
    parser = MagicParser("%%deepinfra_map", "Ask the cell's template for every row of DATA.")
    parser.add_argument("data", metavar="DATA", help="a DataFrame, Series, list or iterable")
    parser.add_argument("-o", "--out", metavar="NAME")
    parser.add_argument("--column", metavar="NAME")
    parser.add_argument("-m", "--model")
    parser.add_argument("-s", "--system")
    parser.add_argument("-t", "--temperature", type=bounded_float(0.0, 2.0))
    parser.add_argument("--max-tokens", type=bounded_int(1))
    parser.add_argument("-p", "--param", action="append", metavar="KEY=VALUE")
    parser.add_argument("--concurrency", type=bounded_int(1, 256))
    parser.add_argument("--batch-api", action="store_true")
    parser.add_argument("--yes", action="store_true", help="send even above map_confirm_dollars")
    return parser


def batches_parser() -> MagicParser:
    parser = MagicParser("%deepinfra_batches", "List Batch API jobs, or collect one by id.")
    parser.add_argument("batch_id", nargs="?", metavar="ID")
    parser.add_argument("--limit", type=bounded_int(1, 100), default=20)
    return parser


PARSERS = {
    "map": map_parser(),
    "batches": batches_parser(),
    "chat": chat_parser(),
    "explain": explain_parser(),
    "image": image_parser(),
    "models": models_parser(),
    "replay": replay_parser("%deepinfra_replay"),
    "record": replay_parser("%deepinfra_record"),
}


def image_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The request fields that ``%deepinfra_image``'s own options set."""
    fields = {
        "width": args.width,
        "height": args.height,
        "seed": args.seed,
        "num_inference_steps": args.steps,
        "guidance_scale": args.guidance,
        "negative_prompt": args.negative,
    }
    return {key: value for key, value in fields.items() if value is not None}


def one_line_errors(method: F) -> F:
    """With ``raise_on_error = False`` a magic's error is shown as its one line and the
    cell ends normally (notebooks that teach errors still run to the end); else raised."""

    @functools.wraps(method)
    def run(self: Any, *args: Any, **kwargs: Any) -> None:
        try:
            method(self, *args, **kwargs)
        except (DeepInfraError, UsageError) as exc:
            if self.raise_on_error:
                raise
            show_error_line(self.shell, f"{type(exc).__name__}: {exc}")

    return run  # type: ignore[return-value]


def show_error_line(shell: Any, line: str) -> None:
    """In a kernel, ``line`` is the cell's display data, which every frontend shows and
    saves (Voilà drops stderr); in a terminal it goes to stderr."""
    if getattr(shell, "kernel", None) is None:
        print(line, file=sys.stderr)
        return
    shell.display_pub.publish(
        data={"text/plain": line}, metadata={"deepinfra_magic": {"error_line": True}}
    )


def one_line_interrupt() -> KeyboardInterrupt:
    """The interrupt that ends a stopped cell: still a ``KeyboardInterrupt`` (Run All stops),
    shown by IPython as one line instead of the magic's frames (its ``_render_traceback_``)."""
    interrupt = KeyboardInterrupt("stopped; what arrived is kept above")
    setattr(interrupt, "_render_traceback_", lambda: [f"KeyboardInterrupt: {interrupt}"])  # noqa: B010
    return interrupt


def documented(parser: MagicParser) -> Callable[[F], F]:
    """Attach ``parser`` to a magic and append its generated usage to the docstring, so
    ``%magic?`` shows every option (nothing hand-written to drift)."""

    def attach(method: F) -> F:
        summary = (method.__doc__ or "").rstrip()
        method.__doc__ = f"{summary}\n\n{parser.format_help()}"
        method.parser = parser  # type: ignore[attr-defined]  # as magic_arguments does
        return method

    return attach


def check_variable_name(name: str | None, option: str = "-o/--out") -> None:
    if name is not None and (not name.isidentifier() or keyword.iskeyword(name)):
        raise UsageError(f"{option} needs a Python variable name, got {name!r}.")
