"""The image family: ``%deepinfra_image`` (line or cell), and the images a chat cell
makes when it names an image model.

Rules kept here:

* The options are declared right above the magic and read through it; as a line magic the
  prompt is the rest of the line as typed (options first, ``--`` ends them).
* Images are requested concurrently and shown in request order as they arrive; Ctrl-C
  keeps what arrived and the caption says so (:func:`make_images` returns, never raises).
* A text model, an attachment or a reserved field is refused with one line before any
  request; the client, the display and the image types load on the first image.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from IPython.core.error import UsageError
from IPython.core.magic import magics_class, no_var_expand

from ..errors import DeepInfraError
from .arguments import (
    argument,
    bounded_float,
    bounded_int,
    check_variable_name,
    magic_arguments,
    parse_argstring,
    parse_params,
    parser_of,
    split_options_and_prompt,
)
from .base import (
    NO_FIELDS,
    Family,
    FamilyMagics,
    Outcome,
    display,
    line_cell_magic,
    one_line_errors,
)

if TYPE_CHECKING:
    import argparse

    from ..catalog import ModelCatalog
    from ..client import DeepInfraClient
    from ..images import ImageResult

__all__ = [
    "ImageCall",
    "ImageMagics",
    "check_image_from_chat",
    "check_image_model",
    "image_fields",
    "make_images",
    "show_images",
]


@magics_class
class ImageMagics(Family):
    """``%deepinfra_image``: images from a prompt, shown inline as they arrive."""

    @no_var_expand
    @line_cell_magic
    @one_line_errors
    @magic_arguments("%deepinfra_image", "Generate images; options first, then the prompt.")
    @argument("-m", "--model")
    @argument("--width", type=bounded_int(64, 4096))
    @argument("--height", type=bounded_int(64, 4096))
    @argument("-n", "--num-images", type=bounded_int(1, 16), default=1)
    @argument("--seed", type=bounded_int(0))
    @argument("--steps", type=bounded_int(1, 500))
    @argument("--guidance", type=bounded_float(0.0, 100.0))
    @argument("--negative", metavar="TEXT")
    @argument("-p", "--param", action="append", metavar="KEY=VALUE")
    @argument("--save", metavar="PATH")
    @argument("-o", "--out", metavar="VAR")
    def deepinfra_image(self, line: str, cell: str | None = None) -> None:
        """Generate images from a prompt and show them inline: options first, then the
        rest of the line is the prompt, as typed (``--`` ends the options). As a cell magic,
        the cell body is the prompt."""
        if cell is None:
            parser = parser_of(self.deepinfra_image)
            tokens, prompt = split_options_and_prompt(line, parser)
            args = parser.parse_tokens(tokens)
        else:
            args = parse_argstring(self.deepinfra_image, line)
            prompt = cell.strip()
        check_variable_name(args.out)
        if not prompt.strip():
            raise UsageError(
                "%deepinfra_image: no prompt. Usage: %deepinfra_image [options] PROMPT "
                "(or put the prompt in the cell body of %%deepinfra_image)."
            )
        params = parse_params(args.param, parser_of(self.deepinfra_image))
        extra = {**image_fields(args), **params}
        client, catalog, model = self.session.pick_model(
            args.model, self.default_image_model, image=True
        )
        check_image_model(client, catalog, model)
        call = ImageCall(prompt, model, args.num_images, extra, args.save)
        show_images(self, client, call, args.out)


class ImageCall(NamedTuple):
    """One image cell: the prompt, the model, how many images, extra request fields, and
    where to save them (None: shown only)."""

    prompt: str
    model: str
    number: int = 1
    extra: Mapping[str, Any] = NO_FIELDS
    save: str | None = None


def show_images(
    magics: FamilyMagics, client: DeepInfraClient, call: ImageCall, out: str | None
) -> None:
    """Make the images of an image cell (or of a chat cell naming an image model), keep
    them as ``last_images`` and in ``out``, then end the cell. The prompt leaves without
    credentials, as a chat cell's text does (``client.masked``)."""
    call = call._replace(prompt=client.masked(call.prompt))
    outcome = make_images(client, magics.frontend(), call)
    if outcome.value is None and outcome.problem is not None:
        outcome = _answer_refused(magics, call, outcome)
    if outcome.value is not None:
        magics.last_images = outcome.value
        if out:
            magics.ip.user_ns[out] = outcome.value
    magics.end_cell(outcome)


