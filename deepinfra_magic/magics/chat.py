"""The chat family: ``%%deepinfra`` and ``%deepinfra_explain``, with ``--see`` (the
notebook's objects attached) and ``--vars`` (its names filled into the prompt).

Rules kept here:

* Each magic's options are declared right above it and read through the method
  (``parse_argstring(self.deepinfra, line)``); ``%%deepinfra?`` shows the generated usage.
* One exchange is :meth:`ChatMagics.run_chat`: the view, the stream, the ending and the
  conversation, in that order. Its two steps that need no shell, :func:`stream_reply` (the
  Ctrl-C state machine) and :func:`reply_ending`, are plain functions beside it.
* A stopped or failed reply keeps what arrived and is never added to the conversation.
* Mistakes found before any request are one-line UsageErrors; the client, httpx, the
  display and the attachments load on the first cell, not at ``%load_ext``.
* Everything a chat cell sends from the notebook (the prompt with its ``--vars`` and
  ``{In[n]}``/``{Err}`` fields, ``--see`` tables, the error ``%deepinfra_explain`` sends, the
  system prompt) passes :meth:`ChatTurn.masked` in :meth:`ChatMagics.run_chat`: the client's
  key, scoped tokens and Authorization values leave as ``***``.
* ``--schema`` is read into a :class:`~deepinfra_magic.schema.Schema` before any request;
  the reply still streams live, and at its end the typed value is shown as a one-row
  table (its raw JSON in text/plain); a reply that does not fit even after its repair keeps its
  raw text on screen and in ``-o``, and the cell ends with the one-line error.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from IPython.core.error import UsageError
from IPython.core.magic import magics_class, no_var_expand

from .._text import shorten
from ..errors import APIStatusError, DeepInfraError, InvalidRequestError
from .arguments import (
    argument,
    bounded_float,
    bounded_int,
    check_variable_name,
    fill_variables,
    magic_arguments,
    parse_argstring,
    parse_params,
    parser_of,
)
from .base import (
    NO_FIELDS,
    Family,
    Outcome,
    cell_magic,
    display,
    given,
    line_magic,
    one_line_errors,
)
from .images import ImageCall, check_image_from_chat, show_images
from .session import file_names

if TYPE_CHECKING:
    from ..attachments import Attachment
    from ..catalog import ModelCatalog
    from ..client import ChatStream, DeepInfraClient
    from ..conversation import Content
    from ..notebook import CellLog
    from ..types import ChatResult

__all__ = [
    "ChatCall",
    "ChatMagics",
    "ChatTurn",
    "attached_note",
    "check_can_see",
    "collect_attachments",
    "describe_output",
    "fill_template",
    "reply_ending",
    "server_cannot_see",
    "stream_reply",
    "template_namespace",
]


@magics_class
class ChatMagics(Family):
    """``%%deepinfra`` and ``%deepinfra_explain``: one exchange each, in the conversation."""

    @no_var_expand
    @cell_magic
    @one_line_errors
    @magic_arguments("%%deepinfra", "Chat with a DeepInfra model; the cell is the prompt.")
    @argument("-m", "--model", help="model name (default: DeepInfraMagics.default_model)")
    @argument("-s", "--system", help="system prompt for this cell")
    @argument("-t", "--temperature", type=bounded_float(0.0, 2.0))
    @argument("--max-tokens", type=bounded_int(1))
    @argument("-p", "--param", action="append", metavar="KEY=VALUE")
    @argument("--new", action="store_true", help="start a fresh conversation")
    @argument("--no-stream", action="store_true")
    @argument("-f", "--format", choices=("markdown", "text", "code"), default="markdown")
    @argument("-o", "--out", metavar="VAR")
    @argument("--vars", action="store_true", help="fill {name} from the notebook")
    @argument("--see", action="append", metavar="EXPR", help="attach a plot or table")
    @argument(
        "--schema",
        metavar="SPEC",
        help="a typed answer: a pydantic model, dataclass, TypedDict, Enum or JSON Schema "
        "dict in the notebook, or inline: 'label: a|b, score: float, tags: list[str], ok: bool?'",
    )
    def deepinfra(self, line: str, cell: str) -> None:
        """Chat with a DeepInfra model; the cell body is the prompt, streamed back live.

        Each cell sees the previous exchanges (``max_history``); re-running a cell replaces
        its earlier exchange; ``--new`` or ``%deepinfra_reset`` start over. ``-f code`` puts
        the first code block of the reply into the next cell. ``--vars`` fills ``{name}``,
        ``{In[3]}``, ``{Out[3]}``, ``{Err[3]}`` and ``{Err}`` from the notebook. ``--see``
        attaches a figure (or ``plt``), image, array, file, ``Out[n]``, ``cell:n`` or
        DataFrame. Ctrl-C stops the reply and keeps what arrived. An image model makes an
        image. ``--schema SPEC`` asks for a typed answer (``-o``'s ``.parsed``).
        """
        from ..schema import Schema

        args = parse_argstring(self.deepinfra, line)
        check_variable_name(args.out)
        schema = None if args.schema is None else Schema.from_spec(args.schema, self.ip.user_ns)
        prompt = cell.strip("\n")
        if not prompt.strip():
            raise UsageError(
                "%%deepinfra: the cell is empty; write the prompt below the magic line."
            )
        if args.vars:
            prompt = fill_template(prompt, self.ip, self.cells)
        attachments = collect_attachments(
            args.see or [], self.ip.user_ns, self.ip.user_global_ns, self.cells,
            self.max_image_pixels,
        )  # fmt: skip
        params = parse_params(args.param, parser_of(self.deepinfra))
        client, catalog, model = self.session.pick_model(args.model, self.default_model)
        if catalog is not None and catalog.is_image_model(model):
            if schema is not None:
                raise UsageError(f"%%deepinfra: {model} makes images; --schema needs a text model.")
            check_image_from_chat(model, bool(attachments))
            show_images(self, client, ImageCall(prompt, model, 1, params), args.out)
            return
        can_see = check_can_see(model, attachments, catalog)
        if args.new:
            self.conversation.reset()
        turn = ChatTurn.asking(prompt, model, params, can_see, attachments)
        self.run_chat(client, turn._replace(schema=schema), args)

    def run_chat(self, client: DeepInfraClient, turn: ChatTurn, args: Any) -> None:
        """The whole exchange of a chat cell: the view, the request streamed into it
        (:func:`stream_reply`), how it ended (:func:`reply_ending`), the conversation, and
        how the cell ends. ``args`` is either magic's parsed line."""
        from ..attachments import summary

        turn = turn.masked(client.masked)  # the one way notebook text leaves
        prompt, content, model = turn.prompt, turn.content, turn.model
        cell_id = self.cells.current and self.cells.current + turn.topic
        system = getattr(args, "system", None)
        system = client.masked(system) if system else system
        messages = self.conversation.messages(content, system, cell=cell_id, images=turn.can_see)
        temperature = given(getattr(args, "temperature", None), self.temperature)
        max_tokens = given(getattr(args, "max_tokens", None), self.max_tokens)
        view = display.reply_view(
            self.frontend(), model, self.update_interval, args.format != "text"
        )
        call = ChatCall(
            messages, model, temperature, max_tokens, turn.params, not args.no_stream, turn.schema
        )
        outcome = stream_reply(client, view, call)
        if turn.attachments and isinstance(outcome.problem, APIStatusError):
            catalog = self.session.catalog_if_available(client)
            outcome.problem = server_cannot_see(outcome.problem, model, catalog)
        outcome = self.answer_refused(view, call, outcome)
        result: ChatResult = outcome.value
        timing = not (result.replayed and self._replay_speed() == 0)
        note, footer, code = reply_ending(result, args.format, timing)
        from .._pyodide import put_into_next_cell

        if code is not None and not put_into_next_cell(self.ip, code):
            note = "*No new cell can be added here: the code is in the reply above.*"
        if footer and turn.attachments:
            footer += " · " + summary(turn.attachments)
        shown, raw = result.text, None
        if turn.schema is not None:
            note, footer, shown, raw = typed_ending(turn.schema, result, note, footer)
        view.finish(
            footer, result.metadata(), note, text=shown, reasoning=result.reasoning, plain_text=raw
        )
        self.last_response = result
        if args.out:
            self.ip.user_ns[args.out] = result
        if result.complete:
            sent = None if content == prompt else content
            self.conversation.add(
                prompt, result.text, result.model, cell=cell_id, content=sent,
                attached=attached_note(turn.attachments),
            )  # fmt: skip
        self.end_cell(outcome)

    def answer_refused(
        self, view: display.ReplyView | display.StdoutReplyView, call: ChatCall, outcome: Outcome
    ) -> Outcome:
        """A classroom token's refusal as the line that says why; an expired or spent one,
        before any text arrived, answered from ``fallback_replay`` into the same view (its
        footer says "replayed") so the class keeps going."""
        from ..errors import TokenBudgetError, TokenExpiredError

        if outcome.problem is None:
            return outcome
        outcome.problem = self.session.refusal(outcome.problem, call.model)
        refused = isinstance(outcome.problem, (TokenExpiredError, TokenBudgetError))
        if not (refused and self.fallback_replay) or outcome.value.text:
            return outcome
        source = file_names(self.fallback_replay)
        replayer = self.session.fallback_client(self.fallback_replay, self._replay_speed())
        with replayer:
            replayed = stream_reply(replayer, view, call)
        if replayed.problem is not None:
            print(f"⚠ {source} has no answer for this cell either.", file=sys.stderr)
            return outcome
        print(f"⚠ {outcome.problem} Answered from {source} instead (replayed).", file=sys.stderr)
        return replayed

    @no_var_expand
    @line_magic
    @one_line_errors
    @magic_arguments("%deepinfra_explain", "Explain the last error, or cell N's.")
    @argument("cell", nargs="?", type=bounded_int(1), metavar="N")
    @argument("-m", "--model")
    @argument("-f", "--format", choices=("markdown", "text", "code"), default="markdown")
    @argument("-o", "--out", metavar="VAR")
    @argument("--no-stream", action="store_true")
    def deepinfra_explain(self, line: str) -> None:
        """Explain the last error, cell N's, or inside ``except`` the one being handled.
        Sends the cell's source and its traceback; ``-f code`` puts the fix into the next cell."""
        from ..notebook import NotebookReferenceError, explain_prompt

        args = parse_argstring(self.deepinfra_explain, line)
        check_variable_name(args.out)
        handled = sys.exc_info()[1]  # inside ``except``: the error being handled, as raised
        if args.cell is None and isinstance(handled, Exception):
            self.watcher.file_handled(handled)
        try:
            error = self.cells.error_for(args.cell)
        except NotebookReferenceError as exc:
            raise UsageError(f"%deepinfra_explain: {exc}") from None
        client, catalog, model = self.session.pick_model(args.model, self.default_model, warn=False)
        can_see = check_can_see(model, [], catalog)
        prompt = f"Explain the error of In [{error.count}]"
        content = explain_prompt(error)
        # Outside notebooks a cell is known by its text: the same "%deepinfra_explain" about
        # another error is another exchange, about the same error a re-run.
        turn = ChatTurn(prompt, content, model, can_see=can_see, topic=f"#error-{error.count}")
        self.run_chat(client, turn, args)


class ChatTurn(NamedTuple):
    """One exchange a cell asks for: what the user wrote (``prompt``) and what is sent
    (``content``: with attachments, or the error to explain), the model, extra request
    fields, whether the model may see images, the attachments for the footer, and a
    ``topic`` telling apart exchanges that one cell's source may ask about."""

    prompt: str
    content: Content
    model: str
    params: Mapping[str, Any] = NO_FIELDS
    can_see: bool = True
    attachments: Sequence[Attachment] = ()
    topic: str = ""
    schema: Any = None  # a Schema: the answer must fit it

    @classmethod
    def asking(
        cls,
        prompt: str,
        model: str,
        params: Mapping[str, Any],
        can_see: bool,
        attachments: Sequence[Attachment],
    ) -> ChatTurn:
        """A cell's prompt, sent with its attachments (images as parts, tables as text)."""
        content: Content = prompt
        if attachments:
            from ..attachments import user_content

            content = user_content(prompt, attachments)
        return cls(prompt, content, model, params, can_see, attachments)

    def masked(self, mask: Callable[[str], str]) -> ChatTurn:
        """This turn with ``mask`` applied to its prompt and every text it sends (images
        are left as they are)."""
        content: Content = self.content
        if isinstance(content, str):
            content = mask(content)
        else:
            content = [
                {**part, "text": mask(part["text"])} if part.get("type") == "text" else part
                for part in content
            ]
        return self._replace(prompt=mask(self.prompt), content=content)


class ChatCall(NamedTuple):
    """One chat request of a cell: the messages with the conversation so far, the model,
    sampling settings, extra request fields, and whether to stream."""

    messages: list[dict[str, Any]]
    model: str
    temperature: float
    max_tokens: int
    params: Mapping[str, Any] = NO_FIELDS
    stream: bool = True
    schema: Any = None  # a Schema, for a typed answer


def stream_reply(
    client: DeepInfraClient, view: display.ReplyView | display.StdoutReplyView, call: ChatCall
) -> Outcome:
    """Feed the reply into the view; on Ctrl-C or an error keep what arrived. ``value``
    is the :class:`ChatResult` (marked interrupted, or carrying the error's message); the
    caller's ``view.finish`` shows its text: everything that was received.

    The placeholder is shown and the request made inside the try: an interrupt that
    lands before the first byte (even while the placeholder is being sent) is a stopped
    reply like any other, and the view still gets its final update.
    """
    from ..types import ChatResult, ContentDelta, ReasoningDelta

    reply: ChatStream | None = None
    options = {"temperature": call.temperature, "max_tokens": call.max_tokens, **call.params}
    if call.schema is not None:
        options["schema"] = call.schema
    try:
        view.start()
        if not call.stream:
            result = client.chat(call.messages, call.model, stream=False, **options)
            return Outcome(result)  # shown whole by the view's finish
        reply = client.chat(call.messages, call.model, **options)
        with reply:
            for event in reply:
                if isinstance(event, ContentDelta):
                    view.add_answer(event.text)
                elif isinstance(event, ReasoningDelta):
                    view.add_reasoning(event.text)
    except KeyboardInterrupt as exc:
        stopped = reply.partial(interrupted=True) if reply else None
        return Outcome(stopped or ChatResult("", call.model, interrupted=True), exc)
    except DeepInfraError as exc:
        # A typed reply that did not fit keeps its own result (its raw text, its repair);
        # one whose repair request failed keeps the reply it had.
        kept = getattr(exc, "result", None) or (reply.result if reply else None)
        if kept is None:
            kept = reply.partial(error=exc.message) if reply else None
        elif kept.error is None:
            kept.error = exc.message
        return Outcome(kept or ChatResult("", call.model, error=exc.message), exc)
    assert reply.result is not None
    return Outcome(reply.result)


def typed_ending(
    schema: Any, result: ChatResult, note: str, footer: str
) -> tuple[str, str, str, str | None]:
    """A typed reply's note, footer, shown Markdown and its text/plain: the value as a
    one-row table over its raw JSON; "1 repair" in the footer when one was needed; a reply
    that does not fit keeps its raw text, with a note saying so."""
    if footer and result.repairs:
        footer += f" · {result.repairs} repair"
    if result.parsed is None:
        if result.repairs and result.error:
            kept = "its raw text is kept"
            note = f"*⚠ The answer does not fit the schema, even after 1 repair: {kept}.*"
        return note, footer, result.text, None
    table = schema.markdown_row(result.parsed, display.tables.table_cell)
    return note, footer, table, result.text


def reply_ending(result: ChatResult, format_: str, timing: bool) -> tuple[str, str, str | None]:
    """The note under a reply (why it stopped, or where its code went), its footer, and
    with ``-f code`` the code to put into the next cell."""
    from .._markdown import first_code_block

    footer = display.reply_footer(result, timing=timing)
    arrived = bool(result.text or result.reasoning)
    if result.interrupted and arrived:
        kept = "the partial reply is kept (not added to the conversation)"
        return f"*⏹ Interrupted: {kept}.*", footer, None
    if result.interrupted:
        return "*⏹ Interrupted before the reply began.*", footer, None
    if result.error and not arrived:
        # Nothing to keep: the placeholder says so and the one-line error tells why.
        return "*⚠ No reply: the request failed (the error is below).*", "", None
    if result.error:
        kept = "what arrived is kept (not added to the conversation)"
        return f"*⚠ The reply stopped early: {kept}.*", footer, None
    if format_ != "code":
        return "", footer, None
    code = first_code_block(result.text)
    if code is None:
        return "*No code block in the reply, so nothing was put into the next cell.*", footer, None
    return "*⤵ The first code block was put into the next cell.*", footer, code


# --- the notebook as context (--see, --vars) ------------------------------------------


def collect_attachments(
    expressions: list[str],
    user_ns: dict[str, Any],
    global_ns: dict[str, Any],
    cells: CellLog,
    max_pixels: int,
) -> list[Attachment]:
    """Each ``--see EXPR`` as an attachment, or a one-line UsageError."""
    from ..attachments import AttachmentError, attach, image_attachment
    from ..notebook import NotebookReferenceError, ShownImage, see_target

    attached: list[Attachment] = []
    outputs = user_ns.get("Out", {})
    for expression in expressions:
        label = expression.strip()
        try:
            target = see_target(label, outputs, cells)
            if target is None:
                target = _evaluate(label, user_ns, global_ns)
            if _is_pyplot(target) and not target.get_fignums():
                target = cells.last_image()  # inline plots are closed once shown
                if target is None:
                    raise AttachmentError(f"{label}: no figure is open and none was shown.")
            shown = target if isinstance(target, list) else [target]
            for item in shown:
                if isinstance(item, ShownImage):
                    attached.append(image_attachment(item.data, label, max_pixels))
                else:
                    attached.append(attach(item, label, max_pixels=max_pixels))
        except (AttachmentError, NotebookReferenceError) as exc:
            raise UsageError(f"%%deepinfra --see {exc}") from None
    return attached


def _evaluate(expression: str, user_ns: dict[str, Any], global_ns: dict[str, Any]) -> Any:
    """``--see EXPR``'s value in the user namespace; a file path when it is not Python."""
    from ..attachments import SUPPORTED_KINDS, AttachmentError

    try:
        return eval(expression, global_ns, user_ns)  # the user's own code, in their kernel
    except (NameError, SyntaxError) as exc:
        if Path(expression).expanduser().is_file():
            return expression
        reason = f"{type(exc).__name__}: {exc}"
        raise AttachmentError(f"{expression}: {reason}; --see takes {SUPPORTED_KINDS}.") from None
    except Exception as exc:
        raise AttachmentError(f"{expression}: {type(exc).__name__}: {exc}.") from None


def check_can_see(model: str, attachments: list[Attachment], catalog: ModelCatalog | None) -> bool:
    """Whether images may be sent to ``model``; a one-line error naming vision models
    when this cell attaches images to a model known not to see."""
    from ..catalog import looks_like_vision_model

    can_see = catalog.can_see(model) if catalog is not None else None
    if can_see is None:
        can_see = True if looks_like_vision_model(model) else None
    if can_see is False and any(hasattr(a, "data_url") for a in attachments):
        raise UsageError(f"%%deepinfra: {model} cannot see images; {_vision_advice(catalog)}")
    return can_see is not False


def _vision_advice(catalog: ModelCatalog | None) -> str:
    """Which models can see, from the catalog, and how to pick one."""
    vision = catalog.vision_models if catalog is not None else []
    names = ", ".join(m.name for m in vision[:4]) or "none in the catalog"
    return f"vision models: {names} (pick one with -m; %deepinfra_models --vision lists them)."


# How servers say that a model takes no images: llama.cpp's llama-server answers 500 "image
# input is not supported - hint: …mmproj" (ggml-org/llama.cpp#15377), vLLM "… is not a
# multimodal model" (vllm-project/vllm#23402). Compiled with the first refusal (re caches
# it), not when the magics register.
_NO_IMAGES = (
    r"(?i)image input is not supported|not a multimodal model|"
    r"does not support (?:image|vision)|images? (?:are|is) not supported"
)


def server_cannot_see(
    problem: APIStatusError, model: str, catalog: ModelCatalog | None
) -> APIStatusError:
    """A server's refusal of the images sent to ``model``, told as the catalog's own
    refusal is: the vision models to pick instead. Any other error is returned as it is."""
    said = re.search(_NO_IMAGES, problem.message)
    if said is None:
        return problem
    return InvalidRequestError(
        f"{model} cannot see images (the server answered {problem.status_code}: "
        f"{said.group(0)}); {_vision_advice(catalog)}",
        status_code=problem.status_code,
        request_id=problem.request_id,
    )


def attached_note(attachments: Sequence[Attachment]) -> str:
    """What went along with a prompt, for the history: ``1 image, 1 table``."""
    from ..attachments import ImageAttachment, TableAttachment

    images = len({a.digest for a in attachments if isinstance(a, ImageAttachment)})
    tables = sum(isinstance(a, TableAttachment) for a in attachments)
    counts = [(images, "image"), (tables, "table")]
    return ", ".join(f"{n} {noun}{'s' if n != 1 else ''}" for n, noun in counts if n)


def _is_pyplot(value: Any) -> bool:
    """Whether ``--see plt`` named the pyplot module itself."""
    return getattr(value, "__name__", None) == "matplotlib.pyplot"


def describe_output(value: Any) -> str:
    """An output for a --vars template: a DataFrame as its text summary, else its repr."""
    from ..attachments import describe_table

    if type(value).__module__.startswith("pandas") and type(value).__name__ in (
        "DataFrame",
        "Series",
    ):
        return describe_table(value).text
    text = repr(value)
    return text if len(text) <= 4000 else shorten(text, 4000)


def fill_template(prompt: str, shell: Any, cells: CellLog) -> str:
    """``--vars``: ``{name}``, ``{In[3]}``, ``{Out[3]}``, ``{Err}`` filled from the notebook."""
    from ..notebook import NotebookReferenceError

    try:
        return fill_variables(prompt, template_namespace(shell, cells))
    except NotebookReferenceError as exc:
        raise UsageError(f"--vars: {exc}") from None


def template_namespace(shell: Any, cells: CellLog) -> dict[str, Any]:
    """The user's variables for ``--vars``, with ``In``/``Out``/``Err`` resolving to cell
    sources, outputs (tables as text) and tracebacks."""
    from ..notebook import reference_namespace

    history = shell.history_manager
    sources = list(history.input_hist_raw) if history is not None else []
    outputs = shell.user_ns.get("Out", {})
    return reference_namespace(shell.user_ns, sources, outputs, cells, describe_output)
