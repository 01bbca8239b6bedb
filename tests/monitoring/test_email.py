"""The report e-mail as mail clients read it: PNG plots referenced by cid: with alt text, a
text part that names exactly what is attached, and the checker that says so (which fails on
each kind of broken message)."""

from __future__ import annotations

import email
import re
import struct
import zlib
from collections.abc import Callable
from datetime import timedelta
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from framework.monitoring import charts, plots, png
from framework.monitoring.mailer import build_message
from framework.monitoring.report import render_html, render_text
from framework.monitoring.run import Clients, run_monitor
from framework.monitoring.spec import Window
from framework.monitoring.store import MemoryStore
from tests.monitoring.email_checks import (
    check_message,
    files_named,
    images_of,
    pixels,
    read_png,
)
from tests.monitoring.support import (
    WINDOW,
    put_capture,
    put_feedback,
    records,
    spec,
    store_with_reference,
)

ALWAYS = {"email": ["ops@example.com"], "when": "always"}
SHIFTED = charts.ewma([1.0, 1.1, 0.9, 1.0, 3.0], baseline=4)  # the last run out of control


class Outbox:
    def __init__(self) -> None:
        self.raw: list[bytes] = []

    def send_raw_email(self, **kwargs: Any) -> dict[str, str]:
        self.raw.append(kwargs["RawMessage"]["Data"])
        return {"MessageId": f"m{len(self.raw)}"}


def _run(store: MemoryStore, outbox: Outbox, window: Window = WINDOW,
         **over: Any) -> dict[str, Any]:
    clients = Clients(ses=outbox, sleep=lambda _s: None)
    return run_monitor(spec(notify=ALWAYS, **over), store, window, clients)


def _drift_with_history() -> tuple[dict[str, Any], bytes]:
    """Five quiet days, then a shifted one: the last report has distributions, prediction
    drift and control charts."""
    store, outbox = store_with_reference(), Outbox()
    for day in range(6):
        start = WINDOW.start + timedelta(days=day)
        shift = {"x1": 0.8, "x3": 1.0} if day == 5 else {}
        rows = records(np.random.default_rng(day), 400, shift, start=start)
        put_capture(store, rows, name=f"d{day}")
        put_feedback(store, rows, flip=0.1)
        report = _run(store, outbox, Window(start, start + timedelta(days=1)))
    assert report["status"] == "drift" and len(outbox.raw) == 6
    return report, outbox.raw[-1]


@pytest.fixture(scope="module")
def drift_mail() -> tuple[dict[str, Any], bytes]:
    return _drift_with_history()


def test_a_drift_mail_shows_every_plot_as_png(drift_mail: tuple[dict[str, Any], bytes]) -> None:
    report, raw = drift_mail
    msg = check_message(raw)
    assert msg["Subject"] == report["subject"]
    html_part = msg.get_body(("html",))
    assert html_part is not None
    html_text = str(html_part.get_content())
    images = images_of(html_text)
    figures = len(report["distributions"]) + (1 if report["prediction_drift"].get("plot")
                                              else 0)
    figures += sum(len(kinds) for kinds in report["charts"].values())
    assert figures >= 5 and len(images) == figures
    pngs = [p for p in msg.walk() if p.get_content_type() == "image/png"]
    assert len(pngs) == figures
    for img, part in zip(images, pngs, strict=True):  # in reading order
        assert img["src"] == f"cid:{part['Content-ID'].strip('<>')}"
        info = read_png(part.get_content())
        assert (info.width, info.height) == (2 * int(img["width"]), 2 * int(img["height"]))
        assert part.get_content_disposition() == "inline"
    # the numbers the PNG does not print are in its alt text and caption
    drifted = report["drift"]["drifted"][0]
    [alt] = [i["alt"] for i in images if i["alt"].startswith(f"{drifted}: ")]
    edges = report["distributions"][drifted]["edges"]
    assert f"{edges[0]:.4g}" in alt and f"{edges[-1]:.4g}" in alt and "most above" in alt
    assert "control limits" in html_text and "out of control" in html_text
    # the attached report.html is the stored page, plots as inline SVG
    [page] = [p for p in msg.iter_attachments() if p.get_filename() == "report.html"]
    assert page.get_content_type() == "text/html" and "<svg" in page.get_content()


def test_every_kind_of_run_mails_a_message_that_passes() -> None:
    outbox = Outbox()
    store = store_with_reference()
    _run(store, outbox)  # no traffic: NO DATA
    put_capture(store, records(np.random.default_rng(3), 300))
    _run(store, outbox)  # OK
    _run(MemoryStore(), outbox)  # no reference: FAILURE
    degraded = store_with_reference()
    rows = records(np.random.default_rng(8), 400)
    put_capture(degraded, rows)
    put_feedback(degraded, rows, flip=0.4)
    _run(degraded, outbox, drift={"prediction": False})
    subjects = [check_message(raw)["Subject"].split("]")[0] for raw in outbox.raw]
    assert subjects == ["[NO DATA", "[OK", "[FAILURE", "[DEGRADED"]


