"""The IPython magics: thin adapters that parse arguments, call the library and show.

Loading this module imports IPython, traitlets and the standard library only; the HTTP
client (httpx) is imported on the first magic that needs it.
"""

from __future__ import annotations

import getpass
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from IPython.core.error import UsageError
from IPython.core.magic import cell_magic, line_cell_magic, line_magic, magics_class, no_var_expand

from . import _cells
from ._args import parse_params, split_options_and_prompt
from ._config import Secret, key_source
from ._parsers import (
    CHAT_RESERVED,
    IMAGE_RESERVED,
    PARSERS,
    check_variable_name,
    documented,
    image_fields,
    one_line_errors,
    one_line_interrupt,
)
from ._pyodide import put_into_next_cell
from ._session import MagicSession, absolute_paths, file_names, mode_status
from ._settings import MagicSettings
from ._watch import CellWatcher
from .conversation import Conversation
from .display import (
    Publisher,
    ReplyView,
    StdoutReplyView,
    history_text,
    markdown_bundle,
    model_picker,
    models_table,
    rich_display_available,
    source_status,
)
from .notebook import CellLog, NotebookReferenceError
from .types import ChatResult

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

    from .client import DeepInfraClient
    from .images import ImageResult
    from .mapping import MapResult

__all__ = ["DeepInfraMagics", "load", "unload"]
T = TypeVar("T")


