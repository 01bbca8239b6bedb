"""The resource kinds' table: every kind has every part, its typed properties give back the
very dict they were built from, a misspelt property is refused, an unknown kind is an error
everywhere, and compile, plan and synth stay pure (no boto3, no botocore)."""

from __future__ import annotations

import copy
import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from framework import lockfile, resources
from framework.compile import ArtifactInfo, compile_config
from framework.compile.graph import KINDS, Resource, ResourceGraph
from framework.config.models import Config
from framework.errors import DeployError
from framework.plan import Entry, State, make_plan
from framework.plan.planner import CHECKED_ONLY, REPLACE_ON, RETAINED
from framework.providers.aws import AwsProvider
from framework.resources import ABSENT, LambdaFunction, PropsError, UnknownKindError
from framework.resources.base import FoldedInto, Implicit, InRegistry, Props, Stack
from tests.compile.test_compile import SPEC, context

AWS_SERVICES = {"s3", "lambda", "iam", "firehose", "logs", "apigatewayv2", "events", "ses",
                "cloudwatch", "codedeploy", "sts"}
HOLDOUT = ArtifactInfo(sha256="h" * 64, size=99, source="data/holdout.csv", metadata="")


def full_graph() -> ResourceGraph:
    """A graph with every kind compile makes: the test project with capture on (Firehose,
    subscription) and a canary checked before traffic on its hold-out data (CodeDeploy,
    alarms, the hook)."""
    spec = copy.deepcopy(SPEC)
    spec["endpoints"]["score"]["capture"] = {"sample_rate": 1.0}
    spec["endpoints"]["score"]["rollout"] = {"strategy": "canary", "steps": [10, 100],
                                             "every": "1m"}
    spec["models"]["fraud-clf"]["holdout"] = {"path": "data/holdout.csv", "label": "fraud"}
    return compile_config(Config.model_validate(spec),
                          context(holdouts={"fraud-clf": HOLDOUT}))


def test_the_table_is_the_order_of_a_fresh_deploy() -> None:
    assert KINDS == resources.KINDS == tuple(k.name for k in resources.TABLE)
    assert KINDS[0] == "s3_bucket"  # the registry holds the lock and the state: first
    assert KINDS.index("lambda_function") > KINDS.index("iam_role")
    assert KINDS.index("lambda_alias") > KINDS.index("lambda_version")
    assert set(REPLACE_ON) == set(KINDS)
    assert sorted(RETAINED) == ["model_version"]
    assert dict(CHECKED_ONLY) == {"model_version": {"gates"}}


@pytest.mark.parametrize("kind", resources.TABLE, ids=lambda k: k.name)
def test_every_kind_has_all_parts(kind: resources.Kind[Any]) -> None:
    module = sys.modules[kind.create.__module__]
    assert module.__name__ == f"framework.resources.{kind.name}"  # one module per kind
    assert module.KIND is kind
    props = kind.props
    assert issubclass(props, Props) and props.kind == kind.name
    params = props.__dataclass_params__
    assert params.frozen, f"{props.__name__} must be frozen"
    fields = {f.name for f in dataclasses.fields(props)}
    assert fields, f"{props.__name__} has no properties"
    assert kind.replace_on and (kind.replace_on == {"*"} or kind.replace_on <= fields)
    assert kind.checked_only <= fields
    assert kind.services and set(kind.services) <= AWS_SERVICES
    for call in (kind.create, kind.update, kind.delete, kind.exists):
        assert callable(call) and call.__module__ == module.__name__
    assert kind.replace is None or kind.replace.__module__ == module.__name__
    assert kind.observe is None or kind.observe.__module__ == module.__name__
    assert isinstance(kind.cloudformation, Stack | InRegistry | FoldedInto | Implicit)
    assert (module.__doc__ or "").startswith(f"{kind.name}:"), "say what the kind is"


GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "compile_fraud.json"
# The kinds the golden graph lacks (capture is off there), as compile writes them.
CAPTURE: dict[str, dict[str, Any]] = {
    "firehose_stream": {
        "stream_name": "fraud-dev-score-capture", "bucket": "b",
        "role_arn": "arn:aws:iam::123456789012:role/fraud-dev-score-capture",
        "prefix": "capture/score/dt=!{timestamp:yyyy-MM-dd}/",
        "error_prefix": "capture-errors/score/!{firehose:error-output-type}/",
        "buffer_seconds": 60, "buffer_mb": 5, "compression": "GZIP", "extension": ".jsonl.gz",
        "source": "cloudwatch_logs", "tags": {"mlops:project": "fraud"}},
    "log_subscription": {
        "log_group": "/aws/lambda/fraud-dev-score", "filter_name": "mlops-capture",
        "filter_pattern": '{ $.msg = "capture" }',
        "destination_arn": "arn:aws:firehose:us-east-1:123456789012:deliverystream/x",
        "role_arn": "arn:aws:iam::123456789012:role/fraud-dev-score-capture-logs"},
}


