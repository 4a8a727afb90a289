"""The conversation family: ``%deepinfra_reset`` and ``%deepinfra_history`` (the
conversation the next chat cell continues), ``%deepinfra_replay`` and ``%deepinfra_record``
(answers from a recording, or every exchange written to one).

Rules kept here:

* The options are declared right above each magic and read through it.
* A recording is checked when named (a clear error now beats one at the first cell), and
  its path is resolved then, so a later ``cd`` does not move it.
* Keys and headers are never written to a recording; replaying needs no key or network.
"""

from __future__ import annotations

import os
from pathlib import Path

from IPython.core.error import UsageError
from IPython.core.magic import magics_class, no_var_expand

from .._config import key_source
from .arguments import argument, bounded_float, magic_arguments, parse_argstring
from .base import Family, display, line_magic, one_line_errors
from .session import absolute_paths, file_names, mode_status

__all__ = ["ConversationMagics", "checked_recording"]


@magics_class
class ConversationMagics(Family):
    """``%deepinfra_reset``, ``%deepinfra_history``, ``%deepinfra_replay`` and
    ``%deepinfra_record``."""

    @line_magic
    @one_line_errors
    def deepinfra_reset(self, line: str) -> None:
        """Start the conversation over (the system prompt stays)."""
        if line.strip():
            raise UsageError("%deepinfra_reset takes no arguments.")
        count = len(self.conversation)
        self.conversation.reset()
        print(f"Conversation cleared ({count} exchange{'s' if count != 1 else ''} forgotten).")

    @line_magic
    @one_line_errors
    def deepinfra_history(self, line: str) -> None:
        """Show the conversation that the next %%deepinfra cell will continue."""
        if line.strip():
            raise UsageError("%deepinfra_history takes no arguments.")
        conversation = self.conversation
        if not conversation.exchanges:
            print("No conversation yet: the next %%deepinfra cell starts one.")
            return
        markdown, plain = display.history_text(conversation)
        self.show(markdown, plain)

    @no_var_expand
    @line_magic
    @one_line_errors
    @magic_arguments("%deepinfra_replay")
    @argument("path", nargs="?", help="a recording file, or 'off'")
    @argument("--speed", type=bounded_float(0.0))
    @argument("--if-no-key", action="store_true")
    @argument(
        "--if-refused",
        action="store_true",
        help="use the recording only for cells a classroom token is refused for",
    )
    def deepinfra_replay(self, line: str) -> None:
        """Answer from a recording: no key, no network. ``off`` stops replaying; no argument
        shows the mode. ``--if-refused``: live, but a cell refused for an expired or spent
        classroom token is answered from the recording (``fallback_replay``)."""
        args = parse_argstring(self.deepinfra_replay, line)
        if args.if_refused:
            if args.path in (None, "off"):
                self.fallback_replay = ""
                print("No fallback: a refused classroom token is the cell's error.")
                return
            self.fallback_replay = checked_recording(absolute_paths(args.path))
            print(
                f"Live; a cell refused for an expired or spent token is answered from "
                f"{file_names(self.fallback_replay)} (marked replayed)."
            )
            return
        if args.speed is not None:
            self.replay_speed = args.speed
        if args.path is None:
            print(self._mode_status())
            return
        if args.path == "off":
            self.replay = ""
            print("Replay off: requests go to the API.")
            return
        path = absolute_paths(args.path)
        if args.if_no_key and (self.session.login or key_source()):
            self.replay = ""
            print(f"A key is set, so requests go to the API live ({file_names(path)} not used).")
            return
        self.replay = checked_recording(path)  # a clear error now beats one later
        print(
            f"Replaying {file_names(self.replay)}: answers come from the recording (no key needed)."
        )

    @no_var_expand
    @line_magic
    @one_line_errors
    @magic_arguments("%deepinfra_record")
    @argument("path", nargs="?", help="a recording file, or 'off'")
    def deepinfra_record(self, line: str) -> None:
        """Record every exchange into a file for replay (``off`` stops). Keys and headers
        are never written."""
        args = parse_argstring(self.deepinfra_record, line)
        if args.path is None:
            print(self._mode_status())
            return
        if args.path == "off":
            self.record = ""
            print("Recording off.")
            return
        self.record = absolute_paths(args.path)
        self.session.record_catalog()
        print(f"Recording to {Path(self.record).name} (keys and headers are never written).")

    def _mode_status(self) -> str:
        """Where answers come from now, as the line to print."""
        return mode_status(self.replay, self.record, self._replay_speed)


def checked_recording(paths: str) -> str:
    """``paths`` once every recording in it loads (else its one-line error)."""
    from ..recording import Recording

    Recording.load(*paths.split(os.pathsep))
    return paths
