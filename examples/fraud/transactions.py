"""Synthetic card transactions: ~1.5 % fraud, deterministic for a seed.

Legitimate payments are mostly daytime, in-store (``pos``) or in the app, small to medium
amounts at groceries, restaurants and fuel stations, by customers with a few payments a day
near home. Fraud is larger, at night, online, at electronics / digital-goods / travel
merchants, far from home, in bursts on young accounts — with overlap: one fraud in seven is
"quiet" and looks like ordinary spending, so no model finds all of it.

``pattern="card_testing"`` adds the new scheme of the drift scenario: fraudsters test stolen
cards with many tiny daytime app payments at digital-goods merchants (and the fraud share
rises). A model trained without it misses most of it; the monitor sees the shift in amounts,
merchants, channels and hours.
"""

from __future__ import annotations

from typing import Any

import numpy as np

CATEGORIES = ("grocery", "restaurant", "fuel", "fashion", "electronics", "digital_goods",
              "travel", "gambling")
CHANNELS = ("pos", "app", "web", "atm")
FEATURES = ("amount", "merchant_category", "channel", "hour", "distance_km",
            "account_age_days", "tx_last_24h")
NUMERIC = ("amount", "hour", "distance_km", "account_age_days", "tx_last_24h")
LABEL = "label"
FRAUD, LEGIT = "fraud", "legit"

LEGIT_CAT = (0.30, 0.22, 0.12, 0.14, 0.06, 0.08, 0.05, 0.03)
FRAUD_CAT = (0.04, 0.03, 0.03, 0.10, 0.30, 0.25, 0.18, 0.07)
LEGIT_CH = (0.55, 0.25, 0.15, 0.05)
FRAUD_CH = (0.12, 0.20, 0.58, 0.10)


def _hours(rng: np.random.Generator, n: int, night: float) -> np.ndarray:
    day = np.clip(np.round(rng.normal(14, 3.5, n)), 6, 23)
    late = rng.integers(0, 6, n)
    return np.where(rng.random(n) < night, late, day).astype(int)


def _legit(rng: np.random.Generator, n: int) -> dict[str, Any]:
    return {
        "amount": np.round(rng.lognormal(3.4, 0.9, n), 2),
        "merchant_category": rng.choice(CATEGORIES, n, p=LEGIT_CAT),
        "channel": rng.choice(CHANNELS, n, p=LEGIT_CH),
        "hour": _hours(rng, n, night=0.04),
        "distance_km": np.round(rng.lognormal(1.5, 1.0, n), 1),
        "account_age_days": np.round(rng.gamma(2.0, 500, n)),
        "tx_last_24h": rng.poisson(1.5, n),
    }


def _fraud(rng: np.random.Generator, n: int) -> dict[str, Any]:
    rows = {
        "amount": np.round(rng.lognormal(5.3, 0.9, n), 2),
        "merchant_category": rng.choice(CATEGORIES, n, p=FRAUD_CAT),
        "channel": rng.choice(CHANNELS, n, p=FRAUD_CH),
        "hour": _hours(rng, n, night=0.55),
        "distance_km": np.round(rng.lognormal(3.5, 1.3, n), 1),
        "account_age_days": np.round(rng.gamma(1.2, 150, n)),
        "tx_last_24h": rng.poisson(5.0, n),
    }
    quiet = rng.random(n) < 0.15  # fraud that looks like ordinary spending
    ordinary = _legit(rng, n)
    return {k: np.where(quiet, ordinary[k], v) for k, v in rows.items()}


def _card_testing(rng: np.random.Generator, n: int) -> dict[str, Any]:
    return {
        "amount": np.round(rng.uniform(0.5, 4.0, n), 2),
        "merchant_category": rng.choice(CATEGORIES, n, p=(0, 0, 0, 0, 0.1, 0.9, 0, 0)),
        "channel": rng.choice(CHANNELS, n, p=(0, 0.85, 0.15, 0)),
        "hour": _hours(rng, n, night=0.10),
        "distance_km": np.round(rng.lognormal(1.5, 1.0, n), 1),
        "account_age_days": np.round(rng.gamma(2.0, 500, n)),
        "tx_last_24h": rng.poisson(2.0, n),
    }


def transactions(n: int, seed: int, *, fraud_rate: float = 0.015,
                 pattern: str = "none") -> tuple[list[dict[str, Any]], list[str]]:
    """``n`` transactions (records with the seven features) and their labels."""
    rng = np.random.default_rng(seed)
    is_fraud = rng.random(n) < fraud_rate
    if pattern not in ("none", "card_testing"):
        raise ValueError(f"unknown fraud pattern '{pattern}' (none, card_testing)")
    parts = {LEGIT: _legit(rng, n), FRAUD: _fraud(rng, n), "testing": _card_testing(rng, n)}
    source = np.where(is_fraud, FRAUD, LEGIT)
    if pattern == "card_testing":  # most of the fraud is the new scheme
        source = np.where(is_fraud & (rng.random(n) < 0.7), "testing", source)
    records = []
    for i in range(n):
        part = parts[str(source[i])]
        rec: dict[str, Any] = {}
        for f in FEATURES:
            v = part[f][i]
            rec[f] = str(v) if f in ("merchant_category", "channel") else (
                int(v) if f in ("hour", "tx_last_24h", "account_age_days") else float(v))
        records.append(rec)
    return records, [FRAUD if f else LEGIT for f in is_fraud]
