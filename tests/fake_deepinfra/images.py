"""Images the fake draws: real PNGs, sized and seeded."""

from __future__ import annotations

import base64
import functools
import hashlib
import struct
import zlib

# --------------------------------------------------------------------------------------------
# Images


def make_png(
    width: int, height: int, rgb: bytes | tuple[int, int, int], *, compress_level: int = 6
) -> bytes:
    """Encode an 8-bit RGB PNG; ``rgb`` is row-major pixel data or one colour to fill with."""
    if isinstance(rgb, tuple):
        rgb = bytes(rgb) * (width * height)
    stride = width * 3
    if width < 1 or height < 1 or len(rgb) != stride * height:
        raise ValueError(f"need {stride * height} bytes of RGB for {width}x{height}")
    raw = b"".join(b"\x00" + rgb[y * stride : (y + 1) * stride] for y in range(height))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, compress_level))
        + chunk(b"IEND", b"")
    )


def render_image(prompt: str, seed: int, width: int, height: int) -> bytes:
    """A PNG whose colours and pattern (checks or stripes) derive from the prompt and seed."""
    digest = hashlib.sha256(f"{seed}\x00{prompt}".encode()).digest()
    ink, paper = digest[0:3], digest[3:6]
    cell = 2 + digest[6] % max(1, min(width, height) // 4)
    row_a = b"".join(ink if (x // cell) % 2 == 0 else paper for x in range(width))
    row_b = b"".join(paper if (x // cell) % 2 == 0 else ink for x in range(width))
    pattern = digest[7] % 3
    rows = []
    for y in range(height):
        odd_band = (y // cell) % 2 == 1
        if pattern == 0:  # checks
            rows.append(row_b if odd_band else row_a)
        elif pattern == 1:  # vertical stripes
            rows.append(row_a)
        else:  # horizontal stripes
            rows.append((paper if odd_band else ink) * width)
    return make_png(width, height, b"".join(rows))


@functools.cache
def big_png() -> bytes:
    """A valid ~20 MB PNG (2580x2580, stored uncompressed); built once, then cached."""
    return make_png(2580, 2580, (200, 30, 90), compress_level=0)


@functools.lru_cache(maxsize=4)
def _data_uri(data: bytes, mime: str) -> str:
    """``data:`` URI of an image (a small cache, so the big PNG is encoded only once)."""
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"
