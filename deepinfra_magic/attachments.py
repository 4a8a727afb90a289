"""Notebook values as chat message parts: images as base64 data URLs, tables as text.

``attach(value)`` accepts a matplotlib Figure (or ``matplotlib.pyplot`` for its current
figure), a PIL Image, a numpy image array, image bytes or the path of a PNG/JPEG/WebP/GIF
file, an ``IPython.display.Image``, and a pandas DataFrame or Series. Images are
downscaled to at most ``max_pixels`` and re-encoded (which also drops EXIF metadata);
tables become shape, dtypes, head and tail as Markdown within a character budget.

Nothing heavy is imported here: numpy, PIL, matplotlib and pandas are only touched when
such a value is handed in (recognised by its type's module, not by importing it).
"""

from __future__ import annotations

import base64
import hashlib
import io
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._config import MAX_IMAGE_PIXELS, TABLE_CHAR_BUDGET
from ._protocol import sniff_image_type
from .errors import InvalidArgumentError

__all__ = [
    "SUPPORTED_KINDS",
    "Attachment",
    "AttachmentError",
    "ImageAttachment",
    "TableAttachment",
    "attach",
    "describe_table",
    "image_attachment",
    "summary",
    "user_content",
]

SUPPORTED_KINDS = (
    "a matplotlib Figure (or plt), a PIL Image, a numpy image array, bytes or the path of a "
    "PNG/JPEG/WebP/GIF file, an IPython Image, Out[n] or cell:n, a pandas DataFrame or Series"
)


class AttachmentError(InvalidArgumentError):
    """A value that cannot be attached; the message is one line saying what to do."""


@dataclass(frozen=True)
class ImageAttachment:
    """An image ready to send: encoded bytes, their MIME type and pixel size."""

    data: bytes
    mime: str
    width: int
    height: int
    original: tuple[int, int]  # the size before downscaling
    label: str = ""

    @property
    def data_url(self) -> str:
        """``data:<mime>;base64,...``, the form DeepInfra's vision models accept."""
        return f"data:{self.mime};base64,{base64.b64encode(self.data).decode('ascii')}"

    @property
    def digest(self) -> str:
        """SHA-256 of the data URL: the same image attached twice is sent once."""
        return hashlib.sha256(self.data_url.encode()).hexdigest()

    def part(self) -> dict[str, Any]:
        """The OpenAI-style content part (``docs.deepinfra.com/chat/vision``)."""
        return {"type": "image_url", "image_url": {"url": self.data_url}}

    def describe(self) -> str:
        """``1024×768`` (with the original size when it was downscaled)."""
        size = f"{self.width}×{self.height}"
        if self.original != (self.width, self.height):
            size += f" (from {self.original[0]}×{self.original[1]})"
        return size


@dataclass(frozen=True)
class TableAttachment:
    """A DataFrame or Series described as text (it is never sent as an image)."""

    text: str
    rows: int
    columns: int
    label: str = ""


Attachment = ImageAttachment | TableAttachment


def _module(value: Any) -> str:
    return type(value).__module__ or ""


def _kind(value: Any) -> str:
    """What a value is, without importing the libraries it may come from."""
    module, name = _module(value), type(value).__name__
    if getattr(value, "__name__", None) == "matplotlib.pyplot":
        return "pyplot"
    if module.startswith("pandas") and name in ("DataFrame", "Series"):
        return "table"
    if module.startswith("matplotlib") and hasattr(value, "savefig"):
        return "figure"
    if module.startswith("PIL") and hasattr(value, "save") and hasattr(value, "size"):
        return "pil"
    if module == "numpy" and name == "ndarray":
        return "array"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "bytes"
    if isinstance(value, (str, os.PathLike)):
        return "path"
    if module.startswith("IPython") and name == "Image":
        return "ipython_image"
    return "unsupported"


def attach(
    value: Any,
    label: str = "",
    *,
    max_pixels: int = MAX_IMAGE_PIXELS,
    table_budget: int = TABLE_CHAR_BUDGET,
) -> Attachment:
    """``value`` as an attachment, or an AttachmentError naming the supported kinds."""
    what = f"{label}: " if label else ""
    kind = _kind(value)
    if kind == "table":
        return describe_table(value, label, table_budget)
    if kind == "pyplot":
        if not value.get_fignums():
            raise AttachmentError(f"{what}there is no current matplotlib figure; draw one first.")
        kind, value = "figure", value.gcf()
    if kind == "figure":
        return _figure(value, label, max_pixels)
    if kind == "pil":
        return _pil_image(value, label, max_pixels, _pil_source_mime(value))
    if kind == "array":
        return _array(value, label, max_pixels)
    if kind == "bytes":
        return image_attachment(bytes(value), label, max_pixels)
    if kind == "path":
        return _path(Path(value), label, max_pixels)
    if kind == "ipython_image":
        data = getattr(value, "data", None)
        if not isinstance(data, bytes):
            raise AttachmentError(
                f"{what}this IPython Image holds a URL, not image data; pass the file or bytes."
            )
        return image_attachment(data, label, max_pixels)
    kind_name = type(value).__name__
    raise AttachmentError(
        f"{what}cannot attach a value of type {kind_name}; --see takes {SUPPORTED_KINDS}."
    )