# ... and the kinds of a CodeDeploy rollout, as compile and the plan write them.
DEPLOYMENT: dict[str, dict[str, Any]] = {
    "cloudwatch_alarm": {
        "alarm_name": "fraud-dev-score-1.2.0-error-rate",
        "description": "Server errors (5xx) of score (1.2.0) above 1.0% of its requests over 1 min",
        "definition": {"Metrics": [{"Id": "rate", "Expression": "100 * servererrors / requests",
                                    "ReturnData": True}],
                       "ComparisonOperator": "GreaterThanThreshold", "Threshold": 1.0,
                       "EvaluationPeriods": 1, "DatapointsToAlarm": 1,
                       "TreatMissingData": "notBreaching"},
        "tags": {"mlops:endpoint": "score"}},
    "codedeploy_app": {"application_name": "fraud-dev", "compute_platform": "Lambda",
                       "tags": {"mlops:project": "fraud"}},
    "codedeploy_deployment_config": {
        "config_name": "fraud-dev-Canary10Percent1Minute", "compute_platform": "Lambda",
        "routing": "TimeBasedCanary", "percentage": 10, "interval_s": 60},
    "codedeploy_deployment_group": {
        "application_name": "fraud-dev", "group_name": "fraud-dev-score", "endpoint": "score",
        "service_role_arn": "arn:aws:iam::123456789012:role/fraud-dev-codedeploy-fn",
        "config_name": "fraud-dev-Canary10Percent1Minute",
        "alarms": ["fraud-dev-score-1.2.0-error-rate"],
        "rollback_events": ["DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM"],
        "tags": {"mlops:endpoint": "score"}},
    "alias_deployment": {
        "endpoint": "score", "application_name": "fraud-dev", "group_name": "fraud-dev-score",
        "function_name": "fraud-dev-score", "alias": "live",
        "target_version": {"$ref": "version.score", "attr": "version"},
        "config_name": "fraud-dev-Canary10Percent1Minute",
        "hooks": {"BeforeAllowTraffic": "fraud-dev-hook-score"},
        "description": "canary 10% for 1m, then 100%: fraud-clf 1.2.0 → 1.3.0"},
}


def test_every_kind_round_trips_props_typed_props() -> None:
    """The props of every kind, as the golden file recorded them (refs included), give back
    the same dict, key order too, through the typed properties."""
    recorded = [(rid, r["kind"], r["props"]) for rid, r in json.loads(GOLDEN.read_text()).items()]
    recorded += [(kind, kind, props) for kind, props in {**CAPTURE, **DEPLOYMENT}.items()]
    for rid, kind, props in recorded:
        typed = resources.kind(kind).parse(props)
        assert isinstance(typed, resources.kind(kind).props)
        again = typed.to_props()
        assert again == props, rid
        assert json.dumps(again) == json.dumps(props), f"{rid}: key order changed"
    assert {kind for _, kind, _ in recorded} == set(KINDS), "a kind lacks recorded props"
    for res in full_graph().resources.values():  # and compile writes them as recorded
        if res.kind in CAPTURE or res.kind in DEPLOYMENT:
            assert list(res.props) == list({**CAPTURE, **DEPLOYMENT}[res.kind]), res.id


def test_properties_older_versions_did_not_write_stay_unwritten() -> None:
    # A monitor's alias has no endpoint nor rollout; a layer of the single-layer era no
    # need; a function of before architectures none: absent stays absent.
    alias = {"function_name": "f", "alias": "live", "function_version": "1"}
    assert resources.kind("lambda_alias").parse(alias).to_props() == alias
    fn = LambdaFunction.from_props({
        "function_name": "f", "runtime": "python3.13", "handler": "h", "role_arn": "r",
        "code": {"bucket": "b", "key": "k", "sha256": "0" * 64}, "memory": 128, "timeout": 3,
        "concurrency": None, "description": "", "environment": {}, "tags": {}})
    assert fn.architectures is ABSENT and "architectures" not in fn.to_props()
    assert not fn.layers and list(fn.layers or []) == []


