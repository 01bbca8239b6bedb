"""Send realistic traffic with a covariate shift to the deployed endpoint, plus feedback.

    python examples/breast_cancer/simulate_drift.py URL [--rows 300] [--shift 1.35] [--clean]

URL is the endpoint's URL (``mlops status`` prints it). Rows come from scikit-learn's
breast-cancer data; with a shift, the size features (radius, perimeter, area: mean and worst)
are scaled by ``--shift`` and texture gets +4 — as if a new scanner were calibrated
differently. After each batch the true diagnoses are posted to ``URL/feedback`` (joined to
the captured predictions by request id and row), so the monitor can also measure accuracy.
Then run ``mlops monitor run diagnosis-drift`` (or wait for its schedule).
"""

from __future__ import annotations

import argparse
import json
import urllib.request
from typing import Any

import numpy as np

SHIFTED = ("mean_radius", "mean_perimeter", "mean_area", "worst_radius", "worst_perimeter",
           "worst_area")


def _post(url: str, body: Any) -> tuple[dict[str, Any], dict[str, str]]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read() or b"{}"), dict(resp.headers)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("url")
    ap.add_argument("--rows", type=int, default=300)
    ap.add_argument("--shift", type=float, default=1.35)
    ap.add_argument("--clean", action="store_true", help="send unshifted traffic")
    ap.add_argument("--batch", type=int, default=25)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()

    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    names = [n.replace(" ", "_") for n in data.feature_names]
    rng = np.random.default_rng(args.seed)
    idx = rng.choice(len(data.data), size=args.rows, replace=True)
    labels = ["malignant" if data.target[i] == 0 else "benign" for i in idx]
    rows = [dict(zip(names, map(float, data.data[i]), strict=True)) for i in idx]
    if not args.clean:
        for r in rows:
            for name in SHIFTED:
                r[name] *= args.shift
            r["mean_texture"] += 4.0
    url = args.url.rstrip("/")
    sent = labelled = 0
    for start in range(0, len(rows), args.batch):
        batch = rows[start:start + args.batch]
        body, headers = _post(url, {"instances": batch})
        rid = body.get("request_id") or headers.get("x-request-id") or headers.get(
            "X-Request-Id")
        sent += len(batch)
        if rid:
            fb = [{"request_id": rid, "row": i, "label": labels[start + i]}
                  for i in range(len(batch))]
            _post(f"{url}/feedback", fb)
            labelled += len(fb)
    print(f"sent {sent} rows ({'clean' if args.clean else f'shift x{args.shift}'}), "
          f"{labelled} labels")


if __name__ == "__main__":
    main()
