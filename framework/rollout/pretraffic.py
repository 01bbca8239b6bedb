"""An endpoint's deployment hooks: CodeDeploy's BeforeAllowTraffic, run before a deployment
gives the new version any traffic, and AfterAllowTraffic, run once it has all of it
(``handlers/hooks.py`` adapts them; packaged with the handlers, so stdlib, numpy and the
runtime only). One function answers both: the deployment's lifecycle events say which runs.

CodeDeploy invokes it with ``{"DeploymentId", "LifecycleEventHookExecutionId"}``. It reads the
deployment's AppSpec (the function, the version serving and the one to serve) and then:

1. asks the new version itself whether it is ready (``GET /v2/health/ready`` through Lambda's
   Invoke, as API Gateway would send it): its INIT and its model load, in its own
   execution environment;
2. runs the model the new version's configuration names (``MLOPS_MODEL_NAME``/``VERSION``/
   ``SHA256``: fetched from the registry and checked as the handler checks it, through the
   same runtime code) on the model's hold-out data — one row, then batches — and measures the
   metric gates the model declares (accuracy, precision, recall, F1, ROC-AUC; MAE, RMSE, R²),
   champion-relative thresholds against the version serving now, on the same rows;
3. with ``watch: {drift: true}``, compares the new version's answers with the serving
   version's on the same rows (chi-squared on labels, KS on numbers, p < 0.01: another
   distribution);
4. tells CodeDeploy ``Succeeded`` or ``Failed`` (``PutLifecycleEventHookExecutionStatus``): a
   failure stops the deployment before any caller met the new version, and CodeDeploy rolls
   it back.

AfterAllowTraffic, with ``watch: {hold_without_traffic: true}``: CodeDeploy cannot hold a
traffic step, so the deployment is held at its end instead — the old version one alias update
away, the alarms still watching — until CloudWatch counts ``min_requests`` requests of the new
version; past the function's time (15 minutes) it fails, and CodeDeploy rolls it back rather
than end it unjudged.

Its verdict is one log line, ``{"msg": "pretraffic", "deployment_id", "event", "status",
"reason", "gates": [...]}``, which ``mlops rollout status`` shows. The hold-out rows are not
sent to the endpoint, so they are never captured nor counted as its traffic. A gate that
needs what the hook does not measure (PR-AUC, latency, size) was checked by the deploy before
the version was published, and is not checked again here.
"""

from __future__ import annotations

import csv
import io
import json
import math
import operator
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from framework.runtime.shadow import sums as shadow_sums

BATCH = 100
OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, "<=": operator.le, "==": operator.eq, ">": operator.gt, "<": operator.lt}
HOOK_GATES = ("accuracy", "precision", "recall", "f1", "roc_auc", "mae", "rmse", "r2")


@dataclass
class Verdict:
    status: str  # Succeeded or Failed
    reason: str
    gates: list[dict[str, Any]] = field(default_factory=list)


class CheckFailedError(Exception):
    """The new version is not fit for traffic (the message says why)."""


def appspec_versions(info: Mapping[str, Any]) -> dict[str, str]:
    """Name, Alias, CurrentVersion and TargetVersion of a Lambda deployment's AppSpec."""
    content = ((info.get("revision") or {}).get("appSpecContent") or {}).get("content") or "{}"
    spec = json.loads(content)
    (resource,) = spec["Resources"]
    (body,) = resource.values()
    props = body["Properties"]
    return {k: str(props[k]) for k in ("Name", "Alias", "CurrentVersion", "TargetVersion")}


