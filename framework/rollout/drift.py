"""Output drift of a candidate during a rollout: do its answers follow another distribution
than the stable version's, on the same traffic window?

Both versions' captured predictions of the step's window are compared: labels with a
chi-squared test of the versions × classes table, numbers with a two-sample KS test. With too
few answers from either version the signal is unknown (None), never a false alarm.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from scipy import stats

from framework.monitoring.capture import CaptureCache, ReadLog
from framework.monitoring.spec import Window
from framework.rollout.driver import HealthSource
from framework.rollout.record import RolloutRecord
from framework.rollout.strategy import Health

MIN_ANSWERS = 20
ALPHA = 0.01


def output_drift(stable: list[Any], candidate: list[Any], alpha: float = ALPHA,
                 ) -> tuple[bool | None, str]:
    if len(stable) < MIN_ANSWERS or len(candidate) < MIN_ANSWERS:
        return None, f"{len(stable)} stable and {len(candidate)} candidate answers " \
                     f"(< {MIN_ANSWERS} each): not judged"
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in stable + candidate):
        result = stats.ks_2samp(stable, candidate)
        p = float(result.pvalue)
        return p < alpha, f"KS p={p:.3g} between stable and candidate answers"
    labels = sorted({str(v) for v in stable + candidate})
    a, b = Counter(map(str, stable)), Counter(map(str, candidate))
    table = [[a[x] for x in labels], [b[x] for x in labels]]
    if len(labels) < 2:
        return False, "both versions give the same single answer"
    p = float(stats.chi2_contingency(table).pvalue)
    return p < alpha, f"chi-squared p={p:.3g} between stable and candidate answer mixes"


@dataclass
class WithOutputDrift:
    """Adds ``Health.drift`` (candidate vs stable answers, from captures) to another source.
    Each capture object is read once per rollout session, however many ticks ask."""

    inner: HealthSource
    store: Any  # framework.monitoring.store.S3Store
    endpoints: frozenset[str]  # endpoints whose rollout watches drift
    caches: dict[str, CaptureCache] = field(default_factory=dict)

    def sample(self, record: RolloutRecord) -> dict[str, Any]:
        return self.inner.sample(record)

    def health(self, record: RolloutRecord, since: float,
               baseline: dict[str, Any]) -> Health:
        health = self.inner.health(record, since, baseline)
        if record.endpoint not in self.endpoints:
            return health
        window = Window(datetime.fromtimestamp(since, UTC), datetime.now(UTC))
        answers: dict[str, list[Any]] = {record.stable_model: [], record.candidate_model: []}
        cache = self.caches.get(record.endpoint)
        if cache is None:
            cache = self.caches[record.endpoint] = CaptureCache(self.store, record.endpoint)
        for rec in cache.read(window, ReadLog()):
            version = str(rec.get("version"))
            if version in answers and "prediction" in rec:
                answers[version].append(rec["prediction"])
        drifted, _ = output_drift(answers[record.stable_model], answers[record.candidate_model])
        return replace(health, drift=drifted)
