"""Argument parsing for the magics: clear one-line UsageErrors, literal prompts.

Rules kept here:

* A magic's options are declared right above it in its family's module, with
  ``@magic_arguments`` and one ``@argument`` line each, in IPython's own style; the body
  reads its line through the method, ``parse_argstring(self.deepinfra, line)``. There is no
  table of parsers.
* A :class:`MagicParser` is built on a magic's first use (or its ``?``), not when the
  magics register: ``%load_ext`` builds none.
* IPython's own ``arg_split`` keeps quote characters inside tokens, so the parser is
  IPython's ``MagicArgumentParser`` reading the line with ``shlex`` instead.
* Every mistake is one ``UsageError`` line that names the option and what it takes.
* Every magic's ``-p KEY=VALUE`` refuses the same names, :data:`RESERVED_PARAMS` (the
  fields the magics set themselves), before any request; the advice names the magic's own
  option when it has one.
* Only the standard library and IPython's parser are imported: this loads with the magics.
"""

from __future__ import annotations

import argparse
import json
import keyword
import re
import shlex
import string
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, NoReturn, TypeVar

from IPython.core.error import UsageError
from IPython.core.magic_arguments import MagicArgumentParser

from .._text import redact

__all__ = [
    "RESERVED_PARAMS",
    "DeclaredParser",
    "MagicParser",
    "Reserved",
    "argument",
    "bounded_float",
    "bounded_int",
    "check_variable_name",
    "fill_variables",
    "magic_arguments",
    "parse_argstring",
    "parse_params",
    "parser_of",
    "split_options_and_prompt",
]

F = TypeVar("F", bound=Callable[..., None])


class MagicParser(MagicArgumentParser):
    """IPython's magic parser that keeps quotes out of values (``shlex``), never
    abbreviates options, and puts the usage line into its one-line UsageError."""

    def __init__(self, prog: str, description: str = "") -> None:
        super().__init__(  # type: ignore[no-untyped-call]  # IPython's is untyped
            prog=prog, description=description, formatter_class=argparse.HelpFormatter
        )
        self.allow_abbrev = False
        self.exit_on_error = False

    def parse_argstring(self, argstring: str, *, partial: bool = False) -> Any:
        """IPython's entry point, with shell-like quoting (see :meth:`parse_line`)."""
        if partial:
            return self.parse_known_args(shlex.split(argstring))
        return self.parse_line(argstring)

    def error(self, message: str) -> NoReturn:
        # argparse wraps a long usage over several lines: keep the error on one line. An
        # unknown ``--api-key sk-…`` is echoed by argparse: mask what looks like a key.
        usage = " ".join(self.format_usage().split()).removeprefix("usage: ")
        raise UsageError(f"{self.prog}: {redact(message)}. Usage: {usage}")

    def parse_line(self, line: str) -> argparse.Namespace:
        """Parse a magic's option line, with shell-like quoting."""
        try:
            tokens = shlex.split(line)
        except ValueError as exc:
            self.error(f"cannot read the options ({exc}); check the quotes")
        return self.parse_tokens(tokens)

    def parse_tokens(self, tokens: list[str]) -> argparse.Namespace:
        """Parse already split tokens; argparse's own errors become UsageErrors."""
        try:
            return self.parse_args(tokens)
        except argparse.ArgumentError as exc:
            self.error(str(exc))

    def has_option(self, option: str) -> bool:
        """True when this magic takes ``option`` (e.g. ``--temperature``)."""
        return option in self._option_string_actions

    def takes_value(self, option: str) -> bool:
        """True when ``option`` (e.g. ``-m``) expects a value after it."""
        action = self._option_string_actions.get(option)
        return action is not None and action.nargs != 0


def bounded_float(low: float, high: float | None = None) -> Callable[[str], float]:
    """argparse type: a number within [low, high], with a message saying so."""
    allowed = f"a number from {low:g} to {high:g}" if high is not None else f"a number ≥ {low:g}"

    def convert(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {allowed}, got {text!r}") from None
        if value < low or (high is not None and value > high) or value != value:
            raise argparse.ArgumentTypeError(f"expected {allowed}, got {text!r}")
        return value

    return convert


def bounded_int(low: int, high: int | None = None) -> Callable[[str], int]:
    """argparse type: a whole number within [low, high], with a message saying so."""
    allowed = (
        f"a whole number from {low} to {high}" if high is not None else f"a whole number ≥ {low}"
    )

    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {allowed}, got {text!r}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"expected {allowed}, got {text!r}")
        return value

    return convert