def image_attachment(
    data: bytes, label: str = "", max_pixels: int = MAX_IMAGE_PIXELS
) -> ImageAttachment:
    """Encoded image bytes, re-encoded and downscaled (sent as they are without Pillow)."""
    from .images import image_size

    what = f"{label}: " if label else ""
    mime = sniff_image_type(data)
    size = image_size(data) if mime else None
    if mime is None or size is None:
        raise AttachmentError(f"{what}these bytes are not a PNG, JPEG, WebP or GIF image.")
    try:
        from PIL import Image
    except ImportError:
        if mime != "image/gif" and size[0] * size[1] <= max_pixels:
            return ImageAttachment(data, mime, size[0], size[1], size, label)
        raise AttachmentError(
            f"{what}resizing or converting this image needs Pillow: pip install pillow."
        ) from None
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except Exception as exc:  # Pillow raises many types for damaged files
        raise AttachmentError(f"{what}the image cannot be read ({exc}).") from None
    return _pil_image(image, label, max_pixels, mime)


def _path(path: Path, label: str, max_pixels: int) -> ImageAttachment:
    what = f"{label}: " if label else ""
    try:
        data = path.expanduser().read_bytes()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise AttachmentError(
            f"{what}cannot read the file {str(path)!r} ({reason}); --see takes {SUPPORTED_KINDS}."
        ) from None
    return image_attachment(data, label, max_pixels)


def _pil_source_mime(image: Any) -> str:
    fmt = str(getattr(image, "format", "") or "").upper()
    return "image/jpeg" if fmt in ("JPEG", "MPO") else "image/png"


def _pil_image(image: Any, label: str, max_pixels: int, source_mime: str) -> ImageAttachment:
    """Downscale to ``max_pixels`` and re-encode: JPEG stays JPEG, anything else is PNG."""
    from PIL import Image

    original = (int(image.size[0]), int(image.size[1]))
    width, height = fit(original, max_pixels)
    if (width, height) != original:
        image = image.resize((width, height), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    if source_mime == "image/jpeg":
        image.convert("RGB").save(out, format="JPEG", quality=90)
        mime = "image/jpeg"
    else:
        if image.mode not in ("RGB", "RGBA", "L", "LA"):
            image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
        image.save(out, format="PNG")
        mime = "image/png"
    return ImageAttachment(out.getvalue(), mime, width, height, original, label)


def fit(size: tuple[int, int], max_pixels: int) -> tuple[int, int]:
    """The largest size with the same aspect ratio and at most ``max_pixels`` pixels."""
    width, height = size
    if width * height <= max_pixels:
        return width, height
    scale = math.sqrt(max_pixels / (width * height))
    new_width, new_height = max(1, int(width * scale)), max(1, int(height * scale))
    while new_width * new_height > max_pixels:  # rounding can leave one row too many
        new_height -= 1
    return new_width, max(1, new_height)


def _figure(figure: Any, label: str, max_pixels: int) -> ImageAttachment:
    """Render a Figure as PNG at a resolution that fits (no resampling needed)."""
    inches_w, inches_h = (float(x) for x in figure.get_size_inches())
    dpi = float(figure.dpi)
    area = inches_w * inches_h
    if area > 0 and area * dpi * dpi > max_pixels:
        dpi = math.sqrt(max_pixels / area)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, facecolor="white")
    data = buffer.getvalue()
    from .images import image_size

    size = image_size(data)
    if size is not None and size[0] * size[1] <= max_pixels:  # already fits: no re-encoding
        return ImageAttachment(data, "image/png", size[0], size[1], size, label)
    from PIL import Image  # matplotlib depends on Pillow

    image = Image.open(io.BytesIO(data))
    image.load()
    return _pil_image(image, label, max_pixels, "image/png")


