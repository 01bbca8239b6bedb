"""Model performance from ground-truth feedback joined to captured predictions.

Classification: accuracy, precision, recall, F1 (for the positive class) and ROC-AUC (from the
positive class's probability, rank-based, ties averaged). Regression: MAE, RMSE, R².
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

CLASSIFICATION = ("accuracy", "precision", "recall", "f1", "roc_auc")
REGRESSION = ("mae", "rmse", "r2")
HIGHER_IS_BETTER = {"accuracy", "precision", "recall", "f1", "roc_auc", "r2"}


def classification_metrics(labels: Sequence[Any], predictions: Sequence[Any],
                           scores: Sequence[float | None], positive: str,
                           ) -> dict[str, float | None]:
    """Metrics of predicted labels (and positive-class scores, when known) against labels."""
    y = np.asarray([str(v) == positive for v in labels])
    p = np.asarray([str(v) == positive for v in predictions])
    n = len(y)
    if n == 0:
        return dict.fromkeys(CLASSIFICATION)
    tp = int(np.sum(y & p))
    fp = int(np.sum(~y & p))
    fn = int(np.sum(y & ~p))
    accuracy = float(np.mean([str(a) == str(b) for a, b in zip(labels, predictions, strict=True)]))
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = (2 * precision * recall / (precision + recall)
          if precision is not None and recall is not None and precision + recall > 0 else None)
    known = [(bool(t), float(s)) for t, s in zip(y, scores, strict=True) if s is not None]
    return {"accuracy": accuracy, "precision": precision, "recall": recall, "f1": f1,
            "roc_auc": roc_auc([t for t, _ in known], [s for _, s in known])}


def roc_auc(truth: Sequence[bool], scores: Sequence[float]) -> float | None:
    """Area under the ROC curve (Mann–Whitney U / n_pos n_neg); None with one class only."""
    t = np.asarray(truth, dtype=bool)
    pos, neg = int(t.sum()), int((~t).sum())
    if pos == 0 or neg == 0:
        return None
    ranks = average_ranks(np.asarray(scores, dtype=np.float64))
    u = float(ranks[t].sum()) - pos * (pos + 1) / 2.0
    return u / (pos * neg)


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties given the mean of the ranks they span (as scipy's ``rankdata``;
    numpy alone: importing scipy.stats costs a command about 2 s)."""
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    new = np.concatenate(([True], ordered[1:] != ordered[:-1]))
    starts = np.flatnonzero(new)
    counts = np.diff(np.append(starts, len(ordered)))
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = (starts + (counts + 1) / 2.0)[np.cumsum(new) - 1]
    return ranks


def regression_metrics(labels: Sequence[float], predictions: Sequence[float],
                       ) -> dict[str, float | None]:
    y = np.asarray(labels, dtype=np.float64)
    p = np.asarray(predictions, dtype=np.float64)
    if y.size == 0:
        return dict.fromkeys(REGRESSION)
    err = p - y
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    return {"mae": float(np.mean(np.abs(err))), "rmse": math.sqrt(float(np.mean(err ** 2))),
            "r2": 1.0 - float(np.sum(err ** 2)) / ss_tot if ss_tot > 0 else None}
