"""Showing generated images: a progress line, the images in request order, the caption.

Rules kept here:

* Images are plain display data (``GeneratedImage.display_data``): nothing needs a live
  kernel to show them again, and a saved notebook keeps them.
* The progress line is a :class:`~.output.LiveOutput`: updated in place in a notebook,
  printed once in a terminal. It ends in place as a static line saying what was made
  (never empty: a saved notebook would keep an empty box), and the caption follows the
  images as a fresh output, so jupyter console, which ignores updates, prints it too.
* A terminal shows no pixels: each image's alt text, and where it was saved.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .output import Frontend, Publisher, markdown_bundle, metadata_for, plain, settle_live
from .reply import money

if TYPE_CHECKING:
    from ..images import GeneratedImage, ImageResult

__all__ = ["ImageGallery", "ImageProgress", "image_caption", "show_image"]


def image_caption(result: ImageResult, elapsed: float, *, stopped: bool = False) -> str:
    """One Markdown line under images: model, seeds, size, runtime, cost. A ``stopped``
    run gives the time it really ran (the server's runtime covers only what arrived)."""
    parts = [f"`{result.model}`"]
    seeds = [str(image.seed) for image in result.images if image.seed is not None]
    if seeds:
        parts.append(("seed " if len(seeds) == 1 else "seeds ") + ", ".join(seeds))
    sizes = sorted({f"{w}×{h}" for w, h in (i.size for i in result.images if i.size)})
    if sizes:
        parts.append(", ".join(sizes))
    runtime = elapsed if stopped or result.runtime_ms is None else result.runtime_ms / 1000
    parts.append(f"{runtime:.1f} s")
    if result.cost is not None:
        parts.append(money(result.cost))
    flagged = [str(number) for number, image in enumerate(result.images, 1) if image.nsfw]
    if flagged:
        which = "image " + flagged[0] if len(flagged) == 1 else "images " + ", ".join(flagged)
        parts.append(f"⚠ {which} filtered by the safety checker")
    if result.replayed_from:
        parts.append(f"▶ replayed from {result.replayed_from}")
    return " · ".join(parts)


class ImageProgress:
    """Shows that images are being made (model, elapsed seconds, done of n), then the
    caption. In a notebook the line is updated in place and ends saying what was made; in
    a terminal it is printed once."""

    def __init__(self, frontend: Frontend, model: str, total: int) -> None:
        self._publish = frontend.publish
        self._live = frontend.live_output()
        self._model = model
        self._total = total

    def start(self) -> None:
        """Show the progress line (apart from construction, like ``ReplyView.start``)."""
        self._show(self._status(0.0, 0))

    def _status(self, elapsed: float, done: int) -> str:
        what = "an image" if self._total == 1 else f"{self._total} images"
        progress = f" · {done} of {self._total} done" if self._total > 1 else ""
        return f"⏳ Generating {what} with `{self._model}` · {elapsed:.0f} s{progress}"

    def _show(self, markdown: str) -> None:
        # A terminal prints the start line and the caption only.
        self._live.show(markdown_bundle(markdown, plain(markdown)))

    def tick(self, elapsed: float, done: int) -> None:
        """Refresh the elapsed time and count."""
        self._show(self._status(elapsed, done))

    def finish(self, caption: str, kept: int, metadata: dict[str, Any] | None = None) -> None:
        """End the progress line in place with what was made (``kept`` images), then show
        the caption (or the note of what went wrong) as a fresh output under the images."""
        done = self._done(kept)
        settle_live(
            self._publish,
            [(self._live, markdown_bundle(done, plain(done)))],
            [markdown_bundle(caption, plain(caption))],
            metadata,
        )

    def _done(self, kept: int) -> str:
        what = "an image" if self._total == 1 else f"{self._total} images"
        if kept >= self._total:
            return f"✓ Generated {what} with `{self._model}`"
        made = f"{kept} of {self._total} images" if kept else "no image"
        return f"Generated {made} with `{self._model}`"


def show_image(publish: Publisher, image: GeneratedImage, metadata: dict[str, Any]) -> None:
    """Publish one image as plain display data (renders everywhere, headless included), its
    prompt as the alt text nbconvert and screen readers read from the output metadata."""
    alt = {image.mime_type: {"alt": image.prompt}}
    publish(image.display_data(), {**metadata_for(metadata), **alt})


class ImageGallery:
    """Shows the images of concurrent requests in request order, whatever order they
    arrive in: each as soon as those requested before it are shown, failed or stopped.

    With several images each gets a line with its number and seed, so "seed 42 gives the
    first one back" can be seen. A terminal shows no pixels: there each image is saved to
    a temporary file whose path is printed (``keep_files``), unless ``--save`` keeps them.
    Everything is plain display data: nothing needs a live kernel to show again.
    """

    def __init__(self, frontend: Frontend, total: int, keep_files: bool) -> None:
        self._publish = frontend.publish
        self._total = total
        self._shows_pixels = frontend.live
        self._keep_files = keep_files
        self._folder: Path | None = None
        self._waiting: dict[int, ImageResult] = {}
        self._next = 0

    def add(self, part: ImageResult) -> None:
        """One request's images arrived: show them, and any that waited for them."""
        index = part.request_index if part.request_index is not None else self._next
        self._waiting[index] = part
        while self._next in self._waiting:
            self._show(index=self._next, part=self._waiting.pop(self._next))
            self._next += 1

    def flush(self) -> None:
        """Show every image still waiting (a request before it failed or was stopped)."""
        for index in sorted(self._waiting):
            self._show(index, self._waiting.pop(index))

    def _show(self, index: int, part: ImageResult) -> None:
        for image in part.images:
            metadata = {**part.metadata(), "seed": image.seed}
            if not self._shows_pixels:
                self._print(image, metadata)
                continue
            if self._total > 1:
                label = f"{index + 1} of {self._total}"
                if image.seed is not None:
                    label += f" · seed {image.seed}"
                self._publish(markdown_bundle(f"**{label}**", label), metadata_for(metadata))
            show_image(self._publish, image, metadata)

    def _print(self, image: GeneratedImage, metadata: dict[str, Any]) -> None:
        text = image.alt_text()
        if self._keep_files:
            if self._folder is None:
                self._folder = Path(tempfile.mkdtemp(prefix="deepinfra-images-"))
            text += f" saved to {image.save(self._folder)}"
        self._publish({"text/plain": text}, metadata_for(metadata))
