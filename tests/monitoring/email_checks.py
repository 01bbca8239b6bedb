"""What every mail client needs from a report e-mail, checked on the raw bytes as sent.

``check_message`` parses the message with Python's ``email`` package (``policy.default``) and
asserts, listing every violation at once:

- the structure: multipart/mixed holding multipart/alternative (text/plain, then the
  text/html, in a multipart/related with its images when it has any) and the attachments;
- every ``cid:`` the HTML part references resolves to a part with that Content-ID, and every
  inline image is referenced;
- every image part is ``image/png`` and a whole PNG: signature, IHDR first, a CRC-32 that
  matches on every chunk, IEND last, and IDAT data that inflates to exactly ``height`` rows
  of ``1 + width * bytes per pixel`` with valid filter types; no SVG anywhere in the mail;
- every ``<img>`` of the HTML part has a non-empty ``alt``;
- the text part names exactly the files attached (no more, no fewer).

The PNG structure check here is written against the PNG specification, not against the
encoder in ``framework.monitoring.png``; pixels are decoded by Pillow, and the browser test
renders the same images with Chromium.
"""

from __future__ import annotations

import email
import io
import re
import struct
import zlib
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from html.parser import HTMLParser

import numpy as np
from PIL import Image

SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # colour type -> samples per pixel
CID_RE = re.compile(r"""cid:([^"'\s)>]+)""")
# A file name in prose (not the last segment of a URL or a path).
FILE_RE = re.compile(r"(?<![\w./%-])([\w-]+(?:\.[\w-]+)*\.(?:html?|json|png|svg|csv|pdf|eml|txt))"
                     r"\b")


@dataclass(frozen=True)
class Png:
    width: int
    height: int
    colour_type: int
    bit_depth: int
    rows: bytes  # the inflated IDAT data: a filter byte then the samples, per row


def read_png(data: bytes) -> Png:
    """Parse and check a PNG; raises AssertionError saying what is wrong."""
    assert data[:8] == SIGNATURE, f"not a PNG: starts {data[:8]!r}"
    pos, chunks = 8, []
    while pos < len(data):
        assert pos + 12 <= len(data), f"chunk header cut at byte {pos}"
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        assert len(body) == length, f"{kind!r} chunk cut short ({len(body)} of {length} bytes)"
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF, f"{kind!r} chunk: CRC mismatch"
        chunks.append((kind, body))
        pos += 12 + length
    kinds = [k for k, _ in chunks]
    assert kinds and kinds[0] == b"IHDR", f"first chunk is {kinds[:1]}, not IHDR"
    assert kinds[-1] == b"IEND", f"last chunk is {kinds[-1:]}, not IEND"
    assert b"IDAT" in kinds, "no IDAT chunk"
    width, height, depth, colour, method, filt, interlace = struct.unpack(">IIBBBBB",
                                                                          chunks[0][1])
    assert width > 0 and height > 0, f"empty image {width}x{height}"
    assert colour in CHANNELS and (method, filt, interlace) == (0, 0, 0), \
        f"unsupported IHDR (colour {colour}, method {method}, filter {filt}, interlace {interlace})"
    rows = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    stride = 1 + (width * CHANNELS[colour] * depth + 7) // 8
    assert len(rows) == height * stride, \
        f"IDAT inflates to {len(rows)} bytes, not {height} rows of {stride}"
    assert all(rows[y * stride] <= 4 for y in range(height)), "a row has an unknown filter type"
    return Png(width, height, colour, depth, rows)


def pixels(data: bytes) -> np.ndarray:
    """A PNG's samples as Pillow decodes them, height × width × channels (RGB or RGBA)."""
    image = Image.open(io.BytesIO(data))
    return np.asarray(image.convert("RGBA" if "A" in image.mode else "RGB"))


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[dict[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.images.append({k: v or "" for k, v in attrs})


def images_of(html_text: str) -> list[dict[str, str]]:
    """The attributes of every <img> of an HTML document."""
    parser = _Images()
    parser.feed(html_text)
    return parser.images


def files_named(text: str) -> set[str]:
    return set(FILE_RE.findall(text))


def check_message(raw: bytes) -> EmailMessage:
    """Parse ``raw`` and check it (see the module docstring); returns the parsed message."""
    msg = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    problems: list[str] = []
    if msg.get_content_type() != "multipart/mixed":
        problems.append(f"top level is {msg.get_content_type()}, not multipart/mixed")
    top = list(msg.iter_parts())
    alternative = top[0] if top else None
    if alternative is None or alternative.get_content_type() != "multipart/alternative":
        raise AssertionError("\n".join([*problems, "no multipart/alternative first"]))
    alt_parts = list(alternative.iter_parts())
    types = [p.get_content_type() for p in alt_parts]
    if types not in (["text/plain", "text/html"], ["text/plain", "multipart/related"]):
        raise AssertionError("\n".join([*problems, f"multipart/alternative holds {types}, "
                                                    "not text/plain then the HTML"]))
    text_part, html_part = alt_parts
    if html_part.get_content_type() == "multipart/related":  # the HTML and its images
        related = list(html_part.iter_parts())
        if not related or related[0].get_content_type() != "text/html":
            raise AssertionError("\n".join([*problems, "multipart/related does not start "
                                                        "with text/html"]))
        html_part = related[0]
    html_text = str(html_part.get_content())

    by_cid = {str(p["Content-ID"]).strip().strip("<>"): p
              for p in msg.walk() if p["Content-ID"] is not None}
    referenced = CID_RE.findall(html_text)
    problems += [f"cid:{c} resolves to no part" for c in referenced if c not in by_cid]
    problems += [f"{p.get_filename()} (Content-ID {cid}) is not referenced by the HTML"
                 for cid, p in by_cid.items()
                 if p.get_content_maintype() == "image" and cid not in referenced]
    for part in msg.walk():
        kind = part.get_content_type()
        if "svg" in kind:
            problems.append(f"an {kind} part ({part.get_filename()})")
        elif part.get_content_maintype() == "image":
            if kind != "image/png":
                problems.append(f"{part.get_filename()} is {kind}, not image/png")
                continue
            try:
                read_png(part.get_content())
            except (AssertionError, zlib.error, struct.error) as e:
                problems.append(f"{part.get_filename()}: {e}")
    if "<svg" in html_text.lower():
        problems.append("the HTML part holds inline SVG")
    for img in images_of(html_text):
        if not img.get("alt", "").strip():
            problems.append(f"<img src={img.get('src')!r}> has no alt text")

    attached = {str(p.get_filename()) for p in msg.iter_attachments()}
    named = files_named(str(text_part.get_content()))
    if named != attached:
        problems.append(f"the text part names {sorted(named)}, the message attaches "
                        f"{sorted(attached)}")
    for p in msg.iter_attachments():
        if p.get_content_disposition() != "attachment":
            problems.append(f"{p.get_filename()} is not a Content-Disposition: attachment")
    assert not problems, "\n".join(problems)
    return msg
