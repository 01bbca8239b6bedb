"""``mlops init``: write a starting mlops.yaml for an ONNX model (and, optionally, its data).

The features come from the model's inputs: one 2-D input ``[N, k]`` gives ``k`` features
(named after the CSV's header, minus the label column, or ``feature_1`` … without a CSV), one
input per feature gives the features of those names. Their type follows the input's element
type; with a CSV, ``min``/``max`` are the observed range widened by 10% of it on each side, a
column with empty cells is ``nullable`` and a string input's values are the CSV's. The task is
guessed from the outputs: a label plus probabilities is a classifier, one float output a
regressor. The file written passes ``mlops validate``; its comments say what to edit next.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Annotated, Any

import typer

from framework.cli_common import DEFAULT_FILE, FileOpt, check_name, err, out
from framework.errors import ConfigError, Problem
from framework.runtime.signature import FLOAT_TYPES, INT_TYPES

FEATURE_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
LABEL_GUESSES = ("label", "target", "y", "class")


@dataclass
class Column:
    """What the CSV holds in one column."""

    name: str
    numbers: list[float] = field(default_factory=list)
    strings: set[str] = field(default_factory=set)
    empty: int = 0
    numeric: bool = True


@dataclass(frozen=True)
class FeatureDraft:
    name: str
    type: str  # float | int | bool | category
    min: float | None = None
    max: float | None = None
    values: tuple[str, ...] | None = None
    nullable: bool = False

    def yaml(self) -> str:
        parts = [f"name: {self.name}", f"type: {self.type}"]
        if self.min is not None and self.max is not None:
            parts += [f"min: {_number(self.min)}", f"max: {_number(self.max)}"]
        if self.values is not None:
            parts.append("values: [" + ", ".join(_quote(v) for v in self.values) + "]")
        if self.nullable:
            parts.append("nullable: true")
        return "{" + ", ".join(parts) + "}"


def _bad(where: str, what: str, hint: str) -> ConfigError:
    return ConfigError([Problem(where=where, what=what, hint=hint)], source="mlops init")


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _number(value: float) -> str:
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def widened(low: float, high: float, *, integer: bool) -> tuple[float, float]:
    """The observed range widened by 10% of its width on each side (10% of the value, or 1,
    when every value is the same), rounded outwards to a few significant digits."""
    pad = (high - low) * 0.1 or abs(low) * 0.1 or 1.0
    lo, hi = low - pad, high + pad
    if integer:
        return float(math.floor(lo)), float(math.ceil(hi))
    step = 10.0 ** (math.floor(math.log10(pad)) - 2)
    return _round(math.floor(lo / step) * step, step), _round(math.ceil(hi / step) * step, step)


def _round(value: float, step: float) -> float:
    digits = max(0, -math.floor(math.log10(step)))
    return round(value, digits)


def relative_path(path: Path, root: Path, *, what: str, option: str) -> str:
    """``path`` as mlops.yaml names it: relative to its folder, inside it."""
    resolved = path.resolve()
    if not resolved.is_file():
        raise _bad(option, f"{what} '{path}' does not exist",
                   f"give the path of an existing file with {option}")
    try:
        return PurePosixPath(resolved.relative_to(root.resolve())).as_posix()
    except ValueError:
        raise _bad(option, f"{what} '{path}' is outside {root.resolve()}",
                   f"mlops.yaml names files inside its folder: copy it under {root.resolve()} "
                   "and run mlops init there") from None


def read_csv(path: Path) -> list[Column]:
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if not header:
            raise _bad("--data", f"'{path}' has no header row",
                       "give a CSV whose first row names the columns")
        columns = [Column(name.strip()) for name in header]
        for row in reader:
            for column, cell in zip(columns, row, strict=False):
                cell = cell.strip()
                if not cell:
                    column.empty += 1
                    continue
                column.strings.add(cell)
                if column.numeric:
                    try:
                        number = float(cell)
                    except ValueError:
                        column.numeric = False
                        continue
                    if math.isnan(number):
                        column.empty += 1
                    else:
                        column.numbers.append(number)
    return columns


def pick_label(columns: list[Column], width: int | None, label: str | None) -> list[Column]:
    """The feature columns: the CSV's without the label column (named, or guessed)."""
    names = [c.name for c in columns]
    if label is not None:
        check_name(label, names, what="column", where="--label", source="mlops init",
                   listed="in the CSV")
        return [c for c in columns if c.name != label]
    if width is None or len(columns) == width:
        return columns
    guesses = [c for c in columns if c.name.lower() in LABEL_GUESSES]
    if len(columns) == width + 1 and len(guesses) == 1:
        return [c for c in columns if c is not guesses[0]]
    raise _bad("--data", f"the CSV has {len(columns)} columns and the model takes {width} "
               "values per row", "name the label column with --label COLUMN "
               f"(columns: {', '.join(names)})")


