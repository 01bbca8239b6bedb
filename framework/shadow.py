"""Shadow rollouts, the control side: the ``shadow`` alias a shadow step points at its
candidate, and how the candidate's answers to the copies compared (CloudWatch).

The serving function sends the copies itself (``framework.runtime.shadow``): every function
of an endpoint declared ``rollout: {strategy: shadow}`` knows its ``shadow`` alias
(``MLOPS_SHADOW_TARGET``) and copies a sample of the requests it answered to it while the
alias exists and serves another version. So a shadow step is one alias: ``start`` creates it
on the candidate (its description records since when), ``stop`` deletes it. The copies'
comparisons come back as the candidate's EMF metrics (namespace ``mlops``, dimensions
FunctionName + ModelVersion): ``ShadowRequests``, ``ShadowErrors``, ``ShadowCompared`` and
``ShadowDisagreement``; ``figures`` sums them over the step, on every target (the local AWS
extracts EMF as CloudWatch does, a minute at a time).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from framework.compile import names
from framework.runtime.shadow import sums

SINCE = "shadow since "  # the alias description's prefix, then an ISO time


def _code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def start(lam: Any, function: str, version: str, now: datetime | None = None) -> None:
    """Point the function's shadow alias at ``version``: its serving versions copy a sample
    of their answered requests there from their next alias read (``ALIAS_TTL_S``)."""
    description = SINCE + _iso(now or datetime.now(UTC))
    try:
        lam.create_alias(FunctionName=function, Name=names.SHADOW_ALIAS,
                         FunctionVersion=version, Description=description)
    except Exception as exc:
        if _code(exc) not in ("ResourceConflictException", "ConflictException"):  # AWS, moto
            raise
        lam.update_alias(FunctionName=function, Name=names.SHADOW_ALIAS,
                         FunctionVersion=version, Description=description,
                         RoutingConfig={"AdditionalVersionWeights": {}})


def stop(lam: Any, function: str) -> None:
    """Remove the function's shadow alias: no more copies (none there is fine)."""
    try:
        lam.delete_alias(FunctionName=function, Name=names.SHADOW_ALIAS)
    except Exception as exc:
        if _code(exc) != "ResourceNotFoundException":
            raise


def current(lam: Any, function: str) -> tuple[str, datetime | None] | None:
    """(the version the shadow alias points at, since when), or None when there is none."""
    try:
        alias = lam.get_alias(FunctionName=function, Name=names.SHADOW_ALIAS)
    except Exception as exc:
        if _code(exc) in ("ResourceNotFoundException", "ResourceNotFound"):
            return None
        raise
    text = str(alias.get("Description") or "")
    since = None
    if text.startswith(SINCE):
        try:
            since = datetime.strptime(text[len(SINCE):], "%Y-%m-%dT%H:%M:%SZ").replace(
                tzinfo=UTC)
        except ValueError:
            since = None
    return str(alias["FunctionVersion"]), since


@dataclass(frozen=True)
class Figures:
    """How a candidate answered the copies it was sent, over a window."""

    endpoint: str
    model_version: str  # the candidate's
    start: str
    end: str
    requests: int = 0  # copies it answered
    errors: int = 0  # copies it did not answer 200
    compared: int = 0  # rows compared with the serving version's answers
    disagreed: int = 0  # ... whose predictions differ

    @property
    def disagreement(self) -> float | None:
        return self.disagreed / self.compared if self.compared else None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "disagreement": self.disagreement}

    def describe(self) -> str:
        if not self.requests:
            return (f"no shadow answers of {self.model_version} yet since {self.start} "
                    "(CloudWatch has the metrics a minute or two after the copies)")
        rate = self.disagreement
        shown = "n/a" if rate is None else f"{rate:.1%}"
        return (f"{self.model_version} answered {self.requests} shadow copies since "
                f"{self.start}: disagreement {shown} ({self.disagreed} of {self.compared} "
                f"rows), {self.errors} not answered 200")


def figures(cloudwatch: Any, function: str, endpoint: str, model_version: str,
            since: datetime, until: datetime | None = None) -> Figures:
    """The Shadow* sums of ``function``'s copies answered by ``model_version`` from ``since``
    to ``until`` (now)."""
    end = until or datetime.now(UTC)
    got = sums(cloudwatch, function, model_version, since, end)
    return Figures(endpoint=endpoint, model_version=model_version, start=_iso(since),
                   end=_iso(end), requests=got["ShadowRequests"], errors=got["ShadowErrors"],
                   compared=got["ShadowCompared"], disagreed=got["ShadowDisagreement"])


@dataclass(frozen=True)
class Shadowing:
    """An endpoint whose shadow alias is up: which version it copies to, and how it does."""

    endpoint: str
    function: str
    version: str  # the candidate's Lambda version
    model: str  # "diagnosis 1.1.0", or "" when its environment does not say
    figures: Figures

    def to_dict(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint, "function": self.function, "version": self.version,
                "model": self.model, **self.figures.to_dict()}

    def describe(self) -> str:
        model = f" ({self.model})" if self.model else ""
        return (f"shadow of [bold]{self.endpoint}[/bold]: version {self.version}{model} gets "
                f"copies; {self.figures.describe()}")


def model_of(lam: Any, function: str, version: str) -> tuple[str, str]:
    """(model name, model version) a published version serves, from its environment."""
    cfg = lam.get_function_configuration(FunctionName=function, Qualifier=version)
    env = (cfg.get("Environment") or {}).get("Variables") or {}
    return str(env.get("MLOPS_MODEL_NAME") or ""), str(env.get("MLOPS_MODEL_VERSION") or "")


def shadowing(session: Any) -> list[Shadowing]:
    """The stage's endpoints whose shadow alias is up, with their figures."""
    state = session.store.load()
    lam = session.target.conn.client("lambda")
    cloudwatch = session.target.conn.client("cloudwatch")
    out = []
    for name in session.ws.loaded.config.endpoints:
        entry = state.resources.get(f"function.{name}")
        if entry is None:
            continue
        function = str(entry.props["function_name"])
        found = current(lam, function)
        if found is None:
            continue
        version, since = found
        model, model_version = model_of(lam, function, version)
        start_at = since or datetime.now(UTC) - timedelta(hours=1)
        out.append(Shadowing(endpoint=name, function=function, version=version,
                             model=f"{model} {model_version}".strip(),
                             figures=figures(cloudwatch, function, name, model_version,
                                             start_at)))
    return out