@magics_class
class DeepInfraMagics(MagicSettings):
    """DeepInfra chat and images in IPython. Settings (``%config DeepInfraMagics``) are
    inherited from ``MagicSettings``; the API key is never one of them (use the
    environment or ``%deepinfra_login``)."""

    def __init__(self, shell: InteractiveShell) -> None:
        # Made before the configuration is applied: its changes call the settings observers.
        self.session = MagicSession(self._client_options)
        super().__init__(shell=shell)
        self.conversation = Conversation(self.system_prompt, self.max_history)
        self.last_response: ChatResult | None = None
        self.last_images: ImageResult | None = None
        self.last_map: MapResult | None = None
        self.cells = CellLog()
        self.watcher = CellWatcher(shell, self.cells, self.conversation, self._explain_hint)

    def client(self) -> DeepInfraClient:
        """The session's client (see ``MagicSession.client``)."""
        return self.session.client()

    def _explain_hint(self) -> None:
        """After a failing cell, when asked: how to ask the model why (no request)."""
        if self.explain_errors:
            hint = "💡 `%deepinfra_explain` asks the model why this cell failed."
            self._show(hint, hint.replace("`", ""))

    @property
    def ip(self) -> InteractiveShell:
        """The shell this instance serves (always set: we are built with one)."""
        assert self.shell is not None
        return self.shell

    # --- display ------------------------------------------------------------------------------

    def _publish(self) -> Publisher:
        publish: Publisher = self.ip.display_pub.publish
        return publish

    def _show(self, markdown: str, plain: str) -> None:
        self._publish()(markdown_bundle(markdown, plain), {})

    def _rich(self) -> bool:
        if self.display_mode == "auto":
            return rich_display_available(self.ip)
        return self.display_mode == "markdown"

    # --- %%deepinfra ------------------------------------------------------------------------

    @no_var_expand
    @cell_magic
    @one_line_errors
    @documented(PARSERS["chat"])
    def deepinfra(self, line: str, cell: str) -> None:
        """Chat with a DeepInfra model; the cell body is the prompt, streamed back live.

        Each cell sees the previous exchanges (``max_history``); re-running a cell replaces
        its earlier exchange; ``--new`` or ``%deepinfra_reset`` start over. ``-f code`` puts
        the first code block of the reply into the next cell. ``--vars`` fills ``{name}``,
        ``{In[3]}``, ``{Out[3]}``, ``{Err[3]}`` and ``{Err}`` from the notebook. ``--see``
        attaches a figure (or ``plt``), image, array, file, ``Out[n]``, ``cell:n`` or
        DataFrame. Ctrl-C stops the reply and keeps what arrived. An image model makes an
        image.
        """
        args = PARSERS["chat"].parse_line(line)
        check_variable_name(args.out)
        prompt = cell.strip("\n")
        if not prompt.strip():
            raise UsageError(
                "%%deepinfra: the cell is empty; write the prompt below the magic line."
            )
        if args.vars:
            prompt = _cells.fill_template(prompt, self.ip, self.cells)
        attachments = _cells.collect_attachments(
            args.see or [], self.ip.user_ns, self.ip.user_global_ns, self.cells,
            self.max_image_pixels,
        )  # fmt: skip
        params = parse_params(args.param, reserved=CHAT_RESERVED)
        client, catalog, model = self.session.pick_model(args.model, self.default_model)
        if catalog is not None and catalog.is_image_model(model):
            _cells.check_image_from_chat(model, bool(attachments), params)
            self._show_images(client, _cells.ImageCall(prompt, model, 1, params), args.out)
            return
        can_see = _cells.check_can_see(model, attachments, catalog)
        if args.new:
            self.conversation.reset()
        self._converse(
            client, _cells.ChatTurn.asking(prompt, model, params, can_see, attachments), args
        )

    def _converse(self, client: DeepInfraClient, turn: _cells.ChatTurn, args: Any) -> None:
        """Send one exchange in this cell's place in the conversation and stream it back."""
        prompt, content, model = turn.prompt, turn.content, turn.model
        cell_id = self.cells.current and self.cells.current + turn.topic
        system = getattr(args, "system", None)
        messages = self.conversation.messages(content, system, cell=cell_id, images=turn.can_see)
        temperature = _given(getattr(args, "temperature", None), self.temperature)
        max_tokens = _given(getattr(args, "max_tokens", None), self.max_tokens)
        view: ReplyView | StdoutReplyView
        if self._rich():
            view = ReplyView(self._publish(), model, self.update_interval, args.format != "text")
        else:
            view = StdoutReplyView(model, self.update_interval)
        call = _cells.ChatCall(
            messages, model, temperature, max_tokens, turn.params, not args.no_stream
        )
        outcome = _cells.stream_reply(client, view, call)
        result: ChatResult = outcome.value
        timing = not (result.replayed and self._replay_speed() == 0)
        note, footer, code = _cells.reply_ending(result, args.format, timing)
        if code is not None and not put_into_next_cell(self.ip, code):
            note = "*No new cell can be added here: the code is in the reply above.*"
        if footer and turn.attachments:
            from .attachments import summary

            footer += " · " + summary(turn.attachments)
        view.finish(footer, result.metadata(), note, text=result.text, reasoning=result.reasoning)
        self.last_response = result
        if args.out:
            self.ip.user_ns[args.out] = result
        if result.complete:
            sent = None if content == prompt else content
            self.conversation.add(prompt, result.text, result.model, cell=cell_id, content=sent)
        self._end(outcome)

    @no_var_expand
    @line_magic
    @one_line_errors
    @documented(PARSERS["explain"])
    def deepinfra_explain(self, line: str) -> None:
        """Explain the last error, cell N's, or inside ``except`` the one being handled.
        Sends the cell's source and its traceback; ``-f code`` puts the fix into the next cell."""
        from .notebook import explain_prompt

        args = PARSERS["explain"].parse_line(line)
        check_variable_name(args.out)
        handled = sys.exc_info()[1]
        if args.cell is None and isinstance(handled, Exception):
            self.watcher.file_handled(handled)
        try:
            error = self.cells.error_for(args.cell)
        except NotebookReferenceError as exc:
            raise UsageError(f"%deepinfra_explain: {exc}") from None
        client, catalog, model = self.session.pick_model(args.model, self.default_model, warn=False)
        can_see = _cells.check_can_see(model, [], catalog)
        prompt = f"Explain the error of In [{error.count}]"
        content = explain_prompt(error)
        # Outside notebooks a cell is known by its text: the same "%deepinfra_explain" about
        # another error is another exchange, about the same error a re-run.
        turn = _cells.ChatTurn(
            prompt, content, model, can_see=can_see, topic=f"#error-{error.count}"
        )
        self._converse(client, turn, args)

    @no_var_expand
    @line_cell_magic
    @one_line_errors
    @documented(PARSERS["image"])
    def deepinfra_image(self, line: str, cell: str | None = None) -> None:
        """Generate images from a prompt and show them inline: options first, then the
        rest of the line is the prompt, as typed (``--`` ends the options). As a cell magic,
        the cell body is the prompt."""
        parser = PARSERS["image"]
        if cell is None:
            tokens, prompt = split_options_and_prompt(line, parser)
            args = parser.parse_tokens(tokens)
        else:
            args = parser.parse_line(line)
            prompt = cell.strip()
        check_variable_name(args.out)
        if not prompt.strip():
            raise UsageError(
                "%deepinfra_image: no prompt. Usage: %deepinfra_image [options] PROMPT "
                "(or put the prompt in the cell body of %%deepinfra_image)."
            )
        extra = {**image_fields(args), **parse_params(args.param, reserved=IMAGE_RESERVED)}
        client, catalog, model = self.session.pick_model(
            args.model, self.default_image_model, image=True
        )
        _cells.check_image_model(client, catalog, model)
        self._show_images(
            client, _cells.ImageCall(prompt, model, args.num_images, extra, args.save), args.out
        )

    def _show_images(
        self, client: DeepInfraClient, call: _cells.ImageCall, out: str | None
    ) -> None:
        outcome = _cells.make_images(client, self._publish(), self._rich(), call)
        if outcome.value is not None:
            self.last_images = outcome.value
            if out:
                self.ip.user_ns[out] = outcome.value
        self._end(outcome)

    def _end(self, outcome: _cells.Outcome) -> None:
        """After a cell kept what arrived: raise a fresh interrupt (its traceback is this
        cell's, not a worker thread's) unless told not to, or the error."""
        if outcome.interrupted:
            if self.raise_on_interrupt:
                raise one_line_interrupt() from None
        elif outcome.problem is not None:
            raise outcome.problem

    # --- %%deepinfra_map, %deepinfra_batches, %deepinfra_usage -----------------------------

    @no_var_expand
    @cell_magic
    @one_line_errors
    @documented(PARSERS["map"])
    def deepinfra_map(self, line: str, cell: str) -> None:
        """Ask the cell (a template) for every row of DATA, many requests at once.

        ``{column}`` fills in a DataFrame's columns; ``{}`` or ``{item}`` each item. Answers
        are kept on disk: a re-run sends only rows without one. ``--batch-api`` submits the
        rows to DeepInfra's Batch API (24 h, 20% cheaper). Ctrl-C keeps finished rows.
        """
        from .map_display import MapProgressView

        args = PARSERS["map"].parse_line(line)
        check_variable_name(args.out)
        check_variable_name(args.column, "--column")
        data = _cells.map_data(self.ip.user_ns, args.data, args.column)
        template = cell.strip("\n")
        if not template.strip():
            raise UsageError(
                "%%deepinfra_map: the cell is empty; write the prompt, with {column} or {} fields."
            )
        client, catalog, model = self.session.pick_model(args.model, self.default_model, warn=False)
        if catalog is not None and catalog.is_image_model(model):
            raise UsageError(f"%%deepinfra_map: {model} is an image model; pick a text model.")
        temperature = _given(args.temperature, self.temperature)
        max_tokens = _given(args.max_tokens, self.max_tokens)
        job = client.plan_map(
            data, template, model, system=args.system, temperature=temperature,
            max_tokens=max_tokens, **parse_params(args.param),
        )  # fmt: skip
        call = _cells.MapCall(
            args.concurrency or self.map_concurrency, args.batch_api,
            self.batch_poll_interval, self.map_confirm_dollars, args.yes,
        )  # fmt: skip
        estimate = _cells.confirm_cost(job, catalog, call)
        view = MapProgressView(self._publish(), model, self._progress_mode())
        outcome = _cells.run_map(client, job, view, call, [estimate] if estimate else [])
        result = self.last_map = outcome.value
        if args.out:
            self.ip.user_ns[args.out] = result.output()
        if args.column:
            data[args.column] = result.values  # by position: an index may repeat labels
        self._end(outcome)  # a plain interrupt, like %%deepinfra: the summary said the rest

    def _progress_mode(self) -> str:
        if not self._rich():
            return "text"
        return "widget" if getattr(self.ip, "kernel", None) is not None else "markdown"

    @no_var_expand
    @line_magic
    @one_line_errors
    @documented(PARSERS["batches"])
    def deepinfra_batches(self, line: str) -> None:
        """List Batch API jobs; with an ID, show that job and, once it has finished, collect
        its answers into the answer store (re-running the ``%%deepinfra_map`` cell then
        fills them in)."""
        args = PARSERS["batches"].parse_line(line)
        client = self.session.ready_client()
        if args.batch_id is not None:
            print(_cells.collect_batch(client, args.batch_id))
            return
        table = _cells.batches_listing(client, args.limit)
        self._show(table, table.replace("`", ""))

    @line_magic
    @one_line_errors
    def deepinfra_usage(self, line: str) -> None:
        """What this kernel session has spent: requests, tokens, images and dollars, by
        kind (chat, images, map, batch) and by model. ``--reset`` starts the count over."""
        shown = _cells.usage_report(line.strip())
        if shown is not None:
            self._show(*shown)

    @no_var_expand
    @line_magic
    @one_line_errors
    @documented(PARSERS["models"])
    def deepinfra_models(self, line: str) -> None:
        """List DeepInfra's featured models (PATTERN: a substring or a glob like ``*flux*``)."""
        args = PARSERS["models"].parse_line(line)
        client = self.client()
        catalog = self.session.catalog(client, refresh=args.refresh)
        kind = "text" if args.text else "image" if args.images else None
        kind = "vision" if args.vision else kind
        models = catalog.filter(args.pattern, kind)
        status = " · ".join(
            (
                self.session.key_status(client, self.replay),
                source_status(catalog),
                client.routes.describe(),
            )
        )
        markdown, plain = models_table(models, status, args.pattern)
        self._show(markdown, plain)
        if args.pick:
            has_kernel = getattr(self.ip, "kernel", None) is not None
            model_picker(self._publish(), self, models, kind, has_kernel)

    # --- keys ---------------------------------------------------------------------------------

    @line_magic
    @one_line_errors
    def deepinfra_login(self, line: str) -> None:
        """Enter an API key without echo; it is kept for this kernel session only.

        ``%deepinfra_login --clear`` forgets it. The key is checked with one cheap request.
        """
        option = line.strip()
        if option not in ("", "--clear"):
            raise UsageError(
                "%deepinfra_login takes no key (it asks for it); usage: %deepinfra_login [--clear]"
            )
        if option == "--clear":
            print(self.session.log_out())
            return
        entered = getpass.getpass("DeepInfra API key (input hidden): ").strip()
        if not entered:
            raise UsageError("%deepinfra_login: no key entered; nothing changed.")
        key = Secret(entered)
        del entered
        print(self.session.log_in(key))

    # --- conversation -------------------------------------------------------------------------

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
        markdown, plain = history_text(conversation)
        self._show(markdown, plain)

    # --- record and replay --------------------------------------------------------------------

    @no_var_expand
    @line_magic
    @one_line_errors
    @documented(PARSERS["replay"])
    def deepinfra_replay(self, line: str) -> None:
        """Answer from a recording: no key, no network. ``off`` stops replaying; no argument
        shows the mode."""
        args = PARSERS["replay"].parse_line(line)
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
        self.replay = _cells.checked_recording(path)  # a clear error now beats one later
        print(
            f"Replaying {file_names(self.replay)}: answers come from the recording (no key needed)."
        )

    @no_var_expand
    @line_magic
    @one_line_errors
    @documented(PARSERS["record"])
    def deepinfra_record(self, line: str) -> None:
        """Record every exchange into a file for replay (``off`` stops). Keys and headers
        are never written."""
        args = PARSERS["record"].parse_line(line)
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
        return mode_status(self.replay, self.record, self._replay_speed)


def _given(option: T | None, setting: T) -> T:
    """A cell's option when given, else the setting."""
    return setting if option is None else option


# Every magic, by kind: the table ``@magics_class`` built (unload and the tests use it).
MAGIC_NAMES = {kind: tuple(table) for kind, table in DeepInfraMagics.magics.items()}


def load(shell: InteractiveShell) -> None:
    """Register the magics once (a second load replaces the first)."""
    if "DeepInfraMagics" in shell.magics_manager.registry:
        unload(shell)
    magics = DeepInfraMagics(shell)
    shell.register_magics(magics)
    magics.watcher.connect()


def unload(shell: InteractiveShell) -> None:
    """Remove every magic, close the client, and drop the configurable."""
    instance = shell.magics_manager.registry.pop("DeepInfraMagics", None)
    for kind, names in MAGIC_NAMES.items():
        table = shell.magics_manager.magics[kind]
        for name in names:
            bound = table.get(name)
            if getattr(bound, "__self__", None) is instance:
                table.pop(name, None)
    if isinstance(instance, DeepInfraMagics):
        instance.watcher.disconnect()
        instance.session.close()
        configurables: list[Any] = shell.configurables
        if instance in configurables:
            configurables.remove(instance)
