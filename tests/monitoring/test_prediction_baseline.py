"""Prediction drift's baseline: the served version's answers on its reference data (recorded
at registration), else the monitor's first window."""

from __future__ import annotations

import json

from framework.monitoring.check import (
    WindowFacts,
    baseline_key,
    load_reference,
    prediction_drift,
)
from framework.monitoring.profile import CategoricalProfile
from tests.monitoring.support import spec, store_with_reference


def test_prediction_drift_compares_with_the_versions_reference_answers() -> None:
    def facts(yes_share: float, n: int = 400) -> WindowFacts:
        answers = CategoricalProfile()
        answers.add_values("yes" if i < yes_share * n else "no" for i in range(n))
        return WindowFacts(answers=answers)

    store = store_with_reference()
    key = "models/clf/1.0.0/reference.json"
    body = json.loads(store.get(key) or b"{}")
    body["predictions"] = {"kind": "categorical", "count": 1000, "missing": 0,
                           "frequencies": {"no": 700, "yes": 300}}
    store.put(key, json.dumps(body).encode(), "application/json")
    answers = load_reference(store, spec())[2]  # as run_check reads them
    same = prediction_drift(store, spec(), facts(0.3), 0.01, answers)
    assert same is not None and same["baseline"] == "reference predictions of clf@1.0.0"
    assert same["drifted"] is False
    shifted = prediction_drift(store, spec(), facts(0.6), 0.01, answers)
    assert shifted is not None and shifted["drifted"] is True
    assert store.get(baseline_key("m-drift")) is None  # no first-window baseline needed

    plain = store_with_reference()  # a version registered without reference answers
    assert load_reference(plain, spec())[2] is None
    first = prediction_drift(plain, spec(), facts(0.3), 0.01, None)
    assert first is not None and first["baseline"] == "created"
    again = prediction_drift(plain, spec(), facts(0.6), 0.01, None)
    assert again is not None and again["baseline"] == "first window" and again["drifted"]
