"""A real headless browser for the dashboard tests: Debian's ``chromium``.

Pages are loaded from ``file://`` URLs with networking features off; ``dump_dom`` returns the
DOM after parsing and scripts, ``screenshot`` writes a PNG. ``require()`` skips a test only
when no chromium binary exists at all (``.ci/run`` installs it).
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile
import zlib
from pathlib import Path

import pytest

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage")


def binary() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def require() -> str:
    found = binary()
    if found is None:
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run does this)")
    return found


def _run(args: list[str], timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        return subprocess.run([require(), *FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, timeout=timeout, check=False)


def dump_dom(page: Path) -> str:
    proc = _run(["--dump-dom", page.resolve().as_uri()])
    dom = proc.stdout.decode("utf-8", errors="replace")
    assert proc.returncode == 0 and dom.strip(), \
        f"chromium could not load {page}: {proc.stderr.decode(errors='replace')[-2000:]}"
    return dom


def screenshot(page: Path, png: Path, size: str = "1000,700") -> bytes:
    proc = _run([f"--screenshot={png}", f"--window-size={size}", "--hide-scrollbars",
                 page.resolve().as_uri()])
    assert png.exists(), f"no screenshot of {page}: {proc.stderr.decode(errors='replace')[-2000:]}"
    return png.read_bytes()


def png_colours(data: bytes) -> set[bytes]:
    """The distinct RGB(A) pixel values of a PNG (one for a blank page), read from every
    fourth row. Decodes 8-bit RGB/RGBA PNGs with zlib only (keep screenshots small)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width, height, channels = 8, b"", 0, 0, 4
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and colour in (2, 6), f"unsupported PNG (depth {depth}, {colour})"
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    prev = bytearray(stride)
    seen: set[bytes] = set()
    for y in range(height):
        line = raw[y * (stride + 1):(y + 1) * (stride + 1)]
        kind, cur = line[0], bytearray(line[1:])
        for i in range(stride):
            left = cur[i - channels] if i >= channels else 0
            up = prev[i]
            upleft = prev[i - channels] if i >= channels else 0
            if kind == 1:
                cur[i] = (cur[i] + left) & 255
            elif kind == 2:
                cur[i] = (cur[i] + up) & 255
            elif kind == 3:
                cur[i] = (cur[i] + (left + up) // 2) & 255
            elif kind == 4:
                p = left + up - upleft
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - upleft)
                pred = left if pa <= pb and pa <= pc else (up if pb <= pc else upleft)
                cur[i] = (cur[i] + pred) & 255
        if y % 4 == 0:
            seen.update(bytes(cur[x:x + channels]) for x in range(0, stride, channels))
        prev = cur
    return seen