def version_model(lam: Any, function: str, version: str) -> dict[str, str]:
    """The model a published version serves, as its configuration names it."""
    env = lam.get_function_configuration(FunctionName=function, Qualifier=version).get(
        "Environment", {}).get("Variables", {})
    missing = [k for k in ("MLOPS_MODEL_NAME", "MLOPS_MODEL_VERSION", "MLOPS_MODEL_SHA256")
               if not env.get(k)]
    if missing:
        raise CheckFailedError(f"version {version} of {function} names no model "
                               f"({', '.join(missing)} unset)")
    return {"name": env["MLOPS_MODEL_NAME"], "version": env["MLOPS_MODEL_VERSION"],
            "sha256": env["MLOPS_MODEL_SHA256"],
            "max_rows": env.get("MLOPS_MAX_BATCH_ROWS") or str(BATCH)}


def csv_number(text: str) -> Any:
    """A CSV cell as the gates read it: empty is None, an integer or a float when it is one,
    else the text."""
    if text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        return text
    return int(value) if value.is_integer() and "." not in text and "e" not in text else value


def read_holdout(data: bytes, label: str) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows (numbers parsed) and labels of a hold-out CSV: the deploy's gates
    (``framework.gates.read_holdout``) and this hook read it alike."""
    reader = csv.DictReader(io.StringIO(data.decode("utf-8")))
    if reader.fieldnames is None or label not in reader.fieldnames:
        raise CheckFailedError(f"the hold-out data has no '{label}' column")
    rows, labels = [], []
    for row in reader:
        labels.append(row.pop(label))
        rows.append({k: csv_number(v) for k, v in row.items()})
    return rows, labels


def ready(lam: Any, function: str, version: str, endpoint: str) -> None:
    """The new version answers its readiness probe (INIT and model load, in Lambda)."""
    event = {"version": "2.0", "routeKey": "GET /v2/health/ready",
             "rawPath": "/v2/health/ready", "rawQueryString": "",
             "headers": {"user-agent": "mlops-pretraffic-hook"},
             "requestContext": {"http": {"method": "GET", "path": "/v2/health/ready"},
                                "requestId": f"pretraffic-{endpoint}"},
             "isBase64Encoded": False}
    answer = lam.invoke(FunctionName=function, Qualifier=version,
                        Payload=json.dumps(event).encode())
    payload = answer["Payload"].read()
    if answer.get("FunctionError"):
        raise CheckFailedError(f"version {version} crashed on its readiness probe: "
                               f"{payload[:300].decode(errors='replace')}")
    status = json.loads(payload or b"{}").get("statusCode")
    if status != 200:
        raise CheckFailedError(f"version {version} is not ready: its readiness probe "
                               f"answered {status}")


def predict(bundle: Any, rows: Sequence[Mapping[str, Any]], features: Sequence[str],
            ) -> tuple[list[Any], list[list[float]], list[Any] | None]:
    """Predictions of ``rows`` through the runtime's model bundle: one row first (what a
    caller sends), then batches."""
    labels: list[Any] = []
    probabilities: list[list[float]] = []
    classes: list[Any] | None = None
    bounds = [(0, 1)] + [(s, min(s + BATCH, len(rows))) for s in range(1, len(rows), BATCH)]
    for start, end in bounds:
        batch = [{f: r.get(f) for f in features} for r in rows[start:end]]
        try:
            answer = bundle.predict({"instances": batch})
        except Exception as exc:  # a model that crashes on rows its contract accepts
            raise CheckFailedError(f"{bundle.name} {bundle.version} failed on hold-out rows "
                                   f"{start + 1}-{end}: {type(exc).__name__}: {exc}") from exc
        labels += answer["predictions"]
        probabilities += answer.get("probabilities") or []
        classes = answer.get("classes") or classes
    return labels, probabilities, classes


def metrics(task: str, labels: Sequence[str], predicted: Sequence[Any],
            probabilities: Sequence[Sequence[float]], classes: Sequence[Any] | None,
            positive: str | None) -> dict[str, float | None]:
    from framework.monitoring.performance import classification_metrics, regression_metrics

    if task == "regression":
        return dict(regression_metrics([float(v) for v in labels],
                                       [float(v) for v in predicted]))
    positive = positive or (str(classes[-1]) if classes else str(labels[0]))
    scores: list[float | None] = [None] * len(predicted)
    if classes and probabilities:
        index = [str(c) for c in classes].index(positive)
        scores = [p[index] for p in probabilities]
    return dict(classification_metrics(labels, predicted, scores, positive))


# -- output drift: the new version's answers against the serving one's, on the same rows ----

MIN_ANSWERS = 20
ALPHA = 0.01


def _gamma_q(a: float, x: float) -> float:
    """The regularized upper incomplete gamma function Q(a, x) (series below a + 1, a
    continued fraction above, as Numerical Recipes' gammq)."""
    if x <= 0:
        return 1.0
    ln = a * math.log(x) - x - math.lgamma(a)
    if x < a + 1:
        term = total = 1.0 / a
        n = a
        for _ in range(1000):
            n += 1
            term *= x / n
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return max(0.0, 1.0 - total * math.exp(ln))
    b, c, d = x + 1 - a, 1e300, 1 / (x + 1 - a)
    h = d
    for i in range(1, 1000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = 1e-300 if abs(d) < 1e-300 else d
        c = b + an / c
        c = 1e-300 if abs(c) < 1e-300 else c
        d = 1 / d
        h *= d * c
        if abs(d * c - 1) < 1e-15:
            break
    return float(min(1.0, math.exp(ln) * h))


def chi2_p(table: Sequence[Sequence[int]]) -> float:
    """p-value of the chi-squared test of independence of a 2 × k table of counts."""
    rows = [sum(r) for r in table]
    cols = [sum(c) for c in zip(*table, strict=True)]
    total = sum(rows)
    stat = sum((table[i][j] - rows[i] * cols[j] / total) ** 2 / (rows[i] * cols[j] / total)
               for i in range(len(rows)) for j in range(len(cols)) if cols[j])
    dof = (len(rows) - 1) * (sum(1 for c in cols if c) - 1)
    return _gamma_q(dof / 2, stat / 2) if dof > 0 else 1.0


def ks_p(a: Sequence[float], b: Sequence[float]) -> float:
    """p-value of the two-sample Kolmogorov-Smirnov test (asymptotic distribution)."""
    xs, ys = sorted(a), sorted(b)
    i = j = 0
    d = 0.0
    while i < len(xs) and j < len(ys):
        value = min(xs[i], ys[j])
        while i < len(xs) and xs[i] == value:
            i += 1
        while j < len(ys) and ys[j] == value:
            j += 1
        d = max(d, abs(i / len(xs) - j / len(ys)))
    en = math.sqrt(len(xs) * len(ys) / (len(xs) + len(ys)))
    lam = (en + 0.12 + 0.11 / en) * d
    if lam < 0.2:
        return 1.0
    total = 2 * sum((-1) ** (k - 1) * math.exp(-2 * k * k * lam * lam) for k in range(1, 101))
    return max(0.0, min(1.0, float(total)))


def output_drift(serving: Sequence[Any], candidate: Sequence[Any], alpha: float = ALPHA,
                 ) -> tuple[bool | None, str]:
    """Do the candidate's answers follow another distribution than the serving version's
    (chi-squared on labels, KS on numbers)? None with too few answers to judge."""
    if len(serving) < MIN_ANSWERS or len(candidate) < MIN_ANSWERS:
        return None, (f"{len(serving)} and {len(candidate)} answers (< {MIN_ANSWERS} each): "
                      "not judged")
    if all(isinstance(v, int | float) and not isinstance(v, bool)
           for v in [*serving, *candidate]):
        p = ks_p([float(v) for v in serving], [float(v) for v in candidate])
        return p < alpha, f"KS p={p:.3g} between the two versions' answers"
    labels = sorted({str(v) for v in [*serving, *candidate]})
    if len(labels) < 2:
        return False, "both versions give the same single answer"
    a, b = Counter(map(str, serving)), Counter(map(str, candidate))
    p = chi2_p([[a[x] for x in labels], [b[x] for x in labels]])
    return p < alpha, f"chi-squared p={p:.3g} between the two versions' answer mixes"


def judge(gates: Mapping[str, Mapping[str, Any]], measured: Mapping[str, float | None],
          champion: Mapping[str, float | None] | None) -> list[dict[str, Any]]:
    """Each metric gate's figure, bound and verdict."""
    out = []
    for gate, th in sorted(gates.items()):
        if gate not in HOOK_GATES:
            continue
        figure = measured.get(gate)
        row: dict[str, Any] = {"gate": gate, "expected": th["text"], "measured": figure}
        if th["relative"]:
            base = (champion or {}).get(gate)
            if champion is None:
                row.update(passed=True, detail="no version serving: nothing to compare with")
                out.append(row)
                continue
            bound = None if base is None else base * float(th["factor"]) + float(th["offset"])
        else:
            bound = float(th["value"])
        row["bound"] = bound
        row["passed"] = figure is not None and bound is not None and OPERATORS[th["op"]](
            float(figure), bound)
        row["detail"] = (f"{figure:.4g} {th['op']} {bound:.4g}" if figure is not None
                         and bound is not None else "not measurable on the hold-out data")
        out.append(row)
    return out


def check(spec: Mapping[str, Any], info: Mapping[str, Any], conn: Any) -> Verdict:
    """Run the checks on the deployment ``info`` describes."""
    from framework.runtime.inference import ModelBundle

    lam, s3 = conn.client("lambda"), conn.client("s3")
    versions = appspec_versions(info)
    function, target, current = (versions["Name"], versions["TargetVersion"],
                                 versions["CurrentVersion"])
    ready(lam, function, target, str(spec["endpoint"]))
    data = s3.get_object(Bucket=spec["bucket"], Key=spec["holdout"]["key"])["Body"].read()
    rows, labels = read_holdout(data, spec["holdout"]["label"])
    features = list(spec["features"])

    def measure(version: str) -> tuple[str, list[Any], dict[str, float | None]]:
        model = version_model(lam, function, version)
        bundle = ModelBundle.load(conn, spec["bucket"], model["name"], model["version"],
                                  model["sha256"], max_rows=max(int(model["max_rows"]), 1))
        predicted, probabilities, classes = predict(bundle, rows, features)
        return f"{model['name']} {model['version']}", predicted, metrics(
            spec["task"], labels, predicted, probabilities, classes,
            spec["holdout"].get("positive"))

    name, answers, measured = measure(target)
    relative = any(th["relative"] for th in spec["gates"].values())
    serving = measure(current) if (relative or spec.get("drift")) and current != target \
        else None
    rows_judged = judge(spec["gates"], measured, serving[2] if serving else None)
    failed = [f"{r['gate']}: {r['detail']} ({r['expected']})" for r in rows_judged
              if not r["passed"]]
    drift = ""
    if spec.get("drift") and serving is not None:
        drifted, seen = output_drift(serving[1], answers)
        drift = f"; output drift against {serving[0]}: {seen}"
        if drifted:
            failed.append(f"its answers follow another distribution than {serving[0]}'s on "
                          f"the same rows ({seen})")
    if failed:
        return Verdict("Failed", f"{name} (version {target}) missed " + "; ".join(failed),
                       rows_judged)
    return Verdict("Succeeded", f"{name} (version {target}) is ready and passed "
                   f"{len(rows_judged)} gate(s) on {len(rows)} hold-out rows{drift}",
                   rows_judged)


# -- AfterAllowTraffic: hold the deployment until its traffic was enough to judge ----------

HOLD_POLL_S = 15.0
HOLD_MARGIN_S = 20.0  # kept of the function's time to report


def requests_since(cloudwatch: Any, function: str, model_version: str, since: Any,
                   now: Any) -> int:
    """Requests the model version answered on the endpoint's function since ``since`` (the
    handler's EMF ``Requests``, per FunctionName and ModelVersion, as CloudWatch counts them)."""
    from datetime import timedelta

    got = cloudwatch.get_metric_statistics(
        Namespace="mlops", MetricName="Requests", Statistics=["Sum"], Period=60,
        StartTime=since.replace(second=0, microsecond=0), EndTime=now + timedelta(minutes=1),
        Dimensions=[{"Name": "FunctionName", "Value": function},
                    {"Name": "ModelVersion", "Value": model_version}])
    return int(sum(p.get("Sum", 0) for p in got.get("Datapoints", [])))


def hold(spec: Mapping[str, Any], info: Mapping[str, Any], conn: Any,
         remaining_s: Callable[[], float], sleep: Callable[[float], None]) -> Verdict:
    """``watch.hold_without_traffic``: the deployment does not end before the new version
    answered ``min_requests`` requests (its alarms watch them meanwhile); past the hook's
    time it fails, and CodeDeploy rolls it back, rather than end unjudged."""
    from datetime import UTC, datetime

    versions = appspec_versions(info)
    model = version_model(conn.client("lambda"), versions["Name"], versions["TargetVersion"])
    need = int(spec["hold"]["min_requests"])
    since = info.get("startTime") or info.get("createTime") or datetime.now(UTC)
    cloudwatch = conn.client("cloudwatch")
    seen = 0
    while True:
        seen = requests_since(cloudwatch, str(spec["function"]), model["version"], since,
                              datetime.now(UTC))
        if seen >= need:
            return Verdict("Succeeded", f"{model['name']} {model['version']} answered {seen} "
                           f"requests (min_requests {need}): judged by its alarms")
        if remaining_s() < HOLD_MARGIN_S + HOLD_POLL_S:
            return Verdict("Failed", f"not enough traffic to judge {model['name']} "
                           f"{model['version']}: {seen} of {need} requests needed "
                           "(watch.hold_without_traffic)")
        sleep(HOLD_POLL_S)


# -- shadow: the new version answers copies before it answers callers ----------------------

SHADOW_ALIAS = "shadow"  # framework.compile.names.SHADOW_ALIAS
def shadow(spec: Mapping[str, Any], info: Mapping[str, Any], conn: Any,
           remaining_s: Callable[[], float], sleep: Callable[[float], None]) -> Verdict:
    """A shadow rollout's step: the deployment pointed the function's shadow alias at the new
    version, so the serving version copies its requests there (``framework.runtime.shadow``);
    after the bake time the copies' agreement decides, and the alias goes."""
    from datetime import UTC, datetime

    settings = spec["shadow"]
    versions = appspec_versions(info)
    lam, cd = conn.client("lambda"), conn.client("codedeploy")
    model = version_model(lam, versions["Name"], versions["TargetVersion"])
    since = info.get("createTime") or datetime.now(UTC)
    waited = 0.0
    stopped = False
    try:
        while waited < float(settings["bake_s"]) and \
                remaining_s() > HOLD_MARGIN_S + HOLD_POLL_S:
            sleep(HOLD_POLL_S)
            waited += HOLD_POLL_S
            status = cd.get_deployment(deploymentId=info["deploymentId"])["deploymentInfo"][
                "status"]
            if status in ("Stopped", "Failed", "Succeeded"):
                stopped = True
                break
    finally:
        _end_shadow(conn, versions["Name"])
    if stopped:
        return Verdict("Failed", "the deployment was stopped while its shadow ran")
    got = shadow_sums(conn.client("cloudwatch"), versions["Name"], model["version"], since,
                      datetime.now(UTC))
    compared, disagreed = got["ShadowCompared"], got["ShadowDisagreement"]
    need = int(settings["min_requests"])
    seen = (f"{model['name']} {model['version']} answered {got['ShadowRequests']} copies "
            f"({got['ShadowErrors']} not 200), {compared} rows compared, {disagreed} disagreed")
    if got["ShadowErrors"] and compared < got["ShadowErrors"]:
        return Verdict("Failed", f"{seen}: it fails the copies")
    if compared < need:
        if settings.get("hold"):
            return Verdict("Failed", f"{seen}: not enough shadow traffic to judge "
                           f"({compared} of {need} rows; watch.hold_without_traffic)")
        return Verdict("Succeeded", f"{seen}: not judged, not enough shadow traffic "
                       f"({compared} of {need} rows needed)")
    agreement = 1 - disagreed / compared
    bound = settings.get("agreement")
    if bound is not None and agreement < float(bound):
        return Verdict("Failed", f"{seen}: shadow agreement {agreement:.1%} below "
                       f"{float(bound):.1%}")
    return Verdict("Succeeded", f"{seen}: shadow agreement {agreement:.1%}")


def _end_shadow(conn: Any, function: str) -> None:
    try:
        conn.client("lambda").delete_alias(FunctionName=function, Name=SHADOW_ALIAS)
    except Exception as exc:
        if "ResourceNotFound" not in f"{type(exc).__name__} {exc}":
            raise


def lifecycle_event(cd: Any, deployment_id: str) -> str:
    """Which hook CodeDeploy runs now: AfterAllowTraffic once AllowTraffic has succeeded,
    else BeforeAllowTraffic (one function answers both)."""
    ids = cd.list_deployment_targets(deploymentId=deployment_id).get("targetIds", [])
    if not ids:
        return "BeforeAllowTraffic"
    target = cd.get_deployment_target(deploymentId=deployment_id, targetId=ids[0])
    events = {e["lifecycleEventName"]: e.get("status") for e in
              target["deploymentTarget"].get("lambdaTarget", {}).get("lifecycleEvents", [])}
    return "AfterAllowTraffic" if events.get("AllowTraffic") == "Succeeded" \
        else "BeforeAllowTraffic"


def handle(event: Mapping[str, Any], spec: Mapping[str, Any], conn: Any,
           remaining_s: Callable[[], float], sleep: Callable[[float], None]) -> Verdict:
    """The hook: check, then report to CodeDeploy (always, so it never waits in vain)."""
    cd = conn.client("codedeploy")
    deployment_id = str(event["DeploymentId"])
    phase = "BeforeAllowTraffic"
    try:
        info = cd.get_deployment(deploymentId=deployment_id)["deploymentInfo"]
        phase = lifecycle_event(cd, deployment_id)
        if phase == "AfterAllowTraffic":
            verdict = hold(spec, info, conn, remaining_s, sleep) if spec.get("hold") else \
                Verdict("Succeeded", "nothing to hold for")
        else:
            verdict = check(spec, info, conn) if spec.get("holdout") else \
                Verdict("Succeeded", "no hold-out data to check")
            if verdict.status == "Succeeded" and spec.get("shadow"):
                checked = verdict
                verdict = shadow(spec, info, conn, remaining_s, sleep)
                verdict.reason = f"{checked.reason}; {verdict.reason}"
                verdict.gates = checked.gates
    except CheckFailedError as exc:
        verdict = Verdict("Failed", str(exc))
    except Exception as exc:  # the check could not run: the version is not shown fit
        verdict = Verdict("Failed", f"the check could not run: {type(exc).__name__}: {exc}")
    if spec.get("shadow") and phase == "BeforeAllowTraffic" and verdict.status == "Failed":
        _end_shadow(conn, str(spec["function"]))  # no copies for a version that goes
    print(json.dumps({"msg": "pretraffic", "deployment_id": deployment_id,
                      "endpoint": spec.get("endpoint"), "event": phase,
                      "status": verdict.status, "reason": verdict.reason,
                      "gates": verdict.gates}), flush=True)
    cd.put_lifecycle_event_hook_execution_status(
        deploymentId=deployment_id,
        lifecycleEventHookExecutionId=str(event["LifecycleEventHookExecutionId"]),
        status=verdict.status)
    return verdict
