"""The gate threshold grammar: absolute and champion-relative bounds, parsed once at load."""

from __future__ import annotations

import copy
import json
import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest

from framework.config.loader import load_config
from framework.config.schema import json_schema
from framework.config.thresholds import PATTERN, Threshold, ThresholdError, parse_threshold
from framework.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]

VALID = {
    # text: (op, relative, bound with no champion / bound when the champion has 0.8)
    ">=0.95": (">=", False, 0.95),
    "<=50": ("<=", False, 50.0),
    "  > -1.5e-3 ": (">", False, -0.0015),
    "==1": ("==", False, 1.0),
    "<2E2": ("<", False, 200.0),
    ">= champion": (">=", True, 0.8),
    ">=champion-0.01": (">=", True, 0.79),
    ">= champion - 0.01": (">=", True, 0.79),
    ">= champion + 0.5": (">=", True, 1.3),
    "<= champion * 1.2": ("<=", True, 0.96),
    "<champion*2": ("<", True, 1.6),
    "== champion * 1e0": ("==", True, 0.8),
}

INVALID = {
    # text: (offset of the offending character, words of the message)
    "": (0, "it is empty"),
    "0.95": (0, "write '>=0.95'"),
    "=> 0.9": (0, "did you mean '>='?"),
    "= 0.9": (0, "it does not start with a comparison"),
    "champion": (0, "it does not start with a comparison"),
    ">=": (2, "nothing after '>='"),
    ">= ": (3, "nothing after '>='"),
    ">= champ - 0.01": (3, "did you mean 'champion'?"),
    ">= championship": (3, "'championship' is not a number or 'champion'"),
    ">= best": (3, "'best' is not a number or 'champion'"),
    ">= champion / 2": (12, "'/' cannot follow champion"),
    ">= champion -": (13, "nothing after 'champion -'"),
    ">= champion - -0.01": (14, "write one sign"),
    ">= champion * x": (14, "'x' after 'champion *' is not a number"),
    ">= champion - 0.01 + 1": (19, "unexpected '+' after 0.01"),
    ">=0.9 0.1": (6, "unexpected '0.1' after 0.9"),
    ">= 0.9 - champion": (7, "unexpected '-' after 0.9"),
    ">= .5": (3, "'.' is not a number or 'champion'"),
    ">= 1,5": (4, "unexpected ',' after 1"),
}


@pytest.mark.parametrize("text", VALID)
def test_valid_thresholds_parse_into_typed_values(text: str) -> None:
    op, relative, bound = VALID[text]
    threshold = parse_threshold(text)
    assert isinstance(threshold, Threshold) and str(threshold) == text  # it is its text
    assert threshold.op == op and threshold.relative is relative
    if relative:
        assert threshold.bound(None) is None  # no champion: nothing to compare with
        assert threshold.bound(0.8) == pytest.approx(bound)
    else:
        assert threshold.bound() == threshold.bound(123.0) == pytest.approx(bound)
    assert re.fullmatch(PATTERN, text), "the JSON Schema pattern refuses what the loader takes"
    assert parse_threshold(threshold.canonical).bound(0.8) == threshold.bound(0.8)


@pytest.mark.parametrize("text", INVALID)
def test_invalid_thresholds_say_where_and_what(text: str) -> None:
    offset, words = INVALID[text]
    with pytest.raises(ThresholdError) as caught:
        parse_threshold(text)
    error = caught.value
    assert error.offset == offset, str(error)
    assert words in str(error)
    what, _, hint = str(error).partition("; ")
    assert what.startswith(f"'{text}' is not a threshold") and hint
    assert not re.fullmatch(PATTERN, text), "the schema pattern accepts what the loader refuses"


