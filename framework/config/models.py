"""The schema of ``mlops.yaml``: frozen pydantic models, every field described.

Defaults live here, not in compile code. Field-level checks (semver, schedule, names, routes)
are validators on the fields; checks across fields (an endpoint names a declared model, routes
don't collide, feature names are unique) live in ``checks.cross_issues``, which reports every
problem it finds. ``Config`` runs them after validation unless the caller (the loader) asks to run
them itself by validating with ``context={DEFER_CROSS_CHECKS: True}``.

Every check raises ``ValueError`` with a message of the form ``"<what>; <hint>"`` so the loader
can split it into what and hint.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from framework.config.checks import cross_issues, dotted, feature_issues, parse_route
from framework.config.runtimes import (
    DEFAULT_RUNTIME,
    RUNTIMES,
    Architecture,
    parse_runtime,
)
from framework.config.schedule import parse_schedule
from framework.config.semver import SemVer
from framework.config.thresholds import PATTERN as THRESHOLD_PATTERN
from framework.config.thresholds import Threshold, parse_threshold
from framework.monitoring.spec import DEFAULT_WHEN, notify_when, window_seconds

NAME_RE = re.compile(r"^[a-z](?:[a-z0-9-]*[a-z0-9])?$")
PROJECT_MAX = 24  # leaves room for derived physical names within AWS limits
ITEM_MAX = 32
ROUTE_RE = re.compile(r"^(GET|POST|PUT|PATCH|DELETE) (/[A-Za-z0-9._~\-/{}+]*)$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
REGION_RE = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
OVERRIDABLE = ("models", "endpoints", "monitors", "registry")

# Pass ``context={DEFER_CROSS_CHECKS: True}`` to ``Config.model_validate`` to skip the checks
# of ``cross_issues`` (the caller runs them itself and reports every issue).
DEFER_CROSS_CHECKS = "mlops.defer_cross_checks"


def _check_name(value: str, limit: int) -> str:
    if not NAME_RE.match(value) or "--" in value:
        raise ValueError(
            f"'{value}' is not a valid name; use lower-case letters, digits and single hyphens, "
            "starting with a letter"
        )
    if len(value) > limit:
        raise ValueError(
            f"'{value}' is {len(value)} characters long; keep it to {limit} so derived AWS names "
            "fit their limits"
        )
    return value


def _item_name(value: str) -> str:
    return _check_name(value, ITEM_MAX)


def _check_region(value: str) -> str:
    if not REGION_RE.match(value):
        raise ValueError(f"'{value}' is not an AWS region; e.g. us-east-1 or eu-west-1")
    return value


ItemName = Annotated[
    str,
    AfterValidator(_item_name),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": NAME_RE.pattern,
            "maxLength": ITEM_MAX,
            "description": "Lower-case letters, digits and single hyphens.",
        }
    ),
]


def _check_runtime(value: str) -> str:
    parse_runtime(value)
    return value


Runtime = Annotated[
    str,
    AfterValidator(_check_runtime),
    WithJsonSchema({
        "type": "string", "enum": list(RUNTIMES),
        "description": "Lambda Python runtime; a deprecated one is refused once Lambda "
                       "blocks creating functions on it.",
    }),
]


def _check_project_path(value: str) -> str:
    """A path inside the project's folder: relative, no '..' segment."""
    parts = re.split(r"[\\/]", value)
    if value.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", value):
        raise ValueError(f"'{value}' is an absolute path; give a path relative to mlops.yaml's "
                         "folder, inside the project")
    if ".." in parts:
        raise ValueError(f"'{value}' leaves the project's folder ('..'); keep data and "
                         "artifacts inside the project, next to or below mlops.yaml")
    return value


ProjectPath = Annotated[str, AfterValidator(_check_project_path)]


class Strict(BaseModel):
    """Base for every config model: frozen, unknown keys are errors."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=False)


class TargetKind(StrEnum):
    """Where a stage deploys: the embedded local AWS, LocalStack or AWS."""

    local = "local"
    localstack = "localstack"
    aws = "aws"


class FeatureType(StrEnum):
    """The value type of a feature."""

    float = "float"
    int = "int"
    bool = "bool"
    category = "category"


class Feature(Strict):
    """One input of a model, as callers send it."""

    name: str = Field(description="Feature name, as callers send it and as the model expects it.")
    type: FeatureType = Field(
        default=FeatureType.float, description="Value type: float, int, bool or category."
    )
    min: float | None = Field(default=None, description="Smallest accepted value (numeric types).")
    max: float | None = Field(default=None, description="Largest accepted value (numeric types).")
    values: tuple[str, ...] | None = Field(
        default=None, description="Accepted values of a category feature."
    )
    nullable: bool = Field(default=False, description="Whether a missing value is accepted.")
    description: str = Field(default="", description="What the feature means.")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_.\-]*$", v):
            raise ValueError(
                f"'{v}' is not a valid feature name; use letters, digits, '_', '-' or '.'"
            )
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Feature:
        if self.type is FeatureType.category:
            if not self.values:
                raise ValueError(
                    f"category feature '{self.name}' has no values; add values: [a, b, ...]"
                )
            if self.min is not None or self.max is not None:
                raise ValueError("min/max apply to numeric features only; remove them")
        elif self.values is not None:
            raise ValueError(
                f"values apply to category features only, this one is {self.type.value}; "
                "set type: category or remove values"
            )
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min:g} is greater than max {self.max:g}; swap them")
        return self


class Task(StrEnum):
    """What the model predicts."""

    classification = "classification"
    regression = "regression"


class OutputTransform(StrEnum):
    """What turns a model's raw output into probabilities."""

    none = "none"
    softmax = "softmax"
    sigmoid = "sigmoid"


