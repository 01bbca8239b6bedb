"""A capturing endpoint's two log-to-bucket paths (captured rows, feedback labels) and the
retention of everything derived from its captures: pinned by golden files (compile, and the
CloudFormation export, which cfn-lint accepts)."""

from __future__ import annotations

import copy
import json
from typing import Any

from framework.compile import compile_config
from framework.compile.compiler import (
    CAPTURE_FILTER_PATTERN,
    FEEDBACK_FILTER_PATTERN,
    RETAINED,
)
from framework.compile.graph import ResourceGraph
from framework.config.models import Config
from framework.synth import ACCOUNT, REGION, synthesize, to_json
from tests.compile.test_compile import SPEC, context
from tests.conftest import check_golden

BUCKET = f"fraud-registry-{ACCOUNT}-{REGION}"


def capturing_spec() -> dict[str, Any]:
    spec = copy.deepcopy(SPEC)
    spec["endpoints"]["score"]["capture"] = {"sample_rate": 1.0, "retain_days": 30}
    spec["monitors"]["fraud-drift"]["performance"] = {"metric": "accuracy", "min": 0.9}
    return spec


def graph() -> ResourceGraph:
    return compile_config(Config.model_validate(capturing_spec()),
                          context(account_id=ACCOUNT, region=REGION))


def _paths(g: ResourceGraph) -> dict[str, Any]:
    """The registry bucket and the resources of the endpoint's two paths."""
    picked = [rid for rid in g.resources if rid == "registry" or rid.startswith((
        "stream.", "subscription.", "role.score-capture", "role.score-feedback"))]
    return {rid: g.resources[rid].to_dict() for rid in sorted(picked)}


def test_capture_and_feedback_paths_match_golden() -> None:
    check_golden("compile_log_streams.json", json.dumps(_paths(graph()), indent=2) + "\n")


def test_two_filters_two_streams_each_role_scoped_to_its_own_prefix() -> None:
    res = graph().resources
    subs = {rid: res[rid].props for rid in res if rid.startswith("subscription.")}
    assert {rid: (p["filter_pattern"], p["destination_arn"].rsplit("/", 1)[-1])
            for rid, p in subs.items()} == {
        "subscription.score": (CAPTURE_FILTER_PATTERN, "fraud-dev-score-capture"),
        "subscription.score.feedback": (FEEDBACK_FILTER_PATTERN, "fraud-dev-score-feedback")}
    assert len({p["log_group"] for p in subs.values()}) == 1  # a log group allows two
    for root, stream in (("capture", "stream.score"), ("feedback", "stream.score.feedback")):
        props = res[stream].props
        assert props["prefix"] == f"{root}/score/dt=!{{timestamp:yyyy-MM-dd}}/"
        writes = [r for s in res[f"role.score-{root}"].props["policy"]["Statement"]
                  if "s3:PutObject" in s["Action"] for r in s["Resource"]]
        assert writes == [f"arn:aws:s3:::{BUCKET}/{root}/score/*",
                          f"arn:aws:s3:::{BUCKET}/{root}-errors/score/*"]
        sends = [r for s in res[f"role.score-{root}-logs"].props["policy"]["Statement"]
                 for r in s["Resource"]]
        assert sends == [f"arn:aws:firehose:{REGION}:{ACCOUNT}:deliverystream/"
                         f"fraud-dev-score-{root}"]
    # the function itself writes no S3 object: rows and labels leave through its log
    fn = [r for s in res["role.score"].props["policy"]["Statement"] for r in s["Resource"]
          if r.startswith("arn:aws:s3:::") and "s3:PutObject" in s["Action"]]
    assert fn == []


def test_everything_derived_from_captures_expires_with_them() -> None:
    rules = graph().resources["registry"].props["lifecycle"]
    assert [(r["prefix"], r["expire_days"]) for r in rules] == [
        (f"{root}/score/", 30) for root in RETAINED]
    assert {"capture-profiles/score/", "feedback/score/"} <= {r["prefix"] for r in rules}
    no_capture = compile_config(Config.model_validate(SPEC), context())
    assert not [rid for rid in no_capture.resources if rid.startswith("stream.")]


def test_template_matches_golden() -> None:
    """(cfn-lint accepts it: ``tests/synth/test_synth.py::test_capture_stream_passes_cfn_lint``
    lints a capturing endpoint's template.)"""
    check_golden("synth_log_streams.json",
                 to_json(synthesize(graph(), description="mlops project fraud, stage dev")))


def test_capture_buffer_sets_the_capture_streams_hints_only() -> None:
    spec = capturing_spec()
    spec["endpoints"]["score"]["capture"]["buffer"] = {"size_mb": 64, "interval": "5m"}
    g = compile_config(Config.model_validate(spec), context(account_id=ACCOUNT, region=REGION))
    hints = {rid: (g.resources[rid].props["buffer_mb"], g.resources[rid].props["buffer_seconds"])
             for rid in ("stream.score", "stream.score.feedback")}
    assert hints == {"stream.score": (64, 300), "stream.score.feedback": (5, 60)}
    default = graph().resources["stream.score"].props
    assert (default["buffer_mb"], default["buffer_seconds"]) == (5, 60)  # Firehose's 5 MiB
    template = synthesize(g, description="mlops project fraud, stage dev")["Resources"]
    got = {v["Properties"]["DeliveryStreamName"]:
           v["Properties"]["ExtendedS3DestinationConfiguration"]["BufferingHints"]
           for v in template.values() if v["Type"] == "AWS::KinesisFirehose::DeliveryStream"}
    assert got == {"fraud-dev-score-capture": {"IntervalInSeconds": 300, "SizeInMBs": 64},
                   "fraud-dev-score-feedback": {"IntervalInSeconds": 60, "SizeInMBs": 5}}
