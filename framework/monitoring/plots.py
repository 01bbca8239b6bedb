"""The report's plots as shapes, drawn once and rendered twice: as inline SVG (the stored HTML
report and the dashboard) and as PNG (the e-mail, since Gmail and Outlook show no SVG).

A ``Figure`` holds its geometry (bars, lines, dots), its text labels (drawn in the SVG; beside
a PNG the HTML carries them as a caption) and an alt text that states the figure's numbers
for a reader who cannot see the image.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from framework.monitoring.png import Canvas

REFERENCE, CURRENT = "#9e9e9e", "#e53935"
STATISTIC, LIMIT, FLAGGED = "#1565c0", "#ef6c00", "#d32f2f"


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    w: float
    h: float
    fill: str
    opacity: float = 1.0


@dataclass(frozen=True)
class Line:
    points: tuple[tuple[float, float], ...]
    stroke: str
    width: float = 1.5
    dash: tuple[float, float] | None = None


@dataclass(frozen=True)
class Dot:
    x: float
    y: float
    r: float
    fill: str


@dataclass(frozen=True)
class Label:
    x: float
    y: float
    text: str
    size: int = 10
    anchor: str = "start"


Shape = Rect | Line | Dot


@dataclass(frozen=True)
class Figure:
    title: str
    width: int
    height: int
    shapes: tuple[Shape, ...]
    labels: tuple[Label, ...]  # besides the title and the legend
    legend: tuple[tuple[str, str], ...]  # (text, colour)
    caption: str  # what the labels say, as one line of text
    alt: str


def _g(value: float) -> str:
    return f"{value:.4g}"


# ---------------------------------------------------------------- figures


def distribution(name: str, plot: Mapping[str, Any], width: int = 300,
                 height: int = 160) -> Figure:
    """Reference (grey) vs current (red) shares, as overlaid bars."""
    ref, cur = list(plot["reference"]), list(plot["current"])
    n = max(len(ref), 1)
    top = max(ref + cur + [1e-9])
    pad, w, h = 24, width - 30, height - 44
    bw = w / n
    shapes: list[Shape] = []
    for i, (a, b) in enumerate(zip(ref, cur, strict=False)):
        x = pad + i * bw
        for value, colour, off in ((a, REFERENCE, 0.0), (b, CURRENT, 0.35)):
            bh = value / top * h
            shapes.append(Rect(x + off * bw, 20 + h - bh, max(bw * 0.6, 0.8), bh, colour, 0.75))
    labels: list[Label] = []
    caption = ""
    names = [str(v) for v in plot.get("labels") or []]
    if plot.get("kind") == "numeric":
        edges = [float(e) for e in plot["edges"]]
        labels = [Label(pad, height - 10, _g(edges[0])),
                  Label(pad + w, height - 10, _g(edges[-1]), anchor="end")]
        caption = f"{len(ref)} bins from {_g(edges[0])} to {_g(edges[-1])}; bar height: " \
                  "share of the traffic"
    elif names:
        labels = [Label(pad, height - 10, ", ".join(names[:6]))]
        caption = "categories in order: " + ", ".join(names[:12]) + \
                  (f" and {len(names) - 12} more" if len(names) > 12 else "")
    return Figure(name, width, height, tuple(shapes), tuple(labels),
                  (("■ reference", "#757575"), ("■ current", CURRENT)), caption,
                  _distribution_alt(name, plot))


def _distribution_alt(name: str, plot: Mapping[str, Any]) -> str:
    ref, cur = [float(v) for v in plot["reference"]], [float(v) for v in plot["current"]]
    head = f"{name}: share of the reference traffic (grey bars) and of the current traffic " \
           "(red bars)"
    if plot.get("kind") == "numeric":
        edges = [float(e) for e in plot["edges"]]
        diff = [c - r for r, c in zip(ref, cur, strict=False)]
        text = f"{head} in {len(ref)} bins from {_g(edges[0])} to {_g(edges[-1])}"
        if not diff or max(abs(d) for d in diff) < 0.005:
            return text + "; the shares are the same in every bin."
        parts = []
        for i, word in ((max(range(len(diff)), key=diff.__getitem__), "above"),
                        (min(range(len(diff)), key=diff.__getitem__), "below")):
            if abs(diff[i]) >= 0.005:
                parts.append(f"most {word} the reference in {_g(edges[i])} to "
                             f"{_g(edges[i + 1])} ({cur[i]:.2f} against {ref[i]:.2f})")
        return text + "; the current traffic is " + " and ".join(parts) + "."
    names = [str(v) for v in plot.get("labels") or []]
    order = sorted(range(len(names)), key=lambda i: -abs(cur[i] - ref[i]))
    shown = [f"{names[i]} {ref[i]:.2f} then {cur[i]:.2f}" for i in order[:8]]
    more = f" and {len(names) - 8} more" if len(names) > 8 else ""
    return f"{head} per category, reference then current: {'; '.join(shown)}{more}."


def chart(name: str, data: Mapping[str, Any], width: int = 460,
          height: int = 170) -> Figure | None:
    """A chart statistic over runs with its control limits; flagged points drawn in red."""
    stat: Sequence[float] = data["statistic"]
    upper: Sequence[float] = data["upper"]
    lower: Sequence[float] = data["lower"]
    flagged = sorted(set(data.get("flagged", [])))
    n = len(stat)
    if n == 0:
        return None
    allv = [v for v in list(stat) + list(upper) + list(lower) if v is not None]
    lo, hi = min(allv), max(allv)
    if hi - lo < 1e-12:
        hi, lo = hi + 1.0, lo - 1.0
    pad_l, pad_t, w, h = 40, 20, width - 50, height - 40

    def xy(i: int, v: float) -> tuple[float, float]:
        return pad_l + (i / max(n - 1, 1)) * w, pad_t + (hi - v) / (hi - lo) * h

    def line(values: Sequence[float], colour: str, dash: tuple[float, float] | None) -> Line:
        return Line(tuple(xy(i, v) for i, v in enumerate(values)), colour, 1.5, dash)

    shapes: list[Shape] = [line(upper, LIMIT, (4, 3)), line(lower, LIMIT, (4, 3)),
                           line(stat, STATISTIC, None)]
    for i, v in enumerate(stat):
        x, y = xy(i, v)
        shapes.append(Dot(x, y, 4, FLAGGED) if i in flagged else Dot(x, y, 2.5, STATISTIC))
    note = f"{len(flagged)} out-of-control point(s)"
    labels = (Label(4, pad_t + 8, f"{hi:.3g}", 9), Label(4, pad_t + h, f"{lo:.3g}", 9),
              Label(width - 4, 14, note, 10, "end"))
    caption = (f"{n} runs, oldest first; y from {lo:.3g} to {hi:.3g}; blue: the statistic, "
               f"dashed orange: control limits, red: out of control; {note}")
    runs = f": run {', '.join(str(i + 1) for i in flagged[-8:])} of {n}" if flagged else ""
    alt = (f"{name} over {n} runs: the last is {_g(stat[-1])}, its control limits "
           f"{_g(lower[-1])} to {_g(upper[-1])}; {len(flagged)} point(s) out of control{runs}.")
    return Figure(name, width, height, tuple(shapes), labels, (), caption, alt)


# ---------------------------------------------------------------- renderings


def to_svg(fig: Figure) -> str:
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{fig.width}" '
             f'height="{fig.height}" role="img" aria-label="{html.escape(fig.alt)}">',
             f'<text x="4" y="14" font-size="12" font-weight="600">{html.escape(fig.title)}'
             '</text>']
    for s in fig.shapes:
        if isinstance(s, Rect):
            parts.append(f'<rect x="{s.x:.1f}" y="{s.y:.1f}" width="{s.w:.1f}" '
                         f'height="{s.h:.1f}" fill="{s.fill}" fill-opacity="{s.opacity}"/>')
        elif isinstance(s, Line):
            pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in s.points)
            dash = f' stroke-dasharray="{s.dash[0]:g} {s.dash[1]:g}"' if s.dash else ""
            parts.append(f'<polyline points="{pts}" fill="none" stroke="{s.stroke}" '
                         f'stroke-width="{s.width}"{dash}/>')
        else:
            parts.append(f'<circle cx="{s.x:.1f}" cy="{s.y:.1f}" r="{s.r}" fill="{s.fill}"/>')
    for label in fig.labels:
        anchor = f' text-anchor="{label.anchor}"' if label.anchor != "start" else ""
        parts.append(f'<text x="{label.x:g}" y="{label.y:g}" font-size="{label.size}"{anchor}>'
                     f"{html.escape(label.text)}</text>")
    if fig.legend:
        spans = " ".join(f'<tspan fill="{colour}">{html.escape(text)}</tspan>'
                         for text, colour in fig.legend)
        parts.append(f'<text x="{fig.width - 4}" y="14" font-size="10" text-anchor="end">'
                     f"{spans}</text>")
    return "".join(parts) + "</svg>"


def to_png(fig: Figure, scale: int = 2) -> bytes:
    """The figure's shapes at ``scale`` times its size (text stays in the HTML around it)."""
    canvas = Canvas(fig.width, fig.height, scale)
    for s in fig.shapes:
        if isinstance(s, Rect):
            canvas.rect(s.x, s.y, s.w, s.h, s.fill, s.opacity)
        elif isinstance(s, Line):
            canvas.polyline(s.points, s.stroke, s.width, s.dash)
        else:
            canvas.dot(s.x, s.y, s.r, s.fill)
    return canvas.png()
