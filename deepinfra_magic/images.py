"""Generated images: bytes with their MIME type, saving, and plain display data."""

from __future__ import annotations

import base64
import re
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["GeneratedImage", "ImageArrived", "ImageResult", "ImageWaiting", "image_size"]

EXTENSIONS = {"image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp", "image/gif": ".gif"}


def image_size(data: bytes) -> tuple[int, int] | None:
    """Width and height read from a PNG, GIF, JPEG or WebP header, or None."""
    if data.startswith(b"\x89PNG") and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return int(width), int(height)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp_size(data)
    if data.startswith(b"\xff\xd8"):
        return _jpeg_size(data)
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        width = 1 + int.from_bytes(data[24:27], "little")
        height = 1 + int.from_bytes(data[27:30], "little")
        return width, height
    if chunk == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 " and len(data) >= 30:
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    index = 2
    while index + 9 < len(data):
        if data[index] != 0xFF:
            index += 1
            continue
        marker = data[index + 1]
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            height, width = struct.unpack(">HH", data[index + 5 : index + 9])
            return int(width), int(height)
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            index += 2
            continue
        (length,) = struct.unpack(">H", data[index + 2 : index + 4])
        index += 2 + length
    return None


def _slug(text: str, limit: int = 40) -> str:
    words = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return words[:limit].rstrip("-") or "image"


def _free_path(folder: Path, stem: str, suffix: str) -> Path:
    """``folder/stem.suffix``, or ``stem-2.suffix``… when that name is taken."""
    candidate = folder / f"{stem}{suffix}"
    number = 2
    while candidate.exists():
        candidate = folder / f"{stem}-{number}{suffix}"
        number += 1
    return candidate


@dataclass(frozen=True)
class GeneratedImage:
    """One image: its bytes, MIME type, and the seed and prompt that made it."""

    data: bytes = field(repr=False)
    mime_type: str
    prompt: str = ""
    seed: int | None = None
    url: str | None = None
    nsfw: bool = False  # flagged by the server's safety checker (often sent blanked out)

    @property
    def extension(self) -> str:
        """File extension for the MIME type, with the dot."""
        return EXTENSIONS.get(self.mime_type, ".img")

    @property
    def size(self) -> tuple[int, int] | None:
        """(width, height) in pixels, read from the image header."""
        return image_size(self.data)

    def default_name(self) -> str:
        """A readable file stem from the prompt and seed."""
        seed = f"-{self.seed}" if self.seed is not None else ""
        return f"{_slug(self.prompt)}{seed}"

    def save(self, path: str | Path) -> Path:
        """Write the image to a file, or into a folder under a name that overwrites nothing."""
        target = Path(path).expanduser()
        if target.is_dir() or str(path).endswith(("/", "\\")):
            target.mkdir(parents=True, exist_ok=True)
            target = _free_path(target, self.default_name(), self.extension)
        else:
            if not target.suffix:
                target = target.with_suffix(self.extension)
            target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(self.data)
        return target

    def alt_text(self) -> str:
        """The text/plain stand-in: what the image shows, for text-only frontends."""
        size = self.size
        dims = f" {size[0]}×{size[1]}" if size else ""
        seed = f", seed {self.seed}" if self.seed is not None else ""
        return f"[image{dims} {self.mime_type}{seed}: {self.prompt}]"

    def display_data(self) -> dict[str, Any]:
        """A plain display bundle: base64 image data plus a text/plain alternative."""
        return {
            self.mime_type: base64.b64encode(self.data).decode("ascii"),
            "text/plain": self.alt_text(),
        }

    def _repr_mimebundle_(
        self, include: Iterable[str] | None = None, exclude: Iterable[str] | None = None
    ) -> dict[str, Any]:
        return _filtered(self.display_data(), include, exclude)


def _filtered(
    bundle: dict[str, Any], include: Iterable[str] | None, exclude: Iterable[str] | None
) -> dict[str, Any]:
    if include is not None:
        allowed = set(include)
        bundle = {k: v for k, v in bundle.items() if k in allowed}
    if exclude is not None:
        bundle = {k: v for k, v in bundle.items() if k not in set(exclude)}
    return bundle


@dataclass
class ImageResult:
    """The images of one prompt, with the model, seeds, cost and runtime when known."""

    prompt: str
    model: str
    images: list[GeneratedImage] = field(default_factory=list)
    cost: float | None = None
    runtime_ms: int | None = None
    replayed_from: str | None = None  # the recording file, when replayed
    request_ids: list[str] = field(default_factory=list)
    # Position among concurrent requests (set by iter_images), so merge restores request
    # order whatever order the answers arrived in.
    request_index: int | None = field(default=None, repr=False, compare=False)

    @property
    def replayed(self) -> bool:
        """True when the images came from a recording, not the network."""
        return self.replayed_from is not None

    @property
    def seed(self) -> int | None:
        """The seed of the first image (each image keeps its own)."""
        return self.images[0].seed if self.images else None

    @classmethod
    def merge(cls, parts: Iterable[ImageResult]) -> ImageResult:
        """Combine the results of concurrent requests, in request order (``request_index``
        when every part has one, else the order given)."""
        parts = list(parts)
        if not parts:
            raise ValueError("merge needs at least one result")
        if all(part.request_index is not None for part in parts):
            parts.sort(key=lambda part: part.request_index or 0)
        costs = [p.cost for p in parts if p.cost is not None]
        runtimes = [p.runtime_ms for p in parts if p.runtime_ms is not None]
        return cls(
            prompt=parts[0].prompt,
            model=parts[0].model,
            images=[image for part in parts for image in part.images],
            cost=sum(costs) if costs else None,
            runtime_ms=max(runtimes) if runtimes else None,
            replayed_from=next((p.replayed_from for p in parts if p.replayed_from), None),
            request_ids=[rid for part in parts for rid in part.request_ids],
        )

    def save(self, path: str | Path) -> list[Path]:
        """One image: to ``path`` (a file, or a folder). Several: into folder ``path``."""
        if len(self.images) == 1:
            return [self.images[0].save(path)]
        folder = Path(path).expanduser()
        folder.mkdir(parents=True, exist_ok=True)
        return [image.save(folder) for image in self.images]

    def metadata(self) -> dict[str, Any]:
        """What a notebook output records about these images."""
        return {
            "model": self.model,
            "prompt": self.prompt,
            "seeds": [image.seed for image in self.images],
            "replayed": self.replayed,
            "replayed_from": self.replayed_from,
        }

    def __len__(self) -> int:
        return len(self.images)

    def __iter__(self) -> Iterator[GeneratedImage]:
        return iter(self.images)

    def __getitem__(self, index: int) -> GeneratedImage:
        return self.images[index]

    def __repr__(self) -> str:
        return (
            f"ImageResult(model={self.model!r}, images={len(self.images)}, "
            f"seeds={[i.seed for i in self.images]}, prompt={self.prompt[:40]!r})"
        )

    def _repr_mimebundle_(
        self, include: Iterable[str] | None = None, exclude: Iterable[str] | None = None
    ) -> dict[str, Any]:
        if not self.images:
            return {"text/plain": repr(self)}
        bundle = self.images[0].display_data()
        bundle["text/plain"] = "\n".join(image.alt_text() for image in self.images)
        return _filtered(bundle, include, exclude)


@dataclass(frozen=True)
class ImageArrived:
    """Progress: one request's images arrived (``done`` of ``total`` requests so far)."""

    result: ImageResult
    done: int
    total: int


@dataclass(frozen=True)
class ImageWaiting:
    """Progress heartbeat while requests are still running."""

    elapsed: float
    done: int
    total: int
