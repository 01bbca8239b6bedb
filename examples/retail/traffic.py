"""Ask the deployed forecaster for store-days, then report the actual sales as feedback.

    python traffic.py [--rows 250] [--seed 3] [--drift] [--record] [--url URL]
                      [--until-file PATH]

Without ``--drift`` the store-days are drawn from January–September (a back-test over the
period the model knows); with ``--drift`` from the holiday season, 1 November – 31 December,
which the first model never saw: colder days, weeks 44–52, and demand up to +90 %. After each
batch the actual units go to ``<url>/feedback`` so the monitor measures RMSE. ``--record``
also appends the actuals to ``data/sales.csv`` (the stores' sales landing in the warehouse),
which is what the next retraining learns from. Prints the forecasts' MAE.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from sales import FEATURES, HISTORY, HOLIDAYS, LABEL, STORES, append, day_row, days

from framework.client import EndpointClient, Sent, endpoint_url, until_file


def send(client: EndpointClient, rows: int, seed: int, drift: bool, record: bool) -> Sent:
    period = days(*(HOLIDAYS if drift else HISTORY))
    rng = np.random.default_rng(seed)
    picks = [(STORES[int(rng.integers(len(STORES)))], period[int(rng.integers(len(period)))])
             for _ in range(rows)]
    actual = [day_row(store, day) for store, day in picks]
    sent = client.send([{f: r[f] for f in FEATURES} for r in actual],
                       [r[LABEL] for r in actual])
    mae = float(np.mean([abs(p - r[LABEL]) for p, r in zip(sent.predictions, actual,
                                                              strict=True)]))
    what = "holiday season" if drift else "January-September"
    added = append(Path("data/sales.csv"), actual) if record else 0
    note = f"; {added} new store-days recorded in data/sales.csv" if record else ""
    print(f"{what}: {sent.describe()}; forecast MAE {mae:.1f} units{note}")
    return sent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=250)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--drift", action="store_true", help="store-days of the holiday season")
    ap.add_argument("--record", action="store_true", help="append actuals to data/sales.csv")
    ap.add_argument("--url", help="endpoint URL (default: ask the deploy state)")
    ap.add_argument("--until-file", type=Path, help="repeat until this file exists")
    args = ap.parse_args()
    client = EndpointClient(args.url or endpoint_url("mlops.yaml", "forecast"))
    if args.until_file is None:
        send(client, args.rows, args.seed, args.drift, args.record)
        return
    total = until_file(args.until_file,
                       lambda i: send(client, args.rows, args.seed + i, args.drift, False))
    print(f"while the rollout ran: {total.describe()}")


if __name__ == "__main__":
    main()