class ModelOutput(Strict):
    """How the model's raw output becomes the answer (a logits-only PyTorch export, a boosted
    tree's class probabilities, a scaled regression); checked against the ONNX graph by
    `mlops validate`."""

    tensor: str | None = Field(
        default=None, description="The ONNX output to read; omitted: the one named logits, "
        "probabilities, scores, … or the only floating-point one.")
    transform: OutputTransform = Field(
        default=OutputTransform.none, description="softmax: one score per class → "
        "probabilities; sigmoid: one logit per row → the second label's probability; none: "
        "the tensor holds probabilities (classifiers) or the prediction (regressors).")
    labels: tuple[str | int, ...] | None = Field(
        default=None, description="Class labels in the tensor's column order (classifiers); "
        "omitted: the classes the graph records, else 0..K-1.")
    threshold: float = Field(
        default=0.5, gt=0, lt=1, description="One score per row: the second label when its "
        "probability is at least this.")
    scale: float = Field(default=1.0, description="Regressors: answer = raw * scale + offset.")
    offset: float = Field(default=0.0, description="Regressors: added after scale.")

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: tuple[str | int, ...] | None) -> tuple[str | int, ...] | None:
        if v is not None and (len(v) < 2 or len(set(v)) != len(v)):
            raise ValueError(f"{list(v)} are not class labels; give two or more distinct "
                             "labels in the order of the tensor's columns")
        return v


class Approval(Strict):
    """Who must approve a version, and how many of them, before an alias may point at it.
    Approvals count by the approver's verified identity (STS on AWS; MLOPS_IDENTITY or the
    local STS answer on the local target), never by the name given with --by."""

    min: int | None = Field(
        default=None, ge=1, le=10, description="Approvals needed (default 1).")
    required: int | None = Field(
        default=None, ge=1, le=10, description="Former name of min; give one or the other.")
    distinct: bool = Field(
        default=True, description="Count distinct principals: two approvals by one identity "
        "count once. false: every approval counts.")
    roles: tuple[str, ...] = Field(
        default=(), description="IAM roles whose sessions may approve: role names (wildcards "
        "allowed) or ARN patterns, e.g. [ml-approver, 'arn:aws:iam::*:role/risk-*']; any "
        "principal when empty.")
    approvers: tuple[str, ...] = Field(
        default=(), description="Identities that may approve, by name: an IAM user name, a "
        "role session name (Identity Center: the user name), or locally MLOPS_IDENTITY; "
        "anyone when empty.")
    separation_of_duties: bool = Field(
        default=False, description="The identity that registered a version may not approve "
        "it (nor count towards this rule).")

    @model_validator(mode="after")
    def _one_count(self) -> Approval:
        if self.min is not None and self.required is not None and self.min != self.required:
            raise ValueError(f"min ({self.min}) and required ({self.required}) disagree; "
                             "give only min")
        return self

    @property
    def needed(self) -> int:
        return self.min or self.required or 1


ParamValue = str | int | float | bool


METRIC_GATES = ("accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "mae", "rmse",
                "r2")
BUDGET_GATES = ("p50_latency_ms", "p99_latency_ms", "size_mb")


class Holdout(Strict):
    """Hold-out data on which gates evaluate a version before it ships."""

    path: ProjectPath = Field(
        description="CSV with the features and the label column; relative path.")
    label: str = Field(default="label", description="Name of the label column.")
    positive: str | None = Field(
        default=None, description="Positive class for precision/recall/F1/AUC (classifiers); "
        "defaults to the last of the model's classes."
    )


GateName = Literal[
    "accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "mae", "rmse", "r2",
    "p50_latency_ms", "p99_latency_ms", "size_mb",
]
# Parsed at load into a Threshold (framework.config.thresholds), which is also its text.
GateExpr = Annotated[
    Threshold, PlainValidator(parse_threshold),
    WithJsonSchema({"type": "string", "pattern": THRESHOLD_PATTERN}),
]


class Training(Strict):
    """The training entry point: how `mlops models reproduce` re-creates a version."""

    command: str = Field(
        description="Command run from mlops.yaml's folder; {out} is a fresh output folder and "
        "{name} is replaced by the parameter of that name, e.g. "
        "'python train.py --out {out} --seed {seed}'."
    )
    params: dict[str, ParamValue] = Field(
        default_factory=dict, description="Hyperparameters (and seed), recorded per version."
    )
    artifact: ProjectPath = Field(
        default="artifacts/model.onnx", description="Where the command writes the ONNX file, "
        "relative to {out}."
    )
    metrics: ProjectPath | None = Field(
        default=None, description="JSON file of metrics the command writes, relative to {out}."
    )
    data: ProjectPath | None = Field(
        default=None, description="Training data (CSV) fingerprinted per version; relative path."
    )

    @field_validator("command")
    @classmethod
    def _command(cls, v: str) -> str:
        if "{out}" not in v:
            raise ValueError(
                f"'{v}' does not mention {{out}}; pass {{out}} so the command writes into the "
                "folder mlops gives it"
            )
        return v