def _array(array: Any, label: str, max_pixels: int) -> ImageAttachment:
    """H×W (grey), H×W×3 (RGB) or H×W×4 (RGBA); floats are read as 0–1."""
    what = f"{label}: " if label else ""
    shape = tuple(array.shape)
    if not (len(shape) == 2 or (len(shape) == 3 and shape[2] in (3, 4))) or 0 in shape:
        raise AttachmentError(
            f"{what}a numpy image must be H×W, H×W×3 or H×W×4, not shape {shape}."
        )
    try:
        from PIL import Image
    except ImportError:
        raise AttachmentError(
            f"{what}attaching a numpy array needs Pillow: pip install pillow."
        ) from None
    import numpy

    if array.dtype.kind == "f":
        array = (numpy.clip(array, 0.0, 1.0) * 255).round()
    elif array.dtype.kind == "b":
        array = array * 255
    elif array.dtype.kind not in "ui":
        raise AttachmentError(f"{what}a numpy image needs numbers, not dtype {array.dtype}.")
    image = Image.fromarray(numpy.clip(array, 0, 255).astype(numpy.uint8))
    return _pil_image(image, label, max_pixels, "image/png")


# --- tables -------------------------------------------------------------------------------


def describe_table(table: Any, label: str = "", budget: int = TABLE_CHAR_BUDGET) -> TableAttachment:
    """Shape, dtypes, and head and tail as a Markdown table, cut to ``budget`` characters."""
    frame = table.to_frame() if type(table).__name__ == "Series" else table
    rows, columns = (int(n) for n in frame.shape)
    name = f"`{label}`" if label else "table"
    kind = "Series" if frame is not table else "DataFrame"
    header = f"{kind} {name}: {rows} rows × {columns} columns."
    dtypes = "Columns: " + ", ".join(f"{col} ({dtype})" for col, dtype in frame.dtypes.items())
    text = ""
    for shown, width in ((5, 40), (3, 24), (2, 16), (1, 12), (0, 12)):
        parts = [header, _cut(dtypes, budget // 3)]
        if shown and rows <= 2 * shown:
            parts += ["All rows:", _markdown(frame, width)]
        elif shown:
            parts += [f"First {shown} rows:", _markdown(frame.head(shown), width)]
            parts += [f"Last {shown} rows:", _markdown(frame.tail(shown), width)]
        text = "\n\n".join(parts)
        if len(text) <= budget:
            break
    return TableAttachment(_cut(text, budget), rows, columns, label)


def _cell(value: Any, width: int) -> str:
    text = " ".join(str(value).split()).replace("|", "\\|")
    return text if len(text) <= width else text[: width - 1] + "…"


def _markdown(frame: Any, width: int, max_columns: int = 20) -> str:
    columns = list(frame.columns)[:max_columns]
    more = len(frame.columns) - len(columns)
    head = ["", *(_cell(c, width) for c in columns)] + ([f"… {more} more"] if more else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for index, row in zip(frame.index, frame[columns].itertuples(index=False), strict=True):
        cells = [_cell(index, width), *(_cell(v, width) for v in row)] + (["…"] if more else [])
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cut(text: str, budget: int) -> str:
    return text if len(text) <= budget else text[: max(0, budget - 14)].rstrip() + "\n… (cut here)"


# --- messages -----------------------------------------------------------------------------


def user_content(prompt: str, attachments: Sequence[Attachment]) -> str | list[dict[str, Any]]:
    """The user message content: tables go into the text; images follow as parts (each
    distinct image once). Plain text when nothing but text is attached."""
    texts = [prompt] + [a.text for a in attachments if isinstance(a, TableAttachment)]
    text = "\n\n".join(texts)
    images = _distinct(a for a in attachments if isinstance(a, ImageAttachment))
    if not images:
        return text
    return [{"type": "text", "text": text}, *(image.part() for image in images)]


def _distinct(images: Iterable[ImageAttachment]) -> list[ImageAttachment]:
    seen: set[str] = set()
    unique = []
    for image in images:
        if image.digest not in seen:
            seen.add(image.digest)
            unique.append(image)
    return unique


def summary(attachments: Sequence[Attachment]) -> str:
    """For the footer: ``1 image 1024×768 · 1 table 500×12``."""
    images = _distinct(a for a in attachments if isinstance(a, ImageAttachment))
    tables = [a for a in attachments if isinstance(a, TableAttachment)]
    parts = []
    if images:
        noun = "image" if len(images) == 1 else "images"
        parts.append(f"{len(images)} {noun} " + ", ".join(i.describe() for i in images))
    if tables:
        noun = "table" if len(tables) == 1 else "tables"
        parts.append(f"{len(tables)} {noun} " + ", ".join(f"{t.rows}×{t.columns}" for t in tables))
    return " · ".join(parts)
