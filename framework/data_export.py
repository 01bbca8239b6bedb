"""Production data as a training set: captured requests joined with their feedback labels.

An endpoint's captures (``capture/<endpoint>/dt=YYYY-MM-DD/``) hold, per row, the inputs the
model saw; feedback (``feedback/<endpoint>/dt=YYYY-MM-DD/``) holds the ground truth posted
later, by request id and row. Joined, they are rows of the model's features plus the label
column its hold-out data uses (``holdout.label``; ``label`` when none is declared): the
columns of its training data. Both are read with the monitors' reader
(``framework.monitoring.capture``): a file that cannot be read is skipped and reported, a
row delivered twice counts once.

``mlops data export`` writes such a set (CSV or JSON lines); ``mlops retrain
--with-production`` appends its labelled rows to the model's declared training data.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from framework.config.models import WINDOW_RE, Config, Model
from framework.errors import ConfigError, Problem
from framework.monitoring.capture import ReadLog, read_captures, read_feedback
from framework.monitoring.spec import Window, window_seconds
from framework.monitoring.store import Store

DEFAULT_LABEL = "label"
OTHER_MODEL = "captured rows of another model than the endpoint serves now"
WINDOW_HINT = "write a duration ending now (7d, 24h, 90m) or START..END in UTC, e.g. " \
              "2026-03-01..2026-03-08"


def parse_window(text: str, now: datetime) -> Window:
    """``7d`` / ``24h`` / ``90m`` (ending ``now``) or ``START..END``; ValueError otherwise."""
    text = text.strip()
    if ".." in text:
        return Window.parse(text)
    if not WINDOW_RE.match(text) or window_seconds(text, "") <= 0:
        raise ValueError(f"'{text}' is not a window")
    return Window.ending(now, window_seconds(text, ""))


def label_column(model: Model) -> str:
    """The label column of the model's data: the one its hold-out set declares."""
    return model.holdout.label if model.holdout is not None else DEFAULT_LABEL


def capturing_endpoints(config: Config, model: str) -> list[str]:
    """Endpoints that serve ``model`` and capture their traffic."""
    return [name for name, ep in config.endpoints.items()
            if ep.model_name == model and ep.capture is not None]


@dataclass
class Export:
    """What an export read and wrote; the counts grow while its rows are consumed."""

    endpoint: str
    model: str
    label: str
    columns: tuple[str, ...]
    window: Window
    labelled_only: bool
    rows: int = 0  # written
    labelled: int = 0  # of those, with a label
    unlabelled: int = 0  # captured rows without a label (kept, or left out with labelled_only)
    labels: int = 0  # feedback labels read for the window
    log: ReadLog = field(default_factory=ReadLog)

    def summary(self) -> dict[str, Any]:
        skipped = self.log.skipped_issue()
        return {
            "endpoint": self.endpoint, "model": self.model, "window": self.window.to_dict(),
            "columns": list(self.columns), "label": self.label, "rows": self.rows,
            "labelled": self.labelled, "unlabelled": self.unlabelled,
            "unlabelled_kept": not self.labelled_only, "feedback_labels": self.labels,
            "files": self.log.files, "repeated": self.log.repeated,
            "issues": [*self.log.issues, *([skipped] if skipped else [])],
        }

    def problems(self) -> list[str]:
        """What a reader of the export should know: files skipped, rows left out."""
        found = [str(i["message"]) for i in self.log.issues]
        skipped = self.log.skipped_issue()
        if skipped:
            found.append(str(skipped["message"]))
        return found


def export(store: Store, config: Config, endpoint: str, window: Window, *,
           labelled_only: bool = False) -> tuple[Export, Iterator[dict[str, Any]]]:
    """The export's description and its rows (``{column: value}``, in column order), read
    lazily: the counts in the description are final once the rows are consumed."""
    ep = config.endpoints[endpoint]
    model = config.models[ep.model_name]
    label = label_column(model)
    features = tuple(f.name for f in model.features)
    result = Export(endpoint=endpoint, model=ep.model_name, label=label,
                    columns=(*features, label), window=window, labelled_only=labelled_only)
    labels = read_feedback(store, endpoint, window, result.log)
    result.labels = len(labels)
    return result, _rows(store, result, features, labels)