class Reserved(NamedTuple):
    """A request field the magics set themselves: the option that sets it (``-t`` and
    ``--temperature`` as ``"-t/--temperature"``), and what to say to a magic without it."""

    option: str | None
    otherwise: str


# The one list every magic's -p/--param is held to.
RESERVED_PARAMS: Mapping[str, Reserved] = {
    "model": Reserved("-m/--model", "the magic picks the model"),
    "temperature": Reserved("-t/--temperature", "it is a chat setting (%%deepinfra -t)"),
    "max_tokens": Reserved("--max-tokens", "it is a chat setting (%%deepinfra --max-tokens)"),
    "system": Reserved("-s/--system", "it is a chat setting (%%deepinfra -s)"),
    "messages": Reserved(
        None, "the cell body is the prompt (-s/--system, --new and max_history shape the rest)"
    ),
    "stream": Reserved("--no-stream", "the magic decides how answers arrive"),
    "prompt": Reserved(None, "write the prompt after the options, or in the cell body"),
    "n": Reserved("-n/--num-images", "a cell gets one reply (images: %deepinfra_image -n N)"),
    "num_images": Reserved("-n/--num-images", "use %deepinfra_image -n N"),
    "heartbeat": Reserved(None, "it is not a request field"),
}


def parse_params(
    pairs: list[str] | None, parser: MagicParser, option: str = "-p/--param"
) -> dict[str, Any]:
    """``KEY=VALUE`` pairs; a value is JSON when it parses (``0.9``, ``["\\n"]``), else text.

    A key in :data:`RESERVED_PARAMS` is refused in one line naming ``parser``'s own option
    for it (every magic that takes ``-p`` passes its parser)."""
    params: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"{option} expects KEY=VALUE (e.g. -p top_p=0.9), got {pair!r}.")
        if key in RESERVED_PARAMS:
            raise UsageError(
                f"{option} cannot set {key}: {_instead(RESERVED_PARAMS[key], parser)}."
            )
        try:
            params[key] = json.loads(value)
        except ValueError:
            params[key] = value
    return params


def _instead(field: Reserved, parser: MagicParser) -> str:
    """What to do instead: the magic's own option for the field, else the field's note."""
    if field.option is not None and parser.has_option(field.option.split("/")[-1]):
        return f"use {field.option}"
    return field.otherwise


def argument(*flags: str, exclusive: str | None = None, **options: Any) -> Callable[[F], F]:
    """Declare one option of the magic below, as IPython's ``@argument`` does; options
    sharing an ``exclusive`` name form a mutually exclusive group."""

    def declare(method: F) -> F:
        declared: list[Any] = method.__dict__.setdefault("arguments", [])
        declared.insert(0, (flags, exclusive, options))  # decorators apply bottom-up
        return method

    return declare


class DeclaredParser:
    """A magic's options as declared above it; the :class:`MagicParser` is built on first
    use, so registering the magics builds no parser (``%load_ext`` stays light)."""

    def __init__(self, prog: str, description: str, arguments: list[Any]) -> None:
        self.prog = prog
        self.description = description
        self.arguments = arguments
        self._built: MagicParser | None = None

    def build(self) -> MagicParser:
        """The parser, built once from the declarations in source order."""
        if self._built is None:
            parser = MagicParser(self.prog, self.description)
            groups: dict[str, Any] = {}
            for flags, exclusive, options in self.arguments:
                target: Any = parser
                if exclusive is not None:
                    if exclusive not in groups:
                        groups[exclusive] = parser.add_mutually_exclusive_group()
                    target = groups[exclusive]
                target.add_argument(*flags, **options)
            self._built = parser
        return self._built

    def parse_argstring(self, argstring: str, *, partial: bool = False) -> Any:
        """What IPython's ``parse_argstring(magic, line)`` calls on ``magic.parser``."""
        return self.build().parse_argstring(argstring, partial=partial)


def magic_arguments(prog: str, description: str = "") -> Callable[[F], F]:
    """Declare the parser of the magic below from its ``@argument`` lines, as IPython's
    ``@magic_arguments`` does. ``%magic?`` shows the usage generated from it (IPython's
    inspector asks the magic's ``getdoc``), so nothing hand-written drifts; the body
    parses with ``parse_argstring(self.magic, line)``."""

    def attach(method: F) -> F:
        declared = DeclaredParser(prog, description, method.__dict__.pop("arguments", []))
        summary = (method.__doc__ or "").rstrip()

        def usage() -> str:
            return f"{summary}\n\n{declared.build().format_help()}"

        method.parser = declared  # type: ignore[attr-defined]  # as magic_arguments does
        method.getdoc = usage  # type: ignore[attr-defined]  # IPython's oinspect.getdoc
        return method

    return attach


