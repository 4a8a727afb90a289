"""What is shown: replies, images, map runs and tables, in notebooks and terminals.

Rules this package keeps (one module per thing a user sees, as ``magics/`` and ``maps/``):

* It imports neither the client nor the shell: views get plain results and a
  :class:`Frontend` (what the frontend can do, chosen once by :func:`frontend_of`).
* Views produce bundles only: Markdown with a text/plain fallback (:func:`plain` is the
  one way Markdown becomes text), never HTML built from model text.
* :class:`LiveOutput` (``output.py``) owns display ids, in-place updates, the end of a
  live view in place with no output left empty (:func:`settle_live`; a saved notebook
  keeps every output ever displayed), and the terminal fallback (printed once); the
  freezing engine (``live.py``) keeps each update of a long reply short, freezing only at
  block boundaries (:func:`split_blocks` cuts a finished text the same way).
* Everything runs on the main thread.
"""

from __future__ import annotations

from .images import ImageGallery, ImageProgress, image_caption, show_image
from .live import LiveSection, MarkdownContext, Throttle, split_blocks
from .maps import MapProgressView, map_summary, progress_line
from .output import (
    Frontend,
    LiveOutput,
    Publisher,
    frontend_of,
    markdown_bundle,
    metadata_for,
    plain,
    rich_display_available,
    settle_live,
)
from .reply import ReplyView, StdoutReplyView, money, reply_footer, reply_view
from .tables import (
    batches_table,
    history_text,
    markdown_price,
    model_picker,
    models_table,
    source_status,
    usage_table,
)

__all__ = [
    "Frontend",
    "ImageGallery",
    "ImageProgress",
    "LiveOutput",
    "LiveSection",
    "MapProgressView",
    "MarkdownContext",
    "Publisher",
    "ReplyView",
    "StdoutReplyView",
    "Throttle",
    "batches_table",
    "frontend_of",
    "history_text",
    "image_caption",
    "map_summary",
    "markdown_bundle",
    "markdown_price",
    "metadata_for",
    "model_picker",
    "models_table",
    "money",
    "plain",
    "progress_line",
    "reply_footer",
    "reply_view",
    "rich_display_available",
    "settle_live",
    "show_image",
    "source_status",
    "split_blocks",
    "usage_table",
]