def test_a_state_written_by_an_older_version_is_read_as_it_is() -> None:
    # schedule targets once had a constant `input`, objects their `content`.
    old = {"rule_name": "r", "target_id": "monitor", "arn": "a", "input": "{}"}
    view = resources.kind("schedule_target").view(Entry("schedule_target", old, {}))
    assert view.props.rule_name == "r" and view.props.input_transformer is ABSENT
    with pytest.raises(PropsError, match="unknown property 'input'"):
        resources.kind("schedule_target").parse(old)  # never as a desired state


def test_a_misspelt_property_is_refused() -> None:
    graph = full_graph()
    fn = graph.resources["function.score"]
    bad = {**fn.props, "memroy": fn.props["memory"]}
    with pytest.raises(PropsError, match="lambda_function: unknown property 'memroy'"):
        resources.kind("lambda_function").parse(bad)
    with pytest.raises(PropsError, match="unknown property 'memroy'"):
        Resource("lambda_function", "function.score", bad)
    missing = {k: v for k, v in fn.props.items() if k != "memory"}
    with pytest.raises(PropsError, match="missing property 'memory'"):
        Resource("lambda_function", "function.score", missing)
    with pytest.raises(TypeError, match="memroy"):
        LambdaFunction(**bad)  # what compile calls: refused there too


def test_an_unknown_kind_is_an_error_everywhere(tmp_path: Path) -> None:
    with pytest.raises(UnknownKindError, match="unknown resource kind 'ec2_instance'"):
        resources.kind("ec2_instance")
    with pytest.raises(ValueError, match="unknown resource kind"):
        Resource("ec2_instance", "x", {})
    state = State(project="fraud", stage="dev", lineage="L").record(
        "x", Entry("ec2_instance", {}, {}))
    with pytest.raises(UnknownKindError) as info:  # a state of another version: a delete
        make_plan(ResourceGraph.of([]), state, {}, target="local", region="us-east-1",
                  account_id="123456789012")
    assert isinstance(info.value, DeployError) and "another mlops version" in info.value.hint
    with pytest.raises(UnknownKindError):
        lockfile.stage_entry(state, target="local", region="us-east-1", account="1")
    provider = AwsProvider(None, tmp_path)  # type: ignore[arg-type]  # never reached
    with pytest.raises(UnknownKindError):
        provider.create("ec2_instance", {})
    with pytest.raises(UnknownKindError):
        provider.exists(Entry("ec2_instance", {}, {}))


def test_an_old_schedule_target_is_found_and_deleted(tmp_path: Path) -> None:
    """The provider reads the state's entries leniently: a target recorded with `input`."""
    events = boto3.client("events", region_name="eu-west-1", aws_access_key_id="k",
                          aws_secret_access_key="s")

    class Conn:
        region, endpoint_url = "eu-west-1", None

        def client(self, service: str) -> Any:
            assert service == "events"
            return events

    entry = Entry("schedule_target", {"rule_name": "r", "target_id": "monitor",
                                      "arn": "arn:aws:lambda:eu-west-1:1:function:f:live",
                                      "input": "{}"}, {"target_id": "monitor"})
    with Stubber(events) as stub:
        stub.add_response("list_targets_by_rule", {"Targets": [{"Id": "monitor", "Arn": "a"}]},
                          {"Rule": "r"})
        stub.add_response("remove_targets", {}, {"Rule": "r", "Ids": ["monitor"]})
        provider = AwsProvider(Conn(), tmp_path)  # type: ignore[arg-type]
        assert provider.exists(entry)
        provider.delete(entry)
        stub.assert_no_pending_responses()


def test_the_lock_entry_comes_from_the_kinds() -> None:
    graph = full_graph()
    state = State(project="fraud", stage="dev", lineage="L")
    for rid in graph.order():
        res = graph.resources[rid]
        state = state.record(rid, Entry(res.kind, res.props, {"version": "3"}))
    entry = lockfile.stage_entry(state, target="local", region="us-east-1", account="1")
    assert set(entry["models"]) == {"fraud-clf@1.2.0"}
    assert entry["code"] == {"sha256": "c" * 64, "key": f"code/{'c' * 64}.zip"}
    assert set(entry["endpoints"]) == {"score", "score-iam"}  # not the monitor's function
    assert entry["endpoints"]["score"]["serving_lambda_version"] == "3"
    assert {layer["need"] for layer in entry["layers"].values()} == {"serve", "monitor"}


def test_compile_plan_and_synth_load_neither_boto3_nor_botocore() -> None:
    code = ("import sys, framework.resources, framework.compile, framework.plan, "
            "framework.synth; print(sorted(m for m in sys.modules "
            "if m.split('.')[0] in ('boto3', 'botocore')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