def parser_of(magic: Callable[..., None]) -> MagicParser:
    """The parser :func:`magic_arguments` attached to ``magic`` (a method, bound or not)."""
    declared: DeclaredParser = magic.parser  # type: ignore[attr-defined]
    return declared.build()


def parse_argstring(magic: Callable[..., None], line: str) -> argparse.Namespace:
    """IPython's ``parse_argstring(self.magic, line)``, typed: the magic's own parser
    reads its line."""
    return parser_of(magic).parse_line(line)


def check_variable_name(name: str | None, option: str = "-o/--out") -> None:
    """A name the magic will assign in the notebook: a Python identifier, not a keyword."""
    if name is not None and (not name.isidentifier() or keyword.iskeyword(name)):
        raise UsageError(f"{option} needs a Python variable name, got {name!r}.")


def fill_variables(text: str, namespace: Mapping[str, Any]) -> str:
    """Opt-in templating for ``--vars``: ``{name}`` from the namespace, ``{{``/``}}`` literal."""
    formatter = string.Formatter()
    try:
        fields = [name for _, name, _, _ in formatter.parse(text) if name is not None]
    except ValueError as exc:
        raise UsageError(
            f"--vars: the prompt is not a valid template ({exc}); write {{{{ and }}}} for "
            "literal braces."
        ) from None
    for name in fields:
        root = re.split(r"[.\[]", name, maxsplit=1)[0]
        if not root.isidentifier():
            raise UsageError(
                f"--vars: {{{name}}} is not a variable name; "
                "write {{ and }} for literal braces."
            )
        if root not in namespace:
            raise UsageError(
                f"--vars: {{{name}}} is not defined in the notebook; define {root} first or "
                "drop --vars."
            )
    try:
        return _fill(formatter, text, dict(namespace))
    except (AttributeError, IndexError, KeyError, TypeError, ValueError) as exc:
        raise UsageError(f"--vars: cannot fill the prompt ({exc}).") from None


def _fill(formatter: string.Formatter, text: str, namespace: dict[str, Any]) -> str:
    """``text`` with its fields filled; a value that is a fenced block (``{Err}``, a
    traceback) goes on lines of its own wherever its field stands, so it stays a block."""
    filled: list[str] = []
    after_block = False
    for literal, name, spec, conversion in formatter.parse(text):
        if after_block and literal and not literal.startswith("\n"):
            filled.append("\n")
        filled.append(literal)
        if name is None:
            continue
        value = formatter.convert_field(formatter.get_field(name, (), namespace)[0], conversion)
        piece = formatter.format_field(value, formatter.vformat(spec or "", (), namespace))
        after_block = piece.startswith("```")
        before = "".join(filled)
        if after_block and before and not before.endswith("\n"):
            filled.append("\n")
        filled.append(piece)
    return "".join(filled)


_TOKEN = re.compile(r"""\s*("(?:[^"\\]|\\.)*"|'[^']*'|\S+)""")


def split_options_and_prompt(line: str, parser: MagicParser) -> tuple[list[str], str]:
    """Leading option tokens, and the raw rest of the line as the prompt.

    The prompt is never rebuilt from tokens: what the user typed is kept, except that
    one pair of quotes around the whole prompt is removed. ``--`` ends the options.
    """
    tokens: list[str] = []
    position = 0
    expects_value = False
    while True:
        match = _TOKEN.match(line, position)
        if match is None:
            return tokens, ""
        token = match.group(1)
        if expects_value:
            tokens.append(_unquote(token))
            expects_value = False
        elif token == "--":
            return tokens, _strip_quotes(line[match.end() :].strip())
        elif token.startswith("-") and len(token) > 1 and not _is_number(token):
            option, has_inline_value = _option_name(token)
            tokens.append(token)
            expects_value = parser.takes_value(option) and not has_inline_value
        else:
            return tokens, _strip_quotes(line[match.start(1) :].strip())
        position = match.end()


def _option_name(token: str) -> tuple[str, bool]:
    if token.startswith("--"):
        name, sep, _ = token.partition("=")
        return name, bool(sep)
    return token[:2], len(token) > 2


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _unquote(token: str) -> str:
    try:
        parts = shlex.split(token)
    except ValueError:
        return token
    return parts[0] if len(parts) == 1 else token


def _strip_quotes(prompt: str) -> str:
    """Drop one pair of matching quotes that wrap the whole prompt (and nothing else)."""
    if len(prompt) >= 2 and prompt[0] == prompt[-1] and prompt[0] in "\"'":
        inner = prompt[1:-1]
        if prompt[0] not in inner:
            return inner
    return prompt
