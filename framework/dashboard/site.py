"""Write the dashboard to a folder or publish it into the registry bucket; check its links."""

from __future__ import annotations

import json
import posixpath
import urllib.parse
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
PREFIX = "dashboard/"
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".json": "application/json",
                 ".svg": "image/svg+xml", ".css": "text/css; charset=utf-8"}


def content_type(path: str) -> str:
    return CONTENT_TYPES.get(posixpath.splitext(path)[1], "application/octet-stream")


def write(pages: dict[str, str], folder: Path) -> list[Path]:
    """Write every page under ``folder``; pages of an earlier build that are gone are removed."""
    folder.mkdir(parents=True, exist_ok=True)
    manifest = folder / MANIFEST
    if manifest.exists():
        try:
            before = json.loads(manifest.read_text()).get("pages", [])
        except ValueError:
            before = []
        for rel in set(before) - set(pages):
            old = (folder / rel).resolve()
            if old.is_relative_to(folder.resolve()) and old.is_file():
                old.unlink()
    written = []
    for rel, text in pages.items():
        target = folder / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        written.append(target)
    manifest.write_text(json.dumps({"pages": sorted(pages)}, indent=2) + "\n")
    return written


def publish(pages: dict[str, str], s3: Any, bucket: str, prefix: str = PREFIX) -> list[str]:
    """Upload every page under ``prefix`` with its content type; remove stale pages there."""
    from framework.monitoring.store import S3Store

    store = S3Store(s3, bucket)
    keys = []
    for rel, text in pages.items():
        key = prefix + rel
        store.put(key, text.encode("utf-8"), content_type(rel))
        keys.append(key)
    store.put(prefix + MANIFEST, (json.dumps({"pages": sorted(pages)}, indent=2) + "\n")
              .encode(), content_type(MANIFEST))
    wanted = set(keys) | {prefix + MANIFEST}
    for key in store.list(prefix):
        if key not in wanted:
            s3.delete_object(Bucket=bucket, Key=key)
    return keys


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("href", "src") and value is not None:
                self.links.append(value)


def links(text: str) -> list[str]:
    parser = _Links()
    parser.feed(text)
    return parser.links


def internal(link: str) -> bool:
    scheme = urllib.parse.urlsplit(link).scheme
    return not scheme and not link.startswith(("#", "//"))


def broken_links(folder: Path) -> list[tuple[str, str]]:
    """(page, link) for every relative link of every HTML file that names no file."""
    root = folder.resolve()
    out = []
    for page in sorted(root.rglob("*.html")):
        for link in links(page.read_text(encoding="utf-8")):
            if not internal(link):
                continue
            path = urllib.parse.unquote(urllib.parse.urlsplit(link).path)
            target = (page.parent / path).resolve()
            if not target.is_relative_to(root) or not target.is_file():
                out.append((page.relative_to(root).as_posix(), link))
    return out
