"""The schema of ``mlops.yaml``: frozen pydantic models, every field described.

Defaults live here, not in compile code. Field-level checks (semver, schedule, names) are
validators on the fields; checks across fields (an endpoint names a declared model, routes
don't collide) live on ``Config``. Every check raises ``ValueError`` with a message of the form
``"<what>; <hint>"`` so the loader can split it into what and hint.
"""

from __future__ import annotations

import re
from enum import Enum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from framework.config.schedule import parse_schedule
from framework.config.semver import SemVer

NAME_RE = re.compile(r"^[a-z][a-z0-9-]*[a-z0-9]$")
PROJECT_MAX = 24  # leaves room for derived physical names within AWS limits
ITEM_MAX = 32
ROUTE_RE = re.compile(r"^(GET|POST|PUT|PATCH|DELETE) (/[A-Za-z0-9._~\-/{}]*)$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


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


class Strict(BaseModel):
    """Base for every config model: frozen, unknown keys are errors."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=False)


class TargetKind(str, Enum):
    local = "local"
    localstack = "localstack"
    aws = "aws"


class FeatureType(str, Enum):
    float = "float"
    int = "int"
    bool = "bool"
    category = "category"


class Feature(Strict):
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
                    "a category feature needs its values; add values: [a, b, ...]"
                )
            if self.min is not None or self.max is not None:
                raise ValueError("min/max apply to numeric features only; remove them")
        elif self.values is not None:
            raise ValueError("values apply to category features only; set type: category")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}; swap them")
        return self


class Task(str, Enum):
    classification = "classification"
    regression = "regression"


class Model(Strict):
    version: str = Field(description="Semantic version MAJOR.MINOR.PATCH[-pre]; must increase.")
    artifact: str = Field(description="Path to the ONNX file, relative to mlops.yaml.")
    task: Task = Field(default=Task.classification, description="classification or regression.")
    description: str = Field(default="", description="What the model does, for people.")
    reference: str | None = Field(
        default=None, description="Reference data (CSV) for drift baselines, relative path."
    )
    features: tuple[Feature, ...] = Field(
        min_length=1, description="Input contract, in the order the model expects them."
    )
    metrics: dict[str, float] = Field(
        default_factory=dict, description="Evaluation metrics recorded at training time."
    )
    tags: dict[str, str] = Field(default_factory=dict, description="Free-form labels.")

    @field_validator("version")
    @classmethod
    def _version(cls, v: str) -> str:
        SemVer.parse(v)  # raises ValueError with a hint
        return v

    @field_validator("features")
    @classmethod
    def _unique_features(cls, v: tuple[Feature, ...]) -> tuple[Feature, ...]:
        seen: set[str] = set()
        for f in v:
            if f.name in seen:
                raise ValueError(f"feature '{f.name}' is declared twice; names must be unique")
            seen.add(f.name)
        return v


class AuthMode(str, Enum):
    none = "none"
    api_key = "api_key"
    iam = "iam"


class Endpoint(Strict):
    model: str = Field(description="Model to serve: NAME, NAME@VERSION or NAME@ALIAS.")
    route: str = Field(description="HTTP method and path, e.g. 'POST /fraud/score'.")
    auth: AuthMode = Field(default=AuthMode.none, description="none, api_key or iam.")
    memory: int = Field(
        default=1024, ge=128, le=10240, description="Lambda memory in MB (128-10240)."
    )
    timeout: int = Field(default=15, ge=1, le=900, description="Lambda timeout in seconds.")
    concurrency: int = Field(
        default=4, ge=1, le=1000, description="Maximum concurrent executions (local workers)."
    )
    description: str = Field(default="", description="What the endpoint is for.")

    @field_validator("route")
    @classmethod
    def _route(cls, v: str) -> str:
        if not ROUTE_RE.match(v):
            raise ValueError(
                f"'{v}' is not a route; write METHOD /path, e.g. 'POST /fraud/score'"
            )
        return v

    @property
    def model_name(self) -> str:
        return self.model.split("@", 1)[0]

    @property
    def model_ref(self) -> str | None:
        return self.model.split("@", 1)[1] if "@" in self.model else None


class DriftTest(str, Enum):
    ks = "ks"
    psi = "psi"
    chi2 = "chi2"
    wasserstein = "wasserstein"
    jensen_shannon = "jensen_shannon"


class DriftSettings(Strict):
    numeric: DriftTest = Field(default=DriftTest.ks, description="Test for numeric features.")
    categorical: DriftTest = Field(
        default=DriftTest.chi2, description="Test for category features."
    )
    alpha: float = Field(default=0.05, gt=0, lt=1, description="Significance level.")


class NotifyWhen(str, Enum):
    always = "always"
    drift = "drift"
    failure = "failure"


class Notify(Strict):
    email: tuple[str, ...] = Field(default=(), description="Recipients of the report.")
    sender: str | None = Field(
        default=None, description="From address (an SES identity); defaults to the first recipient."
    )
    when: NotifyWhen = Field(default=NotifyWhen.drift, description="always, drift or failure.")

    @field_validator("email")
    @classmethod
    def _emails(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for address in v:
            if not EMAIL_RE.match(address):
                raise ValueError(f"'{address}' is not an e-mail address; write name@domain.tld")
        return v


class Monitor(Strict):
    endpoint: str = Field(description="Endpoint whose captured traffic is checked.")
    schedule: str = Field(
        default="rate(1 day)", description="EventBridge schedule: rate(...) or cron(...)."
    )
    drift: DriftSettings = Field(default_factory=DriftSettings, description="Drift tests.")
    notify: Notify = Field(default_factory=Notify, description="Who gets the report, and when.")

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, v: str) -> str:
        parse_schedule(v)  # raises ValueError with a hint
        return v


class Registry(Strict):
    bucket: str | None = Field(
        default=None,
        description="S3 bucket of the model registry and deploy state; derived when omitted.",
    )

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$", v):
            raise ValueError(
                f"'{v}' is not a valid S3 bucket name; use 3-63 lower-case letters, digits, "
                "'-' or '.'"
            )
        return v


class Stage(Strict):
    target: TargetKind | None = Field(default=None, description="Where this stage deploys.")
    region: str | None = Field(default=None, description="AWS region of this stage.")
    endpoint_url: str | None = Field(
        default=None, description="Control-plane URL (LocalStack); AWS_ENDPOINT_URL otherwise."
    )
    profile: str | None = Field(default=None, description="AWS profile for this stage.")
    overrides: dict[str, object] = Field(
        default_factory=dict,
        description="Keys merged over the top level (models, endpoints, monitors) for this stage.",
    )


Name = Annotated[str, Field(description="A name.")]


class Config(Strict):
    project: str = Field(description="Project name; prefixes every physical resource name.")
    target: TargetKind = Field(
        default=TargetKind.local, description="Default target: local, localstack or aws."
    )
    region: str = Field(default="us-east-1", description="Default AWS region.")
    registry: Registry = Field(default_factory=Registry, description="Model registry settings.")
    models: dict[str, Model] = Field(default_factory=dict, description="Models by name.")
    endpoints: dict[str, Endpoint] = Field(
        default_factory=dict, description="HTTP endpoints by name."
    )
    monitors: dict[str, Monitor] = Field(default_factory=dict, description="Monitors by name.")
    stages: dict[str, Stage] = Field(
        default_factory=dict, description="Named stages: target, region and overrides."
    )

    @field_validator("project")
    @classmethod
    def _project(cls, v: str) -> str:
        return _check_name(v, PROJECT_MAX)

    @field_validator("region")
    @classmethod
    def _region(cls, v: str) -> str:
        if not re.match(r"^[a-z]{2}(-[a-z]+)+-\d$", v):
            raise ValueError(f"'{v}' is not an AWS region; e.g. us-east-1 or eu-west-1")
        return v

    @field_validator("models", "endpoints", "monitors", "stages")
    @classmethod
    def _keys(cls, v: dict[str, object]) -> dict[str, object]:
        for key in v:
            _check_name(key, ITEM_MAX)
        return v

    @model_validator(mode="after")
    def _references(self) -> Config:
        routes: dict[str, str] = {}
        for name, ep in self.endpoints.items():
            if ep.model_name not in self.models:
                known = ", ".join(sorted(self.models)) or "none declared"
                raise ValueError(
                    f"endpoints.{name}.model: model '{ep.model_name}' is not declared; "
                    f"declared models: {known}"
                )
            key = ep.route
            if key in routes:
                raise ValueError(
                    f"endpoints.{name}.route: '{key}' is also the route of endpoint "
                    f"'{routes[key]}'; give each endpoint its own route"
                )
            routes[key] = name
        for name, mon in self.monitors.items():
            if mon.endpoint not in self.endpoints:
                known = ", ".join(sorted(self.endpoints)) or "none declared"
                raise ValueError(
                    f"monitors.{name}.endpoint: endpoint '{mon.endpoint}' is not declared; "
                    f"declared endpoints: {known}"
                )
        return self