class Model(Strict):
    """A versioned ONNX model and its input contract."""

    version: str = Field(description="Semantic version MAJOR.MINOR.PATCH[-pre]; must increase.")
    artifact: ProjectPath = Field(description="Path to the ONNX file, relative to mlops.yaml.")
    task: Task = Field(default=Task.classification, description="classification or regression.")
    description: str = Field(default="", description="What the model does, for people.")
    reference: ProjectPath | None = Field(
        default=None, description="Reference data (CSV) for drift baselines, relative path."
    )
    features: tuple[Feature, ...] = Field(
        min_length=1, description="Input contract, in the order the model expects them."
    )
    metrics: dict[str, float] = Field(
        default_factory=dict, description="Evaluation metrics recorded at training time."
    )
    tags: dict[str, str] = Field(default_factory=dict, description="Free-form labels.")
    source: ProjectPath | None = Field(
        default=None, description="A fitted scikit-learn, XGBoost or LightGBM model (pickle "
        "or joblib) that `mlops build` converts to the ONNX artifact; relative path."
    )
    parity_tolerance: float = Field(
        default=1e-4, gt=0, le=1, description="Largest accepted difference between the source "
        "model's and the ONNX model's probabilities (predictions) when `mlops build` converts "
        "the source."
    )
    training: Training | None = Field(
        default=None, description="Training entry point, parameters and data (lineage and "
        "`mlops models reproduce`)."
    )
    parent: str | None = Field(
        default=None, description="Version this one was derived from (lineage); defaults to "
        "the newest registered version below this one."
    )
    intended_use: str = Field(default="", description="Intended use, for the model card.")
    limitations: tuple[str, ...] = Field(
        default=(), description="Known limitations, for the model card."
    )
    holdout: Holdout | None = Field(
        default=None, description="Hold-out data the metric gates are evaluated on."
    )
    gates: dict[GateName, GateExpr] = Field(
        default_factory=dict, description="Checks a version must pass before it ships: metrics on "
        "the hold-out set (accuracy, precision, recall, f1, roc_auc, pr_auc, mae, rmse, r2), "
        "p50_latency_ms/p99_latency_ms on the packaged handler, size_mb of the artifact; "
        "each 'OP NUMBER' or 'OP champion [+|-|* NUMBER]' (relative to the version serving "
        "the model's endpoints, measured on the same hold-out), e.g. {roc_auc: '>=0.95', "
        "accuracy: '>= champion - 0.01', p99_latency_ms: '<= champion * 1.2'}."
    )
    approvals: dict[ItemName, Approval] = Field(
        default_factory=dict, description="Approvals required before an alias (e.g. "
        "production) may point at a version of this model; adds to registry.approvals."
    )
    output: ModelOutput | None = Field(
        default=None, description="How the raw output becomes labels and probabilities (or "
        "a scaled prediction), e.g. {tensor: logits, transform: softmax, labels: [a, b, c]}; "
        "omitted: the model outputs labels (and probabilities) itself.")

    @model_validator(mode="after")
    def _output_fits_task(self) -> Model:
        out = self.output
        if out is None:
            return self
        if self.task is Task.regression and (out.transform is not OutputTransform.none
                                             or out.labels is not None):
            raise ValueError("a regressor's output takes no transform or labels, only "
                             "tensor, scale and offset")
        if self.task is Task.classification and (out.scale != 1.0 or out.offset != 0.0):
            raise ValueError("scale and offset apply to regressors; a classifier's output "
                             "takes transform, labels and threshold")
        if out.transform is OutputTransform.sigmoid and out.labels is not None \
                and len(out.labels) != 2:
            raise ValueError(f"sigmoid gives one probability per row: declare 2 labels "
                             f"[negative, positive], not {len(out.labels)}")
        return self

    @model_validator(mode="after")
    def _gates_need_holdout(self) -> Model:
        metric_gates = sorted(g for g in self.gates if g in METRIC_GATES)
        if metric_gates and self.holdout is None:
            raise ValueError(
                f"gates {', '.join(metric_gates)} are measured on hold-out data; add "
                "holdout: {path: data/holdout.csv, label: label}"
            )
        return self

    @field_validator("parent")
    @classmethod
    def _parent(cls, v: str | None) -> str | None:
        if v is not None:
            SemVer.parse(v)
        return v

    @field_validator("version")
    @classmethod
    def _version(cls, v: str) -> str:
        SemVer.parse(v)  # raises ValueError with a hint
        return v

    @field_validator("artifact")
    @classmethod
    def _artifact(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("the artifact path is empty; give the ONNX file's path")
        return v

    @field_validator("features")
    @classmethod
    def _unique_features(cls, v: tuple[Feature, ...], info: ValidationInfo) -> tuple[Feature, ...]:
        if _deferred(info):
            return v
        issues = feature_issues((), [{"name": f.name} for f in v])
        if issues:
            raise ValueError(issues[0].message)
        return v

    @property
    def semver(self) -> SemVer:
        return SemVer.parse(self.version)


class AuthMode(StrEnum):
    """How callers authenticate to an endpoint."""

    none = "none"
    api_key = "api_key"
    iam = "iam"


DURATION_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h)\s*$")
DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """'10m' → 600.0 seconds; ValueError with a hint otherwise."""
    match = DURATION_RE.match(text)
    if not match:
        raise ValueError(f"'{text}' is not a duration; write a number and a unit: 500ms, 30s, "
                         "10m or 1h")
    return float(match.group(1)) * DURATION_UNITS[match.group(2)]