def test_the_text_part_names_exactly_what_is_attached() -> None:
    link = {"url": "https://b.s3.amazonaws.com/dashboard/p/dev/index.html?X-Amz-Signature=ab",
            "expires_at": "2026-01-08T00:00:00Z"}
    report = {"subject": "[OK] m: no drift in 3 features", "status": "ok", "monitor": "m",
              "summary": "No drift in 3 tested features.", "dashboard": link}
    msg = check_message(build_message(report, "ops@example.com", ["ops@example.com"]))
    text = str(msg.get_body(("plain",)).get_content())  # type: ignore[union-attr]
    assert files_named(text) == {"report.html", "report.json"}
    assert "Attached:\n- report.html: the full report" in text and link["url"] in text
    # what `mlops monitor report` prints claims no attachment
    assert "attach" not in render_text(report).lower()


# ---------------------------------------------------------------- the checker fails


def _good() -> bytes:
    report = {"subject": "[DRIFT] m: 1 of 2 features drifted", "status": "drift",
              "monitor": "m", "summary": "x", "distributions": {
                  "colour": {"kind": "categorical", "labels": ["red", "blue"],
                             "reference": [0.7, 0.3], "current": [0.2, 0.8]}},
              "charts": {"rows": {"ewma": SHIFTED.to_dict()}}}
    return build_message(report, "ops@example.com", ["ops@example.com"])


def _parts(msg: EmailMessage, kind: str) -> list[EmailMessage]:
    return [p for p in msg.walk() if p.get_content_type() == kind]  # type: ignore[misc]


def _set_png(part: EmailMessage, data: bytes) -> None:
    cid = part["Content-ID"]
    part.set_content(data, maintype="image", subtype="png", cid=cid, disposition="inline",
                     filename=part.get_filename())


def _chunk_rewrite(data: bytes, kind: bytes, body: Callable[[bytes], bytes]) -> bytes:
    """The PNG with one chunk's body replaced (CRC recomputed)."""
    out, pos = data[:8], 8
    while pos < len(data):
        length, name = struct.unpack(">I4s", data[pos:pos + 8])
        content = data[pos + 8:pos + 8 + length]
        if name == kind:
            content = body(content)
        out += (struct.pack(">I", len(content)) + name + content
                + struct.pack(">I", zlib.crc32(name + content) & 0xFFFFFFFF))
        pos += 12 + length
    return out


def _svg_instead(msg: EmailMessage) -> None:
    part = _parts(msg, "image/png")[0]
    part.set_content(b"<svg xmlns='http://www.w3.org/2000/svg'/>", maintype="image",
                     subtype="svg+xml", cid=part["Content-ID"], disposition="inline")


def _html(msg: EmailMessage, change: Callable[[str], str]) -> None:
    part = _parts(msg, "text/html")[0]
    part.set_content(change(str(part.get_content())), subtype="html")


def _text(msg: EmailMessage, change: Callable[[str], str]) -> None:
    part = _parts(msg, "text/plain")[0]
    part.set_content(change(str(part.get_content())))


def _first_png(msg: EmailMessage) -> tuple[EmailMessage, bytes]:
    part = _parts(msg, "image/png")[0]
    return part, part.get_content()


def _taller(header: bytes) -> bytes:
    w, h = struct.unpack(">II", header[:8])
    return struct.pack(">II", w, h + 1) + header[8:]


BREAKS: dict[str, tuple[Callable[[EmailMessage], None], str]] = {
    "an SVG image": (_svg_instead, "image/svg+xml"),
    "a dangling cid": (lambda m: _html(m, lambda h: h.replace("cid:", "cid:gone-", 1)),
                       "resolves to no part"),
    "an unreferenced image": (lambda m: _html(m, lambda h: re.sub(
        r'<img src="cid:[^"]+"[^>]*>', "", h, count=1)), "is not referenced"),
    "a missing alt": (lambda m: _html(m, lambda h: h.replace(' alt="', ' title="', 1)),
                      "has no alt text"),
    "a truncated PNG": (lambda m: _set_png(_first_png(m)[0], _first_png(m)[1][:-30]),
                        "cut"),
    "a bad CRC": (lambda m: _set_png(_first_png(m)[0], _first_png(m)[1][:40] + bytes(
        [_first_png(m)[1][40] ^ 1]) + _first_png(m)[1][41:]), "CRC mismatch"),
    "rows missing from IDAT": (lambda m: _set_png(_first_png(m)[0], _chunk_rewrite(
        _first_png(m)[1], b"IHDR", _taller)), "not 321 rows"),
    "a file the text part invents": (lambda m: _text(m, lambda t: t + "- data.csv\n"),
                                     "names ['data.csv', 'report.html', 'report.json']"),
    "an attachment the text part omits": (lambda m: _text(m, lambda t: t.replace(
        "- report.html", "- the page")), "names ['report.json']"),
}


def test_the_good_message_passes() -> None:
    check_message(_good())


