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
    codes: dict[str, int] = {}

    def coded(values: Sequence[Any]) -> np.ndarray:
        return np.fromiter((codes.setdefault(str(v), len(codes)) for v in values),
                           dtype=np.int64, count=len(values))

    y, p = coded(labels), coded(predictions)
    s = np.fromiter((math.nan if v is None else float(v) for v in scores), dtype=np.float64,
                    count=len(scores))
    return coded_metrics(y, p, s, codes.get(positive, -1))


def coded_metrics(labels: np.ndarray, predictions: np.ndarray, scores: np.ndarray,
                  positive: float) -> dict[str, float | None]:
    """``classification_metrics`` of labels and predictions given as codes (equal codes, equal
    labels; ``positive`` the positive class's code) and scores as floats (NaN: unknown)."""
    n = labels.size
    if n == 0:
        return dict.fromkeys(CLASSIFICATION)
    y = labels == positive
    p = predictions == positive
    tp = int(np.sum(y & p))
    fp = int(np.sum(~y & p))
    fn = int(np.sum(y & ~p))
    accuracy = float(np.mean(labels == predictions))
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = (2 * precision * recall / (precision + recall)
          if precision is not None and recall is not None and precision + recall > 0 else None)
    known = ~np.isnan(scores)
    return {"accuracy": accuracy, "precision": precision, "recall": recall, "f1": f1,
            "roc_auc": roc_auc(y[known], scores[known])}


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


def regression_metrics(labels: Sequence[float] | np.ndarray,
                       predictions: Sequence[float] | np.ndarray) -> dict[str, float | None]:
    y = np.asarray(labels, dtype=np.float64)
    p = np.asarray(predictions, dtype=np.float64)
    if y.size == 0:
        return dict.fromkeys(REGRESSION)
    err = p - y
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    return {"mae": float(np.mean(np.abs(err))), "rmse": math.sqrt(float(np.mean(err ** 2))),
            "r2": 1.0 - float(np.sum(err ** 2)) / ss_tot if ss_tot > 0 else None}