def _check_duration(text: str) -> str:
    parse_duration(text)
    return text


Duration = Annotated[str, AfterValidator(_check_duration)]


class Strategy(StrEnum):
    all_at_once = "all_at_once"
    canary = "canary"
    linear = "linear"
    blue_green = "blue_green"
    shadow = "shadow"


class Watch(Strict):
    """Signals watched on the candidate during a rollout; crossing one rolls back."""

    error_rate: float = Field(
        default=0.01, ge=0, le=1, description="Largest share of server errors (5xx answers) "
        "among the candidate's requests over a period as long as the bake time; rejected "
        "requests (4xx) are never its errors. A CloudWatch alarm stops the deployment and "
        "rolls it back above it.")
    invalid_rate: float | None = Field(
        default=None, ge=0, le=1, description="Largest share of requests rejected for their "
        "content (400, 413, 415, 422), an alarm like error_rate's; a candidate whose contract "
        "rejects what callers send is rolled back.")
    p99_latency_ms: float | None = Field(
        default=None, gt=0, description="Largest p99 latency of the candidate, in ms.")
    min_requests: int = Field(
        default=10, ge=0, description="Requests the candidate must answer in a period before "
        "its rates are judged: the rate alarms count a period with fewer as 0 (a step without "
        "them advances on time, reported as not judged).")
    hold_without_traffic: bool = Field(
        default=False, description="Do not let a deployment end unjudged: after the last step "
        "it is held (the old version one alias update away, the alarms watching) until the "
        "candidate answered min_requests requests, and rolled back if that takes longer than "
        "its hook's 15 minutes.")
    drift: bool = Field(default=False, description="Roll back before any traffic when the "
                        "candidate's answers follow another distribution than the serving "
                        "version's on the model's hold-out rows (chi-squared on labels, KS on "
                        "numbers; needs holdout).")
    shadow_agreement: float | None = Field(
        default=None, ge=0, le=1, description="Shadow rollouts: smallest share of requests on "
        "which the candidate's prediction equals the stable version's.")


