"""Where the dashboard goes: a folder, or the registry bucket with a presigned link to it;
and a check that every link of the written pages resolves.

In the bucket the page is ``dashboard/{project}/{stage}/index.html``, beside ``site.json``
(the snapshot the monitor function rebuilds from). The bucket stays private: the page is read
with a presigned GET (SigV4, at most 7 days) or by anyone allowed ``s3:GetObject`` on it.

Stdlib only (the S3 client is passed in): the monitor function's zip imports it.
"""

from __future__ import annotations

import json
import posixpath
import urllib.parse
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from framework.monitoring.store import Store

MANIFEST = "manifest.json"
PAGE, SNAPSHOT = "index.html", "site.json"
HTML = "text/html; charset=utf-8"
CONTENT_TYPES = {".html": HTML, ".json": "application/json", ".svg": "image/svg+xml",
                 ".css": "text/css; charset=utf-8"}
MAX_LINK_SECONDS = 7 * 24 * 3600  # SigV4's limit for a presigned URL
LINK_SECONDS = MAX_LINK_SECONDS


def content_type(path: str) -> str:
    return CONTENT_TYPES.get(posixpath.splitext(path)[1], "application/octet-stream")


def prefix(project: str, stage: str) -> str:
    """The bucket folder of a stage's dashboard."""
    return f"dashboard/{project}/{stage}/"


def write(pages: dict[str, str], folder: Path) -> list[Path]:
    """Write every page under ``folder``; pages of an earlier build that are gone are removed."""
    folder.mkdir(parents=True, exist_ok=True)
    manifest = folder / MANIFEST
    if manifest.exists():
        try:
            before = json.loads(manifest.read_text()).get("pages", [])
        except (ValueError, AttributeError):
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


def publish(store: Store, base: str, page: str, snapshot: bytes | None = None) -> str:
    """Put the page (and the snapshot, when given) under ``base``; the page's key."""
    if snapshot is not None:
        store.put(base + SNAPSHOT, snapshot, content_type(SNAPSHOT))
    store.put(base + PAGE, page.encode("utf-8"), HTML)
    return base + PAGE


def _sigv4_query(signature_version: str, **_: Any) -> str | None:
    """botocore's choice of signer for a presigned S3 URL: SigV4 (it picks SigV2 in regions
    that still accept it, and SigV2 links have no 7-day bound and are being retired)."""
    return "s3v4-query" if signature_version.endswith("-query") else None


def presign(s3: Any, bucket: str, key: str, seconds: int = LINK_SECONDS,
            now: datetime | None = None) -> dict[str, Any]:
    """A presigned GET of ``key``: ``{"url", "expires_at", "seconds"}``. The link works while
    the signing credentials do: temporary ones (a role, SSO, a Lambda function) end it sooner."""
    if not 1 <= seconds <= MAX_LINK_SECONDS:
        raise ValueError(f"a presigned link lasts 1 s to 7 days, not {seconds} s")
    s3.meta.events.register_first("choose-signer.s3.GetObject", _sigv4_query,
                                  unique_id="mlops-dashboard-sigv4")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key},
                                    ExpiresIn=seconds)
    until = (now or datetime.now(UTC)) + timedelta(seconds=seconds)
    return {"url": url, "expires_at": until.strftime("%Y-%m-%dT%H:%M:%SZ"), "seconds": seconds}


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("href", "src") and value is not None:
                self.links.append(value)
            elif name == "id" and value is not None:
                self.ids.add(value)


def _parse(text: str) -> _Links:
    parser = _Links()
    parser.feed(text)
    return parser


def links(text: str) -> list[str]:
    return _parse(text).links


def internal(link: str) -> bool:
    scheme = urllib.parse.urlsplit(link).scheme
    return not scheme and not link.startswith("//")


def broken_links(folder: Path) -> list[tuple[str, str]]:
    """(page, link) for every relative link of every HTML file that names no file, and every
    ``#anchor`` that names no element of its page."""
    root = folder.resolve()
    out = []
    for page in sorted(root.rglob("*.html")):
        parsed = _parse(page.read_text(encoding="utf-8"))
        for link in parsed.links:
            if not internal(link):
                continue
            split = urllib.parse.urlsplit(link)
            path = urllib.parse.unquote(split.path)
            target = (page.parent / path).resolve() if path else page
            no_file = not target.is_relative_to(root) or not target.is_file()
            no_id = bool(split.fragment) and target == page and \
                urllib.parse.unquote(split.fragment) not in parsed.ids
            if no_file or no_id:
                out.append((page.relative_to(root).as_posix(), link))
    return out
