"""A real headless browser for the dashboard tests: Debian's ``chromium``.

Pages are loaded from ``file://`` URLs with networking features off; ``dump_dom`` returns the
DOM after parsing and scripts, ``screenshot`` writes a PNG. ``require()`` skips a test only
when no chromium binary exists at all (``.ci/run`` installs it).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
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


def dump_dom(page: Path, size: str | None = None) -> str:
    """The DOM after the page loaded, in a window ``size`` (``"1024,768"``) when given."""
    proc = _run([*([f"--window-size={size}"] if size else []), "--dump-dom",
                 page.resolve().as_uri()])
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
    fourth row, decoded by Pillow."""
    from tests.monitoring.email_checks import pixels

    rows = pixels(data)[::4]
    return {bytes(p) for p in rows.reshape(-1, rows.shape[-1])}
