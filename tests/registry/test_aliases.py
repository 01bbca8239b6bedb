"""Aliases: compare-and-swap (a real race against the server), history, rollback, approvals."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import pytest

from framework.config.models import Config
from framework.registry import identity, refs, service
from framework.registry.errors import AliasConflictError, ApprovalRequiredError
from framework.registry.store import AliasState, Registry

from .conftest import put


def three_versions(reg: Registry) -> None:
    for i, v in enumerate(("1.0.0", "1.1.0", "1.2.0")):
        put(reg, "m", v, f"model-{i}".encode())


def test_concurrent_promotions_exactly_one_wins(reg: Registry) -> None:
    three_versions(reg)
    service.promote(reg, None, refs.ModelRef("m", "1.0.0"), "production")
    barrier = threading.Barrier(2)
    results: dict[str, Any] = {}

    def race(version: str) -> None:
        expected = reg.alias("m", "production")  # both read the same ETag ...
        barrier.wait()
        try:  # ... and both try to swap it
            results[version] = reg.set_alias(expected, version, action="promote")
        except AliasConflictError as exc:
            results[version] = exc

    threads = [threading.Thread(target=race, args=(v,)) for v in ("1.1.0", "1.2.0")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [v for v, r in results.items() if isinstance(r, dict)]
    losers = [r for r in results.values() if isinstance(r, AliasConflictError)]
    assert len(winners) == 1 and len(losers) == 1
    assert f"now points at {winners[0]}" in losers[0].what
    assert reg.alias("m", "production").version == winners[0]
    assert [h["version"] for h in reg.history("m", "production")] == ["1.0.0", winners[0]]


def test_many_concurrent_promotions_lose_no_update(reg: Registry) -> None:
    three_versions(reg)
    outcomes: list[str] = []
    lock = threading.Lock()

    def go(version: str) -> None:
        try:
            service.promote(reg, None, refs.ModelRef("m", version), "staging")
            result = "won"
        except AliasConflictError:
            result = "conflict"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=go, args=(v,)) for v in ("1.0.0", "1.1.0", "1.2.0") * 3]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    history = reg.history("m", "staging")
    # Every change that returned is in the history, in sequence; nothing was overwritten.
    assert [h["seq"] for h in history] == list(range(1, len(history) + 1))
    assert outcomes.count("won") >= len(history) >= 1
    for prev, cur in zip(history, history[1:], strict=False):
        assert cur["previous"] == prev["version"]


def test_stale_swap_on_a_created_alias_conflicts(reg: Registry) -> None:
    put(reg, "m", "1.0.0", b"a")
    unset = AliasState("m", "production", None, None)
    reg.set_alias(unset, "1.0.0", action="promote")
    with pytest.raises(AliasConflictError, match="was unset, now points at 1.0.0"):
        reg.set_alias(unset, "1.0.0", action="promote")


def test_history_answers_what_was_production_at_a_time(reg: Registry) -> None:
    three_versions(reg)
    for v in ("1.0.0", "1.1.0", "1.2.0"):
        service.promote(reg, None, refs.ModelRef("m", v), "production")
    records = reg.history("m")
    times = [service.record_time(r) for r in records]
    assert service.at_time(records, datetime(2000, 1, 1, tzinfo=UTC)) == {"production": None}
    assert service.at_time(records, times[0]) == {"production": "1.0.0"}
    assert service.at_time(records, times[1]) == {"production": "1.1.0"}
    assert service.at_time(records, times[2]) == {"production": "1.2.0"}


def test_rollback_walks_back_through_promotions(reg: Registry) -> None:
    three_versions(reg)
    for v in ("1.0.0", "1.1.0", "1.2.0"):
        service.promote(reg, None, refs.ModelRef("m", v), "production")
    assert service.rollback(reg, "m", "production")["version"] == "1.1.0"
    assert service.rollback(reg, "m", "production")["version"] == "1.0.0"
    with pytest.raises(Exception, match="no previous version"):
        service.rollback(reg, "m", "production")
    assert service.rollback(reg, "m", "production", to="1.2.0")["version"] == "1.2.0"
    actions = [r["action"] for r in reg.audit.read_local()]  # type: ignore[union-attr]
    assert actions.count("models.rollback") == 3


def _as(reg: Registry, name: str) -> Registry:
    """The registry acting as ``name`` (the configured identity of the local target)."""
    reg.identity = identity.configured(name, "123456789012")
    return reg


def test_promotion_needs_the_declared_approvals(reg: Registry) -> None:
    put(reg, "m", "1.0.0", b"a")
    config = Config.model_validate({
        "project": "p", "registry": {"approvals": {"production": {"required": 2}}},
        "models": {"m": {"version": "1.0.0", "artifact": "m.onnx", "features": [{"name": "x"}],
                         "approvals": {"staging": {"approvers": ["alice"]}}}}})
    ref = refs.ModelRef("m", "1.0.0")
    with pytest.raises(ApprovalRequiredError, match="needs 2 approval"):
        service.promote(reg, config, ref, "production")
    _as(reg, "alice").approve("m", "1.0.0", "alice", "validated on Q1 data", alias="production")
    _as(reg, "alice").approve("m", "1.0.0", "Alice B.", "again")  # the same identity counts once
    with pytest.raises(ApprovalRequiredError, match=r"so far: alice\); not counted: Alice B\. "
                                                    r"\(arn:aws:iam::123456789012:user/alice\): "
                                                    r"already counted"):
        service.promote(reg, config, ref, "production")
    _as(reg, "bob").approve("m", "1.0.0", "bob", "signed off", alias="staging")  # not production
    with pytest.raises(ApprovalRequiredError):
        service.promote(reg, config, ref, "production")
    _as(reg, "carol").approve("m", "1.0.0", "carol", "ok")
    assert service.promote(reg, config, ref, "production")["version"] == "1.0.0"
    # The model's own rule for staging: only alice's approvals count (her unscoped one does).
    assert service.promote(reg, config, ref, "staging")["version"] == "1.0.0"
    strict = Config.model_validate({**config.model_dump(mode="json"), "models": {"m": {
        **config.models["m"].model_dump(mode="json"),
        "approvals": {"qa": {"approvers": ["dave"]}}}}})
    with pytest.raises(ApprovalRequiredError, match="needs 1 approval\\(s\\) from dave"):
        service.promote(reg, strict, ref, "qa")
    audit = [r for r in reg.audit.read_local() if r["action"] == "models.approve"]  # type: ignore
    assert [r["after"]["approved_by"] for r in audit] == ["alice", "Alice B.", "bob", "carol"]
    assert [r["actor"].rsplit("/", 1)[1] for r in audit] == ["alice", "alice", "bob", "carol"]


def test_diff_and_lineage(reg: Registry) -> None:
    put(reg, "m", "1.0.0", b"a", params={"c": 1.0})
    put(reg, "m", "1.1.0", b"b", params={"c": 0.5}, metrics={"auc": 0.95})
    rows = {k: (a, b) for k, a, b in service.diff(reg.metadata("m", "1.0.0"),
                                                   reg.metadata("m", "1.1.0"))}
    assert rows["metrics.auc"] == (0.9, 0.95) and rows["params.c"] == (1.0, 0.5)
    assert [m["version"] for m in service.lineage(reg, "m", "1.1.0")] == ["1.1.0", "1.0.0"]