def feature_type(element: str) -> str:
    if element in FLOAT_TYPES:
        return "float"
    if element in INT_TYPES:
        return "int"
    if element == "bool":
        return "bool"
    return "category"


def draft(name: str, element: str, column: Column | None) -> FeatureDraft:
    kind = feature_type(element)
    where = f"feature {name}"
    if not FEATURE_NAME_RE.match(name):
        raise _bad(where, f"'{name}' is not a valid feature name",
                   "rename the column (letters, digits, '_', '-' or '.', not starting with a "
                   "digit) in the CSV, or the input in the model")
    if kind == "category":
        if column is None:
            raise _bad(where, f"the model's input '{name}' takes {element} values",
                       "give --data train.csv so the accepted values are read from it")
        return FeatureDraft(name, kind, values=tuple(sorted(column.strings)),
                            nullable=column.empty > 0)
    if column is None:
        return FeatureDraft(name, kind)
    if not column.numeric:
        raise _bad(where, f"column '{name}' holds text but the model takes {element} values",
                   "encode it as numbers in the CSV, or export the model with a string input "
                   "for it")
    if kind == "bool" or not column.numbers:
        return FeatureDraft(name, kind, nullable=column.empty > 0 and kind == "float")
    low, high = widened(min(column.numbers), max(column.numbers), integer=kind == "int")
    return FeatureDraft(name, kind, low, high, nullable=column.empty > 0 and kind == "float")


def infer_features(inputs: list[dict[str, Any]], columns: list[Column] | None,
                   label: str | None) -> list[FeatureDraft]:
    """The features, in the order the model takes them."""
    if len(inputs) == 1 and inputs[0]["shape"] is not None and len(inputs[0]["shape"]) == 2 \
            and (columns is None or inputs[0]["name"] not in [c.name for c in columns]):
        tensor = inputs[0]
        width = tensor["shape"][1]
        if columns is None:
            if width is None:
                raise _bad("--model", f"input '{tensor['name']}' takes a number of values per "
                           "row the file does not fix", "give --data train.csv: its columns "
                           "(minus --label) name the features")
            return [draft(f"feature_{i + 1}", tensor["type"], None) for i in range(width)]
        features = pick_label(columns, width, label)
        if width is not None and len(features) != width:
            raise _bad("--data", f"the CSV has {len(features)} feature columns but the model "
                       f"takes {width} values per row", "name the label column with --label, "
                       "or give the CSV the model was trained on")
        return [draft(c.name, tensor["type"], c) for c in features]
    by_name = {c.name: c for c in columns or []}
    if columns is not None:
        missing = [t["name"] for t in inputs if t["name"] not in by_name]
        if missing:
            raise _bad("--data", f"the model's inputs {', '.join(missing)} are not CSV columns",
                       "give the CSV the model was trained on (a column per input)")
    return [draft(t["name"], t["type"], by_name.get(t["name"])) for t in inputs]


def guess_task(outputs: list[dict[str, Any]]) -> str:
    """classification: a label plus probabilities (or a non-float label); regression: one
    float output."""
    tensors = [t for t in outputs if t["shape"] is not None]
    if len(outputs) == 1 and tensors and tensors[0]["type"] in FLOAT_TYPES:
        return "regression"
    return "classification"


def slug(text: str, limit: int) -> str:
    name = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    name = re.sub(r"^[^a-z]+", "", name)[:limit].strip("-")
    return name or "model"