class Rollout(Strict):
    """How a new version of the endpoint's model takes over its traffic."""

    strategy: Strategy = Field(default=Strategy.all_at_once, description="all_at_once, canary, "
                               "linear, blue_green or shadow.")
    steps: tuple[int, ...] = Field(default=(10, 100), description="Canary: percent of "
                                   "traffic on the candidate at each step, ending at 100: "
                                   "[P, 100] (P% for one bake time, then all) or equal steps "
                                   "[N, 2N, ..., 100], the shapes CodeDeploy runs.")
    increment: int = Field(default=25, ge=1, le=100,
                           description="Linear: percent added at each step.")
    every: Duration = Field(default="5m", description="Bake time of each step, e.g. 30s, 10m.")
    watch: Watch = Field(default_factory=Watch, description="Signals that trigger a rollback.")
    shadow_sample_rate: float = Field(
        default=1.0, ge=0, le=1, description="Shadow: the share of answered prediction requests "
        "the serving function copies to the candidate while it is shadowed (by a hash of the "
        "request id), 0-1; each copy is one asynchronous invocation of the candidate.")

    @field_validator("steps")
    @classmethod
    def _steps(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if not v or v[-1] != 100 or any(b <= a for a, b in zip(v, v[1:], strict=False)) \
                or v[0] <= 0:
            raise ValueError(f"{list(v)} are not canary steps; give increasing percentages "
                             "ending at 100, e.g. [10, 100]")
        return v


def _check_buffer_interval(text: str) -> str:
    seconds = parse_duration(text)
    if not (0 <= seconds <= 900 and seconds == int(seconds)):
        raise ValueError(f"'{text}' is not a Firehose buffering interval: whole seconds from "
                         "0s to 900s (15m)")
    return text


class CaptureBuffer(Strict):
    """The capture stream's buffer (Firehose's BufferingHints): a capture object is written
    when this much has arrived or this long has passed, whichever comes first."""

    size_mb: int = Field(
        default=5, ge=1, le=128,
        description="MiB of captured lines (before gzip) an object holds, 1-128 (Firehose's "
        "SizeInMBs; 5, about 4,400 rows of 30 features, by default). A monitor's work grows "
        "with the objects, not the rows: AWS recommends more than 10 s of the stream's traffic "
        "(13 MiB at 100M rows of 1.2 KB a day).",
    )
    interval: Annotated[str, AfterValidator(_check_buffer_interval)] = Field(
        default="60s",
        description="Longest a captured line waits before it is written, 0s-900s (Firehose's "
        "IntervalInSeconds). The local AWS writes every 2 s whatever this says, so a monitor "
        "sees traffic at once.",
    )

    @property
    def interval_seconds(self) -> int:
        return int(parse_duration(self.interval))


class CaptureSettings(Strict):
    """Which requests an endpoint records (inputs, outputs, latency) under ``capture/``."""

    sample_rate: float = Field(
        default=1.0, ge=0, le=1,
        description="Fraction of requests recorded, 0-1 (decided by a hash of the request id).",
    )
    redact: tuple[str, ...] = Field(
        default=(),
        description="Inputs never recorded, e.g. [patient_id, zip_code]: the handler leaves "
        "them out of every capture line before it is written (they reach neither the log, the "
        "stream nor the bucket); each must be a feature of the endpoint's model. Monitor "
        "reports list them as redacted, not tested.",
    )
    retain_days: int | None = Field(
        default=None, ge=1, le=3650,
        description="Days captured records are kept: an S3 lifecycle rule of the registry "
        "bucket expires the endpoint's capture/ objects after this many days (their "
        "noncurrent versions a day later). Omitted: kept until deleted.",
    )
    buffer: CaptureBuffer = Field(
        default_factory=CaptureBuffer,
        description="How the capture stream batches lines into objects, e.g. {size_mb: 64, "
        "interval: 5m}: bigger objects for endpoints with heavy traffic.",
    )


class Throttle(Strict):
    """API Gateway's token bucket: a steady rate of requests per second, and a burst."""

    rate: float = Field(ge=0, le=10000, description="Steady-state requests per second "
                        "(API Gateway's ThrottlingRateLimit); more answer 429.")
    burst: int = Field(ge=0, le=5000, description="Requests allowed at once above the rate "
                       "(ThrottlingBurstLimit).")


class ApiSettings(Strict):
    """The HTTP API's stage: access logging and default throttling (cloud targets)."""

    access_log: bool = Field(
        default=True, description="Write one JSON line per request (time, route, status, "
        "latency, source IP) to a CloudWatch log group of its own; on by default.",
    )
    throttle: Throttle | None = Field(
        default=None, description="Default throttling of every route, e.g. {rate: 100, "
        "burst: 200}; omitted: the account's (10,000 a second, burst 5,000).",
    )


class Endpoint(Strict):
    """An HTTP route served by a Lambda function that runs a model."""

    model: str = Field(description="Model to serve: NAME, NAME@VERSION or NAME@ALIAS.")
    route: str = Field(description="HTTP method and path, e.g. 'POST /fraud/score'.")
    auth: AuthMode = Field(default=AuthMode.none, description="none, api_key or iam.")
    memory: int = Field(
        default=1024, ge=128, le=10240, description="Lambda memory in MB (128-10240)."
    )
    timeout: int = Field(default=15, ge=1, le=900, description="Lambda timeout in seconds (1-900).")
    concurrency: int | None = Field(
        default=None, ge=1, le=1000,
        description="Reserved concurrency: executions Lambda keeps for this endpoint's function "
        "and never exceeds. Omitted: none reserved (a new AWS account has 10 in all and must "
        "keep 10 unreserved); locally, at most MLOPS_LOCAL_CONCURRENCY (4) environments.")
    description: str = Field(default="", description="What the endpoint is for.")
    rollout: Rollout = Field(default_factory=Rollout,
                             description="How a new model version takes over the traffic.")
    capture: CaptureSettings | None = Field(
        default=None,
        description="Record sampled requests for monitoring, e.g. {sample_rate: 1.0}; "
        "omitted: nothing is recorded.",
    )
    throttle: Throttle | None = Field(
        default=None, description="Throttling of this endpoint's routes, e.g. {rate: 50, "
        "burst: 100}; omitted: the API's (api.throttle).",
    )
    max_batch_rows: int = Field(
        default=1000, ge=1, le=100000,
        description="Most rows accepted in one request (more answers 413); the body is also "
        "limited to 6 MB, Lambda's payload limit.",
    )
    runtime: Runtime | None = Field(
        default=None, description="Lambda Python runtime of this endpoint's function; "
        "omitted: the project's runtime.")
    architecture: Architecture | None = Field(
        default=None, description="x86_64 or arm64 for this endpoint's function; omitted: the "
        "project's architecture.")

    @field_validator("model")
    @classmethod
    def _model(cls, v: str) -> str:
        name, at, ref = v.partition("@")
        if not name or (at and not ref) or "@" in ref:
            raise ValueError(
                f"'{v}' is not a model reference; write NAME, NAME@VERSION or NAME@ALIAS"
            )
        if at and not ref[0].isdigit() and not NAME_RE.match(ref):
            raise ValueError(
                f"'{ref}' is not an alias name; use lower-case letters, digits and hyphens"
            )
        if at and ref[0].isdigit():
            SemVer.parse(ref)
        return v

    @field_validator("route")
    @classmethod
    def _route(cls, v: str) -> str:
        parse_route(v)
        return v

    @property
    def model_name(self) -> str:
        return self.model.split("@", 1)[0]

    @property
    def model_ref(self) -> str | None:
        return self.model.split("@", 1)[1] if "@" in self.model else None

    @property
    def method(self) -> str:
        return self.route.split(" ", 1)[0]

    @property
    def path(self) -> str:
        return self.route.split(" ", 1)[1]


class DriftTest(StrEnum):
    """A statistical test comparing live inputs with the reference data."""

    ks = "ks"
    psi = "psi"
    chi2 = "chi2"
    wasserstein = "wasserstein"
    jensen_shannon = "jensen_shannon"


class Correction(StrEnum):
    """Multiple-testing correction of p-values across features."""

    benjamini_hochberg = "benjamini_hochberg"
    bonferroni = "bonferroni"
    none = "none"


class FeatureDrift(Strict):
    """Overrides of the drift test for one feature."""

    test: DriftTest | None = Field(default=None, description="Test to run on this feature.")
    threshold: float | None = Field(
        default=None, gt=0, description="alpha (ks, chi2) or distance threshold (psi, "
        "wasserstein, jensen_shannon) for this feature.",
    )
    skip: bool = Field(default=False, description="Do not test this feature.")


class DriftSettings(Strict):
    """Which drift tests a monitor runs, and how strict they are."""

    numeric: DriftTest = Field(default=DriftTest.ks, description="Test for numeric features.")
    categorical: DriftTest = Field(
        default=DriftTest.chi2, description="Test for category features."
    )
    alpha: float = Field(default=0.05, gt=0, lt=1, description="Significance level.")
    correction: Correction = Field(
        default=Correction.benjamini_hochberg,
        description="Multiple-testing correction across features: benjamini_hochberg, "
        "bonferroni or none.",
    )
    features: dict[str, FeatureDrift] = Field(
        default_factory=dict, description="Per-feature overrides: test, threshold, skip."
    )
    prediction: bool = Field(
        default=True, description="Also test the model's outputs (prediction drift)."
    )
    min_rows: int = Field(
        default=30, ge=1, description="Fewer captured rows than this: the report says too little "
        "data instead of testing.",
    )


class NotifyWhen(StrEnum):
    """A monitor run's status that sends its report; always: every run, OK included."""

    drift = "drift"
    no_data = "no_data"
    degraded = "degraded"
    failure = "failure"
    always = "always"


def _check_email(address: str) -> str:
    if not EMAIL_RE.match(address):
        raise ValueError(f"'{address}' is not an e-mail address; write name@domain.tld")
    return address


Email = Annotated[str, AfterValidator(_check_email)]


class Notify(Strict):
    """Who receives a monitor's report by e-mail, and when."""

    email: tuple[Email, ...] = Field(default=(), description="Recipients of the report.")
    sender: str | None = Field(
        default=None, description="From address, an SES identity: required on aws and "
        "localstack targets (someone must click the link SES mails to it); on the local target "
        "it defaults to the first recipient."
    )
    when: NotifyWhen | Annotated[tuple[NotifyWhen, ...], Field(min_length=1)] = Field(
        default=tuple(NotifyWhen(v) for v in DEFAULT_WHEN),
        description="Which runs are mailed, one value or a list: drift (features or predictions "
        "drifted; needs notify in on_drift), degraded (performance out of bounds or an alarm "
        "breached), no_data (too little traffic to test), failure (the check could not run), "
        "always (every run, OK included). Default [drift, degraded, failure]: every run that "
        "needs someone to act, not a window without traffic.")
    link_expires: str = Field(
        default="7d", description="How long the report's link to the team dashboard works: "
        "30m, 12h, up to 7d (the most a SigV4 presigned URL allows). The monitor function "
        "signs it with its role's temporary credentials, which on AWS end it sooner.")

    @field_validator("when", mode="before")
    @classmethod
    def _when(cls, v: object) -> object:
        notify_when(v)  # raises ValueError naming the allowed values
        return tuple(v) if isinstance(v, list) else v

    @field_validator("sender")
    @classmethod
    def _sender(cls, v: str | None) -> str | None:
        return None if v is None else _check_email(v)

    @field_validator("link_expires")
    @classmethod
    def _link_expires(cls, v: str) -> str:
        if not WINDOW_RE.match(v.strip()) or not 0 < window_seconds(v, "") <= 7 * 86400:
            raise ValueError(f"'{v}' is not a link lifetime; write a number and m, h or d, "
                             "at most 7d (e.g. 3d)")
        return v


WINDOW_RE = re.compile(r"^\d+(\.\d+)?\s*[mhd]$")
ALARM_RE = re.compile(r"^(<=|>=|<|>)\s*-?\d+(\.\d+)?([eE]-?\d+)?$")


class PerformanceMetric(StrEnum):
    """A performance figure computed from feedback."""

    accuracy = "accuracy"
    precision = "precision"
    recall = "recall"
    f1 = "f1"
    roc_auc = "roc_auc"
    mae = "mae"
    rmse = "rmse"
    r2 = "r2"


class Performance(Strict):
    """Performance from ground-truth feedback joined to captured predictions by request id."""

    metric: PerformanceMetric = Field(
        default=PerformanceMetric.accuracy, description="The figure that decides the verdict."
    )
    min: float | None = Field(default=None, description="Degraded below this value.")
    max: float | None = Field(default=None, description="Degraded above this value (errors).")
    positive: str | None = Field(
        default=None, description="Positive class for precision/recall/F1/ROC-AUC; defaults "
        "to the model's last class.",
    )
    min_labels: int = Field(
        default=20, ge=1, description="Fewer labelled rows than this: performance not judged."
    )


class Action(StrEnum):
    """What a monitor does when it finds drift."""

    notify = "notify"
    rollback = "rollback"
    retrain = "retrain"


class Charts(Strict):
    """Control charts over the history of each monitored figure."""

    history: int = Field(default=30, ge=2, le=500, description="Past runs charted.")
    ewma_lambda: float = Field(default=0.2, gt=0, le=1, description="EWMA weight of new points.")
    ewma_width: float = Field(default=3.0, gt=0, description="EWMA limits in sigmas.")
    cusum_k: float = Field(default=0.5, ge=0, description="CUSUM allowance, in sigmas.")
    cusum_h: float = Field(default=5.0, gt=0, description="CUSUM decision interval, in sigmas.")
    baseline: int = Field(
        default=5, ge=2, description="First runs that set the in-control mean and sigma."
    )


class FanOut(Strict):
    """How a run spreads its work over parallel invocations of the monitor function: the
    profiling of capture objects that have no partial profile yet (the first run over a
    window, or after a new model version), and the merging of a whole day's partials that no
    run merged yet (then stored as the day's rollup)."""

    objects: int = Field(
        default=200, ge=1, description="Objects one worker profiles; a run with more objects "
        "lacking a partial profile than this hands them out in shares of this many.",
    )
    workers: int = Field(
        default=8, ge=1, le=100, description="Most invocations of the monitor function that "
        "profile or merge shares at once (1: no fan-out).",
    )
    partials: int = Field(
        default=1000, ge=2, description="Stored partial profiles one worker merges; a whole "
        "day of more than this many that no run merged yet is merged in shares of this many, "
        "the run adding up what the workers return.",
    )


class Monitor(Strict):
    """A scheduled check of an endpoint's captured traffic."""

    endpoint: str = Field(description="Endpoint whose captured traffic is checked.")
    schedule: str = Field(
        default="rate(1 day)", description="EventBridge schedule: rate(...) or cron(...)."
    )
    window: str | None = Field(
        default=None, description="How much traffic each run checks, e.g. 24h, 7d, 90m; "
        "defaults to the rate() period (1 day for cron schedules).",
    )
    drift: DriftSettings = Field(default_factory=DriftSettings, description="Drift tests.")
    performance: Performance | None = Field(
        default=None, description="Performance from ground-truth feedback, and its bounds."
    )
    alarms: dict[str, str] = Field(
        default_factory=dict, description="Thresholds on published figures, evaluated every run, "
        "e.g. {drift_share: '<=0.2', latency_p99_ms: '<=100', accuracy: '>=0.9'}.",
    )
    charts: Charts = Field(default_factory=Charts, description="Control-chart settings.")
    notify: Notify = Field(default_factory=Notify, description="Who gets the report, and when.")
    on_drift: tuple[Action, ...] = Field(
        default=(Action.notify,), description="What to do when drift is found: notify, "
        "rollback (endpoint alias to the previous version), retrain (register a candidate).",
    )
    fan_out: FanOut = Field(
        default_factory=FanOut, description="Parallel profiling of big windows' objects, "
        "e.g. {objects: 200, workers: 8}.",
    )
    memory: int = Field(
        default=1024, ge=128, le=10240,
        description="Memory of the monitor function in MB (128-10240; Lambda gives CPU in "
        "proportion). A run holds one capture object and the window's merged profile, not the "
        "window's rows.",
    )
    timeout: int = Field(
        default=300, ge=1, le=900,
        description="Seconds a monitor run may take (1-900, Lambda's most). A run that times "
        "out, runs out of memory or crashes is reported by the monitor's failure notifier: a "
        "[FAILURE] report, e-mailed (notify.when lists failure by default) and counted "
        "(metric MonitorFailures).",
    )

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, v: str) -> str:
        parse_schedule(v)  # raises ValueError with a hint
        return v

    @field_validator("window")
    @classmethod
    def _window(cls, v: str | None) -> str | None:
        if v is not None and not WINDOW_RE.match(v.strip()):
            raise ValueError(f"'{v}' is not a window; write a number and m, h or d, e.g. 24h")
        return v

    @field_validator("alarms")
    @classmethod
    def _alarms(cls, v: dict[str, str]) -> dict[str, str]:
        for figure, rule in v.items():
            if not ALARM_RE.match(rule.strip()):
                raise ValueError(
                    f"alarm '{figure}: {rule}' is not a comparison; write e.g. '<=0.2' or '>=0.9'"
                )
        return v