def _answer_refused(magics: FamilyMagics, call: ImageCall, outcome: Outcome) -> Outcome:
    """An image cell refused for a spent or expired classroom token, answered from
    ``fallback_replay`` (its caption says "replayed"); else the refusal, saying why."""
    from ..errors import TokenBudgetError, TokenExpiredError
    from .session import file_names

    assert outcome.problem is not None
    problem = outcome.problem = magics.session.refusal(outcome.problem, call.model)
    if not magics.fallback_replay or not isinstance(problem, (TokenExpiredError, TokenBudgetError)):
        return outcome
    source = file_names(magics.fallback_replay)
    with magics.session.fallback_client(magics.fallback_replay, magics._replay_speed()) as replayer:
        replayed = make_images(replayer, magics.frontend(), call)
    if replayed.value is None:
        print(f"⚠ {source} has no answer for this cell either.", file=sys.stderr)
        return outcome
    print(f"⚠ {problem} Answered from {source} instead (replayed).", file=sys.stderr)
    return replayed


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


def make_images(client: DeepInfraClient, frontend: display.Frontend, call: ImageCall) -> Outcome:
    """Request images concurrently, show them in request order as they arrive, then the
    caption. Ctrl-C keeps what arrived and the caption says so; ``value`` is the merged
    :class:`ImageResult` (None when no image arrived)."""
    from ..images import ImageArrived, ImageResult

    progress = display.ImageProgress(frontend, call.model, call.number)
    gallery = display.ImageGallery(frontend, call.number, keep_files=not call.save)
    parts: list[ImageResult] = []
    started = time.perf_counter()
    outcome = Outcome()
    try:
        progress.start()
        # Iterated in place, never kept in a variable: when Ctrl-C unwinds this frame the
        # generator is dropped at once, and closing it hangs up on the requests still open.
        for event in client.iter_images(
            call.prompt, call.model, n=call.number, heartbeat=1.0, **call.extra
        ):
            if isinstance(event, ImageArrived):
                parts.append(event.result)
                gallery.add(event.result)
            # Every event while images are awaited moves the clock and the count: heartbeats
            # come only after a second with no image, so the line would stand still while
            # images arrive more often than that.
            if event.done < event.total:
                progress.tick(time.perf_counter() - started, event.done)
    except (KeyboardInterrupt, DeepInfraError) as exc:
        outcome.problem = exc
    gallery.flush()
    if not parts:
        failed = "⏹ Interrupted: no image was kept." if outcome.interrupted else None
        progress.finish(
            failed or "⚠ No image: failed.", 0, {"model": call.model, "prompt": call.prompt}
        )
        return outcome
    result = outcome.value = ImageResult.merge(parts)
    elapsed = time.perf_counter() - started
    caption = display.image_caption(result, elapsed, stopped=outcome.interrupted)
    kept = len(result.images)
    if outcome.interrupted:
        caption += f" · ⏹ interrupted: {kept} of {call.number} images kept"
    elif kept < call.number:
        caption += f" · ⚠ {kept} of {call.number} images"
    if call.save:
        paths = result.save(call.save)
        caption += " · saved to " + ", ".join(f"`{p}`" for p in paths)
    progress.finish(caption, kept, result.metadata())
    return outcome


def check_image_model(client: DeepInfraClient, catalog: ModelCatalog | None, model: str) -> None:
    """An image cell refuses a model the catalog lists as a text model (another server's
    list does not tell them apart)."""
    if catalog is not None and catalog.is_text_model(model) and not client.routes.generic:
        names = ", ".join(m.name for m in catalog.image_models[:4]) or "none listed"
        raise UsageError(
            f"%deepinfra_image: {model} is a text model; image models include {names} "
            "(see %deepinfra_models --images)."
        )


def check_image_from_chat(model: str, attaches: bool) -> None:
    """``%%deepinfra`` with an image model makes an image: refuse an attachment (its ``-p``
    was held to ``RESERVED_PARAMS`` already)."""
    if attaches:
        raise UsageError(
            f"%%deepinfra: {model} makes images from text; --see needs a chat model "
            "that can see (see %deepinfra_models --vision)."
        )
