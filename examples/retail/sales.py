"""Synthetic daily unit sales of five stores: weekly and yearly seasonality, promotions, price.

Deterministic: the sales of a store on a date depend only on (store, date) and the seed, so
the "actuals" traffic.py reports for a day are the same ones train.py would have seen.

  units = base(store) × weekday effect (weekends +35 %) × yearly effect (summer bump, and the
          holiday season from mid-November: up to +90 % in the last weeks of December)
          × promotion lift (+40 %) × price elasticity (−1.3) × noise (±8 %)

The first model sees January–September only (the chain's history so far); November and
December are the seasonal drift of the case study.
"""

from __future__ import annotations

import csv
import hashlib
import math
from collections.abc import Iterable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np

STORES = ("s01", "s02", "s03", "s04", "s05")
BASE = {"s01": 120.0, "s02": 80.0, "s03": 200.0, "s04": 60.0, "s05": 150.0}
WEEKDAY = (0.9, 0.85, 0.9, 0.95, 1.1, 1.35, 1.3)
FEATURES = ("store", "day_of_week", "week_of_year", "promotion", "price", "temperature")
LABEL = "units"
COLUMNS = ("date", *FEATURES, LABEL)
HISTORY = (date(2025, 1, 1), date(2025, 9, 30))
HOLIDAYS = (date(2025, 11, 1), date(2025, 12, 31))


def _rng(store: str, day: date, seed: int) -> np.random.Generator:
    digest = hashlib.sha256(f"{seed}/{store}/{day.isoformat()}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def yearly(day: date) -> float:
    doy = day.timetuple().tm_yday
    summer = 0.12 * math.sin(2 * math.pi * (doy - 100) / 365)
    holiday = 0.9 * max(0.0, (doy - 318) / 47) ** 1.5 if doy > 318 else 0.0  # from mid-Nov
    return 1.0 + summer + holiday


def day_row(store: str, day: date, seed: int = 0) -> dict[str, Any]:
    """Features and actual units of one store on one day."""
    rng = _rng(store, day, seed)
    promotion = int(rng.random() < 0.2)
    price = round(float(rng.uniform(0.97, 1.03) * (0.85 if promotion else 1.0)) * 4.99, 2)
    doy = day.timetuple().tm_yday
    temperature = round(11 + 10 * math.sin(2 * math.pi * (doy - 110) / 365)
                        + float(rng.normal(0, 2.5)), 1)
    mean = (BASE[store] * WEEKDAY[day.weekday()] * yearly(day) * (1.4 if promotion else 1.0)
            * (price / 4.99) ** -1.3)
    units = round(mean * float(rng.lognormal(0, 0.08)))
    return {"date": day.isoformat(), "store": store, "day_of_week": day.weekday(),
            "week_of_year": day.isocalendar()[1], "promotion": promotion, "price": price,
            "temperature": temperature, LABEL: units}


def days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def history(start: date, end: date, seed: int = 0) -> list[dict[str, Any]]:
    return [day_row(s, d, seed) for d in days(start, end) for s in STORES]


def read(path: Path) -> list[dict[str, Any]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def append(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    """Add rows for (store, date) pairs the file does not have yet; how many were added."""
    have = {(r["store"], r["date"]) for r in read(path)} if path.exists() else set()
    new = [r for r in rows if (r["store"], r["date"]) not in have]
    new = list({(r["store"], r["date"]): r for r in new}.values())
    fresh = not path.exists()
    with open(path, "a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(COLUMNS), lineterminator="\n")
        if fresh:
            writer.writeheader()
        writer.writerows(sorted(new, key=lambda r: (r["date"], r["store"])))
    return len(new)