def _rows(store: Store, result: Export, features: tuple[str, ...],
          labels: Mapping[tuple[str, int], Any]) -> Iterator[dict[str, Any]]:
    for rec in read_captures(store, result.endpoint, result.window, result.log):
        if rec.get("model") != result.model:
            result.log.skip(OTHER_MODEL)
            continue
        found = rec.get("inputs")
        inputs: dict[str, Any] = found if isinstance(found, dict) else {}
        row = rec.get("row", 0)
        label = labels.get((str(rec.get("request_id")), row if type(row) is int else -1))
        if label is None:
            result.unlabelled += 1
            if result.labelled_only:
                continue
        else:
            result.labelled += 1
        result.rows += 1
        yield {**{name: inputs.get(name) for name in features}, result.label: label}


def cell(value: Any) -> str:
    """A value as a CSV cell: empty for a missing one, JSON's spelling for booleans."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def write_csv(columns: Sequence[str], rows: Iterable[Mapping[str, Any]], fh: IO[str]) -> None:
    writer = csv.writer(fh, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([cell(row.get(c)) for c in columns])


def write_jsonl(rows: Iterable[Mapping[str, Any]], fh: IO[str]) -> None:
    for row in rows:
        fh.write(json.dumps(row, separators=(",", ":")) + "\n")


def write_file(path: Path, fmt: str, columns: Sequence[str],
               rows: Iterable[Mapping[str, Any]]) -> None:
    """Write the rows to ``path`` whole or not at all (a temporary file renamed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    try:
        with open(partial, "w", newline="", encoding="utf-8") as fh:
            if fmt == "csv":
                write_csv(columns, rows, fh)
            else:
                write_jsonl(rows, fh)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def production_rows(store: Store, config: Config, model: str,
                    window: Window) -> tuple[list[dict[str, Any]], list[Export]]:
    """The labelled rows every endpoint serving ``model`` captured in ``window`` (unlabelled
    rows cannot be learnt from), and each endpoint's export."""
    rows: list[dict[str, Any]] = []
    exports = []
    for endpoint in capturing_endpoints(config, model):
        result, found = export(store, config, endpoint, window, labelled_only=True)
        rows.extend(found)
        exports.append(result)
    return rows, exports


# -- production rows appended to the declared training data -----------------------------


@dataclass(frozen=True)
class Appended:
    path: str
    added: int  # rows appended
    present: int  # rows left out: the file already had them (every column equal)
    columns_left_empty: tuple[str, ...]  # the file's columns that are neither feature nor label


def _read_csv(path: Path, where: str) -> tuple[list[str], list[list[str]], str]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([Problem(where=where, what=f"{path} does not exist",
                                   hint="create the training data (features and the label "
                                        "column) or fix the path")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([Problem(where=where, what=f"{path} cannot be read ({exc})",
                                   hint="save it as UTF-8 CSV with a header row")]) from None
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or not rows[0]:
        raise ConfigError([Problem(where=where, what=f"{path} has no header row",
                                   hint="its first line names the columns: the features and "
                                        "the label column")])
    return rows[0], rows[1:], text


def append_training_rows(path: Path, where: str, features: Sequence[str], label: str,
                         rows: Iterable[Mapping[str, Any]]) -> Appended:
    """Append labelled production rows to the training CSV at ``path``, in its own column
    order. A row the file already holds (every cell equal) is not appended again, so windows
    that overlap add only what is new. The file must have every feature and the label."""
    header, existing, text = _read_csv(path, where)
    missing = [c for c in (*features, label) if c not in header]
    if missing:
        raise ConfigError([Problem(
            where=where, what=f"{path.name} has no column {', '.join(map(repr, missing))}; "
                              "production rows cannot be appended to it",
            hint=f"its header must name the model's features and the label column '{label}' "
                 "(holdout.label)")])
    seen = {tuple(r) for r in existing}
    new: list[tuple[str, ...]] = []
    present = 0
    for row in rows:
        cells = tuple(cell(row.get(c)) for c in header)
        if cells in seen:
            present += 1
            continue
        seen.add(cells)
        new.append(cells)
    if new:
        with open(path, "a", newline="", encoding="utf-8") as fh:
            if text and not text.endswith("\n"):
                fh.write("\n")
            csv.writer(fh, lineterminator="\n").writerows(new)
    wanted = {*features, label}
    return Appended(path=str(path), added=len(new), present=present,
                    columns_left_empty=tuple(c for c in header if c not in wanted))