def render(*, project: str, name: str, artifact: str, task: str, features: list[FeatureDraft],
           reference: str | None, inputs: list[dict[str, Any]],
           outputs: list[dict[str, Any]]) -> str:
    def sig(ts: list[dict[str, Any]]) -> str:
        return ", ".join(f"{t['name']} {t['type']}"
                         + ("" if t["shape"] is None else
                            "[" + ", ".join("N" if d is None else str(d) for d in t["shape"]) + "]")
                         for t in ts)

    lines = [
        "# yaml-language-server: $schema=./mlops.schema.json",
        "# Written by `mlops init`. Next: check the features below (names, types, ranges), then",
        "# `mlops validate`, `mlops plan` and `mlops deploy` (the embedded local AWS by default).",
        f"project: {project}",
        "",
        "models:",
        f"  {name}:",
        "    version: 1.0.0                    # bump it for every new artifact",
        f"    artifact: {artifact}",
        f"    task: {task}".ljust(38) + "# guessed from the outputs: " + sig(outputs),
    ]
    if reference:
        lines.append(f"    reference: {reference}".ljust(38)
                     + "# training data: the drift baseline")
    else:
        lines.append("    # reference: train.csv          # training data: the drift baseline")
    lines += [
        "    # Gates every new version must pass (`mlops test`): add hold-out data and thresholds,",
        "    # e.g. holdout: {path: holdout.csv, label: LABEL}  gates: {accuracy: \">=0.9\"}",
        f"    # Input contract, in the model's order (inputs: {sig(inputs)}).",
    ]
    if reference:
        lines.append("    # min/max: the range seen in the data, widened by 10%; requests outside "
                     "it get a 422.")
    else:
        lines.append("    # Rename the features as callers will send them; add min/max to "
                     "reject out-of-range values.")
    lines.append("    features:")
    lines += [f"      - {f.yaml()}" for f in features]
    lines += [
        "",
        "endpoints:",
        "  predict:",
        f"    model: {name}",
        f"    route: POST /{name}/predict    # body: {{\"instances\": [{{...}}]}}",
        "    memory: 1024                      # MB",
        "    timeout: 15                       # seconds",
    ]
    if reference:
        lines += [
            "    capture: {sample_rate: 1.0}       # record requests for the drift monitor",
            "",
            "monitors:",
            f"  {name}-drift:",
            "    endpoint: predict",
            "    schedule: rate(1 day)             # EventBridge rate() or cron() expression",
            "    # notify: {email: [team@example.com], when: drift}",
        ]
    else:
        lines += [
            "",
            "# monitors: give `reference:` above, then watch the endpoint for drift:",
            f"#   {name}-drift: {{endpoint: predict, schedule: rate(1 day)}}",
        ]
    return "\n".join(lines) + "\n"


def init(
    model: Annotated[Path, typer.Option("--model", "-m", help="The ONNX file to serve.")],
    data: Annotated[Path | None, typer.Option(
        "--data", "-d", help="Training CSV: feature names, ranges and the drift baseline.")] = None,
    label: Annotated[str | None, typer.Option(
        "--label", help="The CSV's label column (not a feature).")] = None,
    name: Annotated[str | None, typer.Option(
        "--name", help="Model name (default: from the ONNX file's name).")] = None,
    project: Annotated[str | None, typer.Option(
        "--project", help="Project name (default: from the folder's name).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
    file: FileOpt = DEFAULT_FILE,
) -> None:
    """Write a starting mlops.yaml: features from an ONNX file (and a CSV), task from its
    outputs."""
    from framework.artifacts import onnx_signature
    from framework.config.models import ITEM_MAX, NAME_RE, PROJECT_MAX

    if file.exists() and not force:
        raise _bad(str(file), "already exists",
                   "edit it, or run mlops init --force to overwrite it")
    root = file.resolve().parent
    artifact = relative_path(model, root, what="model", option="--model")
    reference = relative_path(data, root, what="CSV", option="--data") if data else None
    try:
        signature = onnx_signature(model)
    except Exception as exc:  # onnxruntime raises several exception types for bad files
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise _bad("--model", f"'{model}' is not a valid ONNX model ({reason})",
                   "export the model with skl2onnx (or torch.onnx) and point --model at it"
                   ) from None
    columns = read_csv(data) if data else None
    if label is not None and columns is None:
        raise _bad("--label", "a label column needs --data", "give --data train.csv too")
    features = infer_features(signature["inputs"], columns, label)
    model_name = name or slug(model.stem, ITEM_MAX - len("-drift"))
    project_name = project or slug(root.name, PROJECT_MAX)
    for option, value in (("--name", model_name), ("--project", project_name)):
        if not NAME_RE.match(value) or "--" in value:
            raise _bad(option, f"'{value}' is not a valid name",
                       "use lower-case letters, digits and single hyphens, starting with a letter")
    text = render(project=project_name, name=model_name, artifact=artifact,
                  task=guess_task(signature["outputs"]), features=features, reference=reference,
                  inputs=signature["inputs"], outputs=signature["outputs"])
    file.write_text(text, encoding="utf-8")
    out.print(f"wrote {file}: model {model_name} ({len(features)} features, "
              f"{guess_task(signature['outputs'])}), endpoint predict"
              + (f", monitor {model_name}-drift" if reference else ""))
    err.print(f"next: check the features in {file}, then mlops validate and mlops deploy")


def register(app: typer.Typer) -> None:
    app.command("init")(init)


__all__ = ["guess_task", "infer_features", "init", "register", "widened"]