def test_comparisons() -> None:
    assert parse_threshold(">= champion - 0.01").holds(0.79, 0.79)
    assert not parse_threshold("> champion").holds(0.8, 0.8)
    assert parse_threshold("<= champion * 1.2").holds(11.9, parse_threshold(
        "<= champion * 1.2").bound(10.0) or 0)
    assert parse_threshold(">= champion - 0.01").canonical == ">= champion - 0.01"
    assert parse_threshold(">=champion+0.5").canonical == ">= champion + 0.5"
    assert parse_threshold("<=50").canonical == "<= 50"


def test_a_threshold_copies_pickles_and_serialises_as_its_text() -> None:
    threshold = parse_threshold(">= champion - 0.01")
    for again in (copy.deepcopy(threshold), pickle.loads(pickle.dumps(threshold))):
        assert again == threshold and again.relative and again.offset == pytest.approx(-0.01)
    assert json.dumps({"auc": threshold}) == '{"auc": ">= champion - 0.01"}'


def test_the_grammar_module_imports_nothing_but_the_standard_library() -> None:
    """The Lambda zip may import it: no pydantic, no numpy."""
    code = ("import sys, importlib.util; "
            "spec = importlib.util.spec_from_file_location('t', sys.argv[1]); "
            "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); "
            "assert m.parse_threshold('>= champion - 0.01').relative; "
            "bad = {'pydantic', 'numpy', 'yaml'} & set(sys.modules); assert not bad, bad")
    subprocess.run([sys.executable, "-S", "-c", code,
                    str(REPO / "framework/config/thresholds.py")], check=True)


def _declared(tmp_path: Path, gates: str) -> Path:
    text = re.sub(r"    gates: \{[^\n]*\}\n", f"    gates: {gates}\n",
                  (REPO / "mlops.yaml").read_text(), count=1)
    (tmp_path / "examples").symlink_to(REPO / "examples")
    path = tmp_path / "mlops.yaml"
    path.write_text(text)
    return path


def test_the_loader_keeps_typed_thresholds(tmp_path: Path) -> None:
    path = _declared(tmp_path, '{roc_auc: ">= champion - 0.01", p99_latency_ms: '
                               '"<= champion * 1.2", accuracy: ">= 0.9"}')
    gates = load_config(path).config.models["diagnosis"].gates
    assert gates["roc_auc"].relative and gates["roc_auc"].offset == pytest.approx(-0.01)
    assert gates["p99_latency_ms"].factor == pytest.approx(1.2)
    assert not gates["accuracy"].relative and gates["accuracy"].value == 0.9


def test_a_malformed_threshold_is_a_config_problem_at_its_character(tmp_path: Path) -> None:
    path = _declared(tmp_path, '{roc_auc: ">= champ - 0.01", recall: 0.9, '
                               "accuracy: '>= champion / 2'}")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    problems = {p.where: p for p in caught.value.problems}
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1)
                if "    gates:" in text)
    text = path.read_text().splitlines()[line - 1]
    auc = problems["models.diagnosis.gates.roc_auc"]
    assert (auc.line, auc.column) == (line, text.index("champ -") + 1)
    assert "'champ' is not a number or 'champion'" in auc.what
    assert auc.hint == "did you mean 'champion'?"
    recall = problems["models.diagnosis.gates.recall"]  # a YAML number, not a comparison
    assert (recall.line, recall.column) == (line, text.index("0.9,") + 1)
    assert "write '>=0.9'" in recall.hint
    accuracy = problems["models.diagnosis.gates.accuracy"]  # single-quoted: points at '/'
    assert accuracy.column == text.index("/ 2") + 1
    assert "'/' cannot follow champion" in accuracy.what


def test_the_json_schema_carries_the_grammar() -> None:
    gates = json_schema()["$defs"]["Model"]["properties"]["gates"]
    assert gates["additionalProperties"] == {"type": "string", "pattern": PATTERN}
    assert "champion" in gates["description"]
    committed = json.loads((REPO / "mlops.schema.json").read_text(encoding="utf-8"))
    assert committed == json_schema(), \
        "mlops.schema.json is stale: run `mlops schema -o mlops.schema.json`"
