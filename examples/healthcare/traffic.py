"""Send cases to the deployed diagnosis endpoint, then the biopsy results as feedback.

    python traffic.py [--rows 300] [--seed 7] [--device-bias 1.08] [--drift] [--url URL]
                      [--until-file PATH]

Cases are drawn (with replacement) from the Wisconsin data. ``--drift`` is the covariate
shift of the scenario: the clinic's new imaging device measures sizes ``--device-bias``
larger (radius, perimeter and area: mean, error and worst; +8 % by default) — the cases are
the same kind, only their measurements moved. After each batch the biopsy results go to
``<url>/feedback`` so the monitor can compute recall. Prints how many malignant cases were
flagged. ``--until-file`` keeps sending until that file exists. The URL defaults to the
``assess`` endpoint of ./mlops.yaml.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from train import POSITIVE, cases, feature_names

from framework.client import EndpointClient, Sent, endpoint_url, until_file

SIZE = ("radius", "perimeter", "area")


def send(client: EndpointClient, rows: int, seed: int, bias: float | None) -> Sent:
    names = feature_names()
    x, y = cases()
    idx = np.random.default_rng(seed).choice(len(y), size=rows, replace=True)
    records = [dict(zip(names, map(float, x[i]), strict=True)) for i in idx]
    labels = [str(y[i]) for i in idx]
    if bias is not None:
        sized = [n for n in names if n.split("_")[-1] in SIZE or n.split("_")[1] in SIZE]
        for r in records:
            for n in sized:
                r[n] *= bias
    sent = client.send(records, labels)
    malignant = [i for i, lab in enumerate(labels) if lab == POSITIVE]
    flagged = sum(1 for i in malignant if sent.predictions[i] == POSITIVE)
    what = f"new device (sizes x{bias})" if bias is not None else "usual device"
    print(f"{what}: {sent.describe()}; flagged {flagged} of {len(malignant)} malignant cases")
    return sent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=300)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--drift", action="store_true", help="cases from the new device")
    ap.add_argument("--device-bias", type=float, default=1.08)
    ap.add_argument("--url", help="endpoint URL (default: ask the deploy state)")
    ap.add_argument("--until-file", type=Path, help="repeat until this file exists")
    args = ap.parse_args()
    client = EndpointClient(args.url or endpoint_url("mlops.yaml", "assess"))
    bias = args.device_bias if args.drift else None
    if args.until_file is None:
        send(client, args.rows, args.seed, bias)
        return
    total = until_file(args.until_file, lambda i: send(client, args.rows, args.seed + i, bias))
    print(f"while the rollout ran: {total.describe()}")


if __name__ == "__main__":
    main()