@pytest.mark.parametrize("name", sorted(BREAKS))
def test_the_checker_finds(name: str) -> None:
    mutate, said = BREAKS[name]
    msg = email.message_from_bytes(_good(), policy=policy.default)
    assert isinstance(msg, EmailMessage)
    mutate(msg)
    with pytest.raises(AssertionError, match=re.escape(said)):
        check_message(msg.as_bytes())


# ---------------------------------------------------------------- PNG and plots


def test_png_encoder_round_trip() -> None:
    drawn = np.random.default_rng(1).integers(0, 256, (7, 5, 3), dtype=np.uint8)
    data = png.encode(drawn)
    info = read_png(data)
    assert (info.width, info.height, info.colour_type, info.bit_depth) == (5, 7, 2, 8)
    assert (pixels(data) == drawn).all()
    with pytest.raises(ValueError, match="expected a non-empty"):
        png.encode(np.zeros((0, 3, 3), dtype=np.uint8))


def _pixels(data: bytes) -> np.ndarray:
    read_png(data)
    return pixels(data)


def test_a_distribution_is_drawn_where_its_svg_puts_it() -> None:
    plot = {"kind": "numeric", "edges": [0.0, 1.0, 2.0], "reference": [0.5, 0.5],
            "current": [0.0, 1.0]}
    fig = plots.distribution("x", plot)
    image = _pixels(plots.to_png(fig))
    assert image.shape == (2 * fig.height, 2 * fig.width, 3)
    tallest = max((s for s in fig.shapes if isinstance(s, plots.Rect)), key=lambda r: r.h)
    assert tallest.fill == plots.CURRENT and tallest.h > 0
    inside = image[round(2 * (tallest.y + tallest.h / 2)), round(2 * (tallest.x + tallest.w - 1))]
    red = np.asarray(png.rgb(plots.CURRENT))
    assert (inside == np.rint(255 * 0.25 + red * 0.75)).all()  # 75% red over white
    assert (image[2, 2] == 255).all()  # the background
    svg = plots.to_svg(fig)
    assert svg.count("<rect") == 4 and f'y="{tallest.y:.1f}"' in svg


def test_alt_texts_state_the_numbers() -> None:
    categorical = plots.distribution("colour", {
        "kind": "categorical", "labels": ["a", "b", "c"], "reference": [0.5, 0.3, 0.2],
        "current": [0.1, 0.8, 0.1]})  # largest change first
    assert categorical.alt.endswith("current: b 0.30 then 0.80; a 0.50 then 0.10; "
                                    "c 0.20 then 0.10.")
    same = plots.distribution("x", {"kind": "numeric", "edges": [0, 1, 2],
                                    "reference": [0.5, 0.5], "current": [0.5, 0.5]})
    assert same.alt.endswith("in 2 bins from 0 to 2; the shares are the same in every bin.")
    chart = plots.chart("rows · ewma", SHIFTED.to_dict())
    assert chart is not None
    assert chart.alt.startswith("rows · ewma over 5 runs: the last is ")
    assert chart.alt.endswith("1 point(s) out of control: run 5 of 5.")
    assert plots.chart("empty", {"statistic": [], "upper": [], "lower": []}) is None


def test_the_stored_report_keeps_inline_svg_with_alt_text(
        drift_mail: tuple[dict[str, Any], bytes]) -> None:
    report, _raw = drift_mail
    page = render_html(report)
    assert "cid:" not in page and "<img" not in page
    labels = re.findall(r'<svg [^>]*aria-label="([^"]+)"', page)
    assert labels and all(": " in label for label in labels)


# ---------------------------------------------------------------- in a real browser


def test_chromium_shows_every_image_of_the_html_part(
        drift_mail: tuple[dict[str, Any], bytes], tmp_path: Path) -> None:
    from tests.dashboard import browser

    browser.require()
    msg = check_message(drift_mail[1])
    html_text = str(msg.get_body(("html",)).get_content())  # type: ignore[union-attr]
    widths = {}
    for i, part in enumerate(_parts(msg, "image/png")):  # type: ignore[arg-type]
        cid = part["Content-ID"].strip("<>")
        (tmp_path / f"{i}.png").write_bytes(part.get_content())
        html_text = html_text.replace(f'src="cid:{cid}"', f'src="{i}.png"')
        widths[f"{i}.png"] = read_png(part.get_content()).width
    html_text = html_text.replace(
        "<img ", '<img onload="this.dataset.w=this.naturalWidth" onerror="this.dataset.e=1" ')
    page = tmp_path / "mail.html"
    page.write_text(html_text, encoding="utf-8")
    dom = browser.dump_dom(page)
    loaded = dict(re.findall(r'<img[^>]*src="(\d+\.png)"[^>]*data-w="(\d+)"', dom))
    assert "data-e=" not in dom
    assert {k: int(v) for k, v in loaded.items()} == widths
    # Chromium paints the bars' colours (75% red over white) in its own screenshot
    shot = browser.screenshot(page, tmp_path / "shot.png", size="800,600")
    read_png(shot)
    colours = browser.png_colours(shot)
    red = tuple(int(v) for v in np.rint(255 * 0.25 + np.asarray(png.rgb(plots.CURRENT)) * 0.75))
    assert any(tuple(c[:3]) == red for c in colours), red