ROLE_NAME_RE = re.compile(r"^[\w+=,.@-]{1,64}$")
ROLE_ARN_RE = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")


class ObjectLock(Strict):
    """What keeps the audit trail and released model versions as they were written: S3 Object
    Lock (governance mode) and the registry bucket's policy."""

    retention_days: int = Field(
        default=365, ge=0, le=36500,
        description="Days each audit record and each file of a released model version (model, "
        "metadata, reference, approvals, alias history) is under Object Lock governance "
        "retention: no version of it can be deleted before then without "
        "s3:BypassGovernanceRetention. 0: versioned and guarded by the bucket policy, not "
        "retained.",
    )
    break_glass: tuple[str, ...] = Field(
        default=(),
        description="IAM roles (names or role ARNs) the registry bucket policy lets overwrite "
        "released versions, delete audit records and bypass governance retention; nobody "
        "else may. Empty: nobody (until the policy is changed).",
    )

    @field_validator("break_glass")
    @classmethod
    def _roles(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for role in v:
            if not (ROLE_NAME_RE.match(role) or ROLE_ARN_RE.match(role)):
                raise ValueError(f"'{role}' is not an IAM role; give a role name (e.g. "
                                 "mlops-break-glass) or a role ARN "
                                 "(arn:aws:iam::123456789012:role/mlops-break-glass)")
        return v


class Registry(Strict):
    """Where models, deploy state and reports are stored."""

    bucket: str | None = Field(
        default=None,
        description="S3 bucket of the model registry and deploy state; derived when omitted.",
    )
    approvals: dict[ItemName, Approval] = Field(
        default_factory=dict, description="Approvals required before an alias moves, for every "
        "model, e.g. {production: {min: 2, distinct: true}}."
    )
    lock: ObjectLock = Field(
        default_factory=ObjectLock, description="Object Lock retention of audit records and "
        "released versions, and the break-glass roles the bucket policy exempts, e.g. "
        "{retention_days: 365, break_glass: [mlops-break-glass]}."
    )

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if not BUCKET_RE.match(v) or ".." in v or ".-" in v or "-." in v:
            raise ValueError(
                f"'{v}' is not a valid S3 bucket name; use 3-63 lower-case letters, digits, "
                "'-' or '.', starting and ending with a letter or digit"
            )
        if re.match(r"^\d+\.\d+\.\d+\.\d+$", v):
            raise ValueError(f"'{v}' looks like an IP address; S3 bucket names cannot")
        return v


class Stage(Strict):
    """A named deployment stage (dev, prod, ...): where it deploys and what it changes."""

    target: TargetKind | None = Field(default=None, description="Where this stage deploys.")
    region: str | None = Field(default=None, description="AWS region of this stage.")
    endpoint_url: str | None = Field(
        default=None, description="Control-plane URL (LocalStack); AWS_ENDPOINT_URL otherwise."
    )
    profile: str | None = Field(default=None, description="AWS profile for this stage.")
    overrides: dict[Literal["models", "endpoints", "monitors", "registry"], object] = Field(
        default_factory=dict,
        description="Keys merged over the top level (models, endpoints, monitors, registry) "
        "for this stage; mappings merge recursively, other values replace.",
    )

    @field_validator("region")
    @classmethod
    def _region(cls, v: str | None) -> str | None:
        return None if v is None else _check_region(v)

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint_url(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^https?://[^\s/]+", v):
            raise ValueError(f"'{v}' is not a URL; write e.g. http://localhost:4566")
        return v


class Config(Strict):
    """An mlops.yaml: models, the endpoints that serve them and the monitors that watch them."""

    model_config = ConfigDict(
        title="mlops.yaml",
        # Top-level keys starting with "x-" hold YAML anchors to reuse; the loader drops them.
        json_schema_extra={"patternProperties": {"^x-": {}}},
    )

    project: str = Field(description="Project name; prefixes every physical resource name.")
    target: TargetKind = Field(
        default=TargetKind.local, description="Default target: local, localstack or aws."
    )
    region: str = Field(default="us-east-1", description="Default AWS region.")
    runtime: Runtime = Field(
        default=DEFAULT_RUNTIME, description="Lambda Python runtime of every function "
        "(endpoints may choose their own): python3.12, python3.13, python3.14.")
    architecture: Architecture = Field(
        default=Architecture.x86_64, description="Lambda architecture of every function "
        "(endpoints may choose their own): x86_64 or arm64.")
    registry: Registry = Field(default_factory=Registry, description="Model registry settings.")
    api: ApiSettings = Field(
        default_factory=ApiSettings, description="The HTTP API's stage: access logging and "
        "throttling, e.g. {access_log: true, throttle: {rate: 100, burst: 200}}.",
    )
    models: dict[ItemName, Model] = Field(default_factory=dict, description="Models by name.")
    endpoints: dict[ItemName, Endpoint] = Field(
        default_factory=dict, description="HTTP endpoints by name."
    )
    monitors: dict[ItemName, Monitor] = Field(default_factory=dict, description="Monitors by name.")
    stages: dict[ItemName, Stage] = Field(
        default_factory=dict, description="Named stages: target, region and overrides."
    )

    @field_validator("project")
    @classmethod
    def _project(cls, v: str) -> str:
        return _check_name(v, PROJECT_MAX)

    @field_validator("region")
    @classmethod
    def _region(cls, v: str) -> str:
        return _check_region(v)

    def endpoint_runtime(self, name: str) -> tuple[str, Architecture]:
        """(runtime, architecture) of an endpoint's function: its own, else the project's."""
        ep = self.endpoints[name]
        return ep.runtime or self.runtime, ep.architecture or self.architecture

    @model_validator(mode="after")
    def _references(self, info: ValidationInfo) -> Config:
        if _deferred(info):
            return self
        issues = cross_issues(self.model_dump())
        if issues:
            first = issues[0]
            raise ValueError(f"{dotted(first.loc)}: {first.message}")
        return self


def _deferred(info: ValidationInfo) -> bool:
    ctx = info.context
    return isinstance(ctx, Mapping) and bool(ctx.get(DEFER_CROSS_CHECKS))
