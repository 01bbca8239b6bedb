"""Prometheus metrics of the local gateway, served at ``GET /metrics`` (text format 0.0.4).

- ``mlops_requests_total{endpoint,version,code}`` — answered requests;
- ``mlops_errors_total{endpoint,version,kind}`` — client (4xx), server (5xx from the
  handler), function (crash, 502), timeout (504);
- ``mlops_request_duration_seconds{endpoint,version}`` — histogram, gateway in → out;
- ``mlops_invocations_total{endpoint,version,start}`` — start="cold" or "warm";
- ``mlops_init_duration_seconds{endpoint,version}`` — histogram of cold-start inits;
- ``mlops_capture_records_total`` / ``mlops_capture_uploaded_total`` /
  ``mlops_capture_pending`` — the capture buffer;
- ``mlops_unrouted_requests_total`` — requests that matched no route.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
           10.0)
INIT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass
class _Histogram:
    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    n: int = 0

    def observe(self, value: float) -> None:
        if not self.counts:
            self.counts = [0] * len(self.bounds)
        for i, bound in enumerate(self.bounds):
            if value <= bound:
                self.counts[i] += 1
                break
        self.total += value
        self.n += 1


def _labels(pairs: tuple[tuple[str, str], ...]) -> str:
    def esc(v: str) -> str:
        return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

    return ",".join(f'{k}="{esc(v)}"' for k, v in pairs)


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
        self._histograms: dict[str, dict[tuple[tuple[str, str], ...], _Histogram]] = {}
        self.callbacks: dict[str, tuple[str, Callable[[], float]]] = {}  # name → (type, fn)

    def inc(self, name: str, labels: tuple[tuple[str, str], ...] = (), by: float = 1) -> None:
        with self._lock:
            series = self._counters.setdefault(name, {})
            series[labels] = series.get(labels, 0) + by

    def observe(self, name: str, labels: tuple[tuple[str, str], ...], value: float,
                bounds: tuple[float, ...] = BUCKETS) -> None:
        with self._lock:
            series = self._histograms.setdefault(name, {})
            hist = series.get(labels)
            if hist is None:
                hist = series[labels] = _Histogram(bounds)
            hist.observe(value)

    def request(self, endpoint: str, version: str, code: int, seconds: float, cold: bool,
                error_kind: str | None, init_s: float | None = None) -> None:
        ev = (("endpoint", endpoint), ("version", version))
        counters = [("mlops_requests_total", (*ev, ("code", str(code)))),
                    ("mlops_invocations_total", (*ev, ("start", "cold" if cold else "warm")))]
        if error_kind is not None:
            counters.append(("mlops_errors_total", (*ev, ("kind", error_kind))))
        with self._lock:  # one lock round per request
            for name, labels in counters:
                series = self._counters.setdefault(name, {})
                series[labels] = series.get(labels, 0) + 1
            hists = self._histograms.setdefault("mlops_request_duration_seconds", {})
            hist = hists.get(ev)
            if hist is None:
                hist = hists[ev] = _Histogram(BUCKETS)
            hist.observe(seconds)
        if init_s is not None:
            self.observe("mlops_init_duration_seconds", ev, init_s, INIT_BUCKETS)

    def value(self, name: str, **labels: str) -> float:
        """Sum of a counter over the series matching ``labels`` (tests, CLI)."""
        with self._lock:
            series = dict(self._counters.get(name, {}))
        return sum(v for k, v in series.items() if all((lk, lv) in k for lk, lv in
                                                       labels.items()))

    def render(self) -> str:
        out: list[str] = []
        with self._lock:
            counters = {n: dict(s) for n, s in self._counters.items()}
            hists = {n: {k: (_Histogram(h.bounds, list(h.counts), h.total, h.n))
                         for k, h in s.items()} for n, s in self._histograms.items()}
        for name in sorted(counters):
            out.append(f"# TYPE {name} counter")
            for labels, v in sorted(counters[name].items()):
                text = _labels(labels)
                out.append(f"{name}{{{text}}} {v:g}" if text else f"{name} {v:g}")
        for name in sorted(hists):
            out.append(f"# TYPE {name} histogram")
            for labels, h in sorted(hists[name].items()):
                base = _labels(labels)
                sep = "," if base else ""
                cumulative = 0
                for bound, count in zip(h.bounds, h.counts or [0] * len(h.bounds),
                                        strict=True):
                    cumulative += count
                    out.append(f'{name}_bucket{{{base}{sep}le="{bound:g}"}} {cumulative}')
                out.append(f'{name}_bucket{{{base}{sep}le="+Inf"}} {h.n}')
                out.append(f"{name}_sum{{{base}}} {h.total:.6f}")
                out.append(f"{name}_count{{{base}}} {h.n}")
        for name in sorted(self.callbacks):
            kind, read = self.callbacks[name]
            try:
                value = float(read())
            except Exception:
                continue
            out.append(f"# TYPE {name} {kind}")
            out.append(f"{name} {value:g}")
        return "\n".join(out) + "\n"
