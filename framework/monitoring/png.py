"""PNG images of simple plots, with numpy and the standard library only.

The monitor function's layer has numpy, scipy and boto3 and nothing that draws; the report's
plots are bars, polylines and dots, so a ``Canvas`` rasterizes those shapes into an RGB array
and ``encode`` writes the array as a PNG: signature, ``IHDR`` (8-bit truecolour), one
``IDAT`` (zlib; every row filtered with Up, the difference from the row above, which turns
the plots' flat areas into runs of zeros) and ``IEND``, each chunk with its CRC-32
(ISO/IEC 15948). No anti-aliasing: plots are drawn at twice their displayed size instead.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

SIGNATURE = b"\x89PNG\r\n\x1a\n"
RGB = tuple[int, int, int]


def rgb(colour: str) -> RGB:
    """``#rrggbb`` -> (r, g, b)."""
    text = colour.lstrip("#")
    return int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def encode(pixels: npt.NDArray[np.uint8]) -> bytes:
    """A PNG of an (height, width, 3) uint8 array."""
    height, width, channels = pixels.shape
    if channels != 3 or height < 1 or width < 1:
        raise ValueError(f"expected a non-empty (height, width, 3) array, got {pixels.shape}")
    samples = pixels.reshape(height, width * 3)
    rows = np.full((height, 1 + width * 3), 2, dtype=np.uint8)  # column 0: filter type 2, Up
    rows[0, 1:] = samples[0]  # the row above the first is zeros
    rows[1:, 1:] = samples[1:] - samples[:-1]  # modulo 256, as the filter is defined
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (SIGNATURE + _chunk(b"IHDR", header)
            + _chunk(b"IDAT", zlib.compress(rows.tobytes(), 6)) + _chunk(b"IEND", b""))


class Canvas:
    """A white RGB canvas; coordinates are in the figure's units, multiplied by ``scale``."""

    def __init__(self, width: int, height: int, scale: int = 2) -> None:
        self.scale = scale
        self.pixels = np.full((height * scale, width * scale, 3), 255, dtype=np.uint8)

    def rect(self, x: float, y: float, w: float, h: float, colour: str,
             opacity: float = 1.0) -> None:
        s = self.scale
        height, width, _ = self.pixels.shape
        x0, x1 = max(round(x * s), 0), min(round((x + w) * s), width)
        y0, y1 = max(round(y * s), 0), min(round((y + h) * s), height)
        if x1 <= x0 or y1 <= y0:
            return
        block = self.pixels[y0:y1, x0:x1] * (1.0 - opacity) \
            + np.asarray(rgb(colour), dtype=float) * opacity
        self.pixels[y0:y1, x0:x1] = np.rint(block).astype(np.uint8)

    def _stamp(self, centres: npt.NDArray[np.float64], radius: float, colour: str) -> None:
        """Paint every pixel within ``radius`` (scaled units) of any of ``centres``."""
        if len(centres) == 0:
            return
        reach = int(np.ceil(radius))
        dy, dx = np.mgrid[-reach:reach + 1, -reach:reach + 1]
        keep = dx * dx + dy * dy <= radius * radius + 0.25
        offsets = np.stack([dx[keep], dy[keep]], axis=1)
        points = np.rint(centres)[:, None, :] + offsets[None, :, :]
        points = points.reshape(-1, 2).astype(np.int64)
        height, width, _ = self.pixels.shape
        inside = ((points[:, 0] >= 0) & (points[:, 0] < width)
                  & (points[:, 1] >= 0) & (points[:, 1] < height))
        points = points[inside]
        self.pixels[points[:, 1], points[:, 0]] = rgb(colour)

    def polyline(self, points: Sequence[tuple[float, float]], colour: str, width: float = 1.5,
                 dash: tuple[float, float] | None = None) -> None:
        s = self.scale
        pts = np.asarray(points, dtype=float) * s
        if len(pts) == 0:
            return
        samples = [pts[:1]]
        for a, b in zip(pts[:-1], pts[1:], strict=True):
            steps = max(int(np.ceil(np.hypot(*(b - a)) * 2)), 1)  # every half pixel
            t = np.linspace(0.0, 1.0, steps + 1)[1:, None]
            samples.append(a + (b - a) * t)
        centres = np.concatenate(samples)
        if dash is not None:
            on, off = dash[0] * s, dash[1] * s
            along = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(centres, axis=0).T))])
            centres = centres[(along % (on + off)) < on]
        self._stamp(centres, width * s / 2, colour)

    def dot(self, x: float, y: float, r: float, colour: str) -> None:
        s = self.scale
        self._stamp(np.asarray([[x * s, y * s]]), r * s, colour)

    def png(self) -> bytes:
        return encode(self.pixels)
