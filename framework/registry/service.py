"""Registry operations as a user runs them: register from mlops.yaml, promote under approval
rules, roll back, answer history, lineage and diff questions.

The CLI (``framework/cli_models.py``) prints what these return; deploy's ``model_version``
resource calls ``register_files`` too, so both paths register a version the same way.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from framework.config.models import Approval, Config, Model
from framework.registry import identity as identities
from framework.registry import refs
from framework.registry.errors import ApprovalRequiredError, RegistryInputError
from framework.registry.identity import Identity
from framework.registry.metadata import version_metadata
from framework.registry.provenance import provenance
from framework.registry.store import Registered, Registry

log = logging.getLogger(__name__)


def reference_profile(metadata: Mapping[str, Any], path: Path,
                      artifact: bytes | None = None) -> dict[str, Any]:
    """The drift baseline of ``path`` (monitoring's profile format); with the model's bytes,
    also the profile of its answers on those rows (``predictions``: the baseline of the
    monitors' prediction drift)."""
    from framework.monitoring.profile import profile_reference

    profile = profile_reference(path, list(metadata["features"]))
    if artifact is not None:
        answers = reference_predictions(metadata, path, artifact)
        if answers is not None:
            profile["predictions"] = answers
    return profile


def reference_predictions(metadata: Mapping[str, Any], path: Path, artifact: bytes,
                          ) -> dict[str, Any] | None:
    """The model's answers on the reference rows, profiled; None if they cannot be had (rows
    outside the input contract, a model that fails to run): registering does not depend on
    them, the monitors then compare with their first window, and a model that cannot answer
    is for the gates and the rollout to stop."""
    from framework.gates import predict_records, read_records
    from framework.monitoring.check import prediction_profile
    from framework.runtime.inference import ModelBundle

    try:
        bundle = ModelBundle.from_bytes(metadata, artifact, str(metadata["sha256"]))
        records, _ = read_records(path)
        features = [str(f["name"]) for f in metadata["features"]]
        predictions, _, _ = predict_records(bundle, records, features)
    except Exception as exc:  # noqa: BLE001  (any failure only costs this baseline)
        log.warning("no reference predictions for %s@%s: %s", metadata.get("name"),
                    metadata.get("version"), exc)
        return None
    numeric = str(metadata.get("task", "classification")) == "regression"
    return prediction_profile(predictions, numeric).to_dict()


def register_files(reg: Registry, root: Path, artifact: Path, metadata: dict[str, Any],
                   reference: Path | None) -> Registered:
    """Register prepared metadata with the artifact's bytes and (optionally) reference data."""
    data = artifact.read_bytes()
    profile = reference_profile(metadata, reference, data) if reference is not None else None
    return reg.register(str(metadata["name"]), str(metadata["version"]), data,
                        metadata, provenance(root), reference=profile)


def register_declared(reg: Registry, config: Config, root: Path, name: str) -> Registered:
    """Register the version of ``name`` that mlops.yaml declares."""
    model = declared(config, name)
    from framework.artifacts import check_artifact

    problems = check_artifact(name, model, root)
    if problems:
        from framework.errors import ConfigError

        raise ConfigError(problems, source="artifacts")
    artifact = (root / model.artifact).resolve()
    meta = version_metadata(name, model, artifact, root)
    ref = (root / model.reference).resolve() if model.reference else None
    return register_files(reg, root, artifact, meta, ref)


def declared(config: Config, name: str) -> Model:
    refs.check_model(name)
    if name not in config.models:
        raise RegistryInputError(
            f"model '{name}' is not declared in mlops.yaml", where=f"models.{name}",
            hint=f"declared models: {', '.join(config.models) or 'none'}")
    return config.models[name]


# -- approvals ------------------------------------------------------------------------


def approval_rule(config: Config | None, name: str, alias: str) -> Approval | None:
    if config is None:
        return None
    model = config.models.get(name)
    if model is not None and alias in model.approvals:
        return model.approvals[alias]
    return config.registry.approvals.get(alias)


@dataclass(frozen=True)
class ApprovalStatus:
    required: int
    approvers: tuple[str, ...]  # who counted: the display name and the principal
    allowed: tuple[str, ...]  # who may approve, as the rule says (empty: anyone)
    left_out: tuple[str, ...] = ()  # approvals that did not count, and why

    @property
    def satisfied(self) -> bool:
        return len(self.approvers) >= self.required


def rule_text(rule: Approval) -> str:
    """Who a rule lets approve, for messages: names, roles, separation of duties."""
    parts = []
    if rule.approvers:
        parts.append(f"from {', '.join(rule.approvers)}")
    if rule.roles:
        parts.append(f"in role {' or '.join(rule.roles)}")
    if rule.separation_of_duties:
        parts.append("not by whoever registered it")
    return " ".join(parts)


def approver_identity(rec: Mapping[str, Any]) -> Identity:
    """Who made an approval: its verified identity, or (records older than identities) its
    actor, the caller's STS ARN."""
    if isinstance(rec.get("identity"), dict) and rec["identity"].get("principal"):
        return Identity.from_dict(rec["identity"])
    return identities.from_arn(str(rec.get("actor") or rec.get("by") or "unknown"))


def author_of(meta: Mapping[str, Any]) -> str | None:
    """The principal that registered a version (None: registered before mlops recorded it)."""
    got = meta.get("registered_by")
    return str(got["principal"]) if isinstance(got, dict) and got.get("principal") else None


def approval_status(reg: Registry, rule: Approval | None, name: str, version: str,
                    alias: str) -> ApprovalStatus:
    """Which approvals of ``name@version`` count towards ``rule`` for ``alias``: by verified
    identity (``distinct``: one per principal), from its names and roles, never its author's
    under ``separation_of_duties``."""
    if rule is None:
        return ApprovalStatus(0, (), ())
    author = author_of(reg.metadata(name, version)) if rule.separation_of_duties else None
    counted: dict[str, str] = {}
    left_out: list[str] = []
    for rec in reg.approvals(name, version):
        if rec.get("alias") not in (None, alias):
            continue
        who = approver_identity(rec)
        shown = who.shown(str(rec.get("by") or ""))
        if rule.approvers and who.name not in rule.approvers:
            left_out.append(f"{shown}: not one of {', '.join(rule.approvers)}")
        elif rule.roles and not who.in_role(rule.roles):
            left_out.append(f"{shown}: not in role {' or '.join(rule.roles)}")
        elif rule.separation_of_duties and (author is None or who.principal == author):
            left_out.append(f"{shown}: registered this version" if author else
                            f"{shown}: the version records no verified author, so separation "
                            "of duties cannot be checked")
        elif rule.distinct and who.principal in counted:
            left_out.append(f"{shown}: already counted for this identity")
        else:
            counted[who.principal if rule.distinct else str(rec.get("id"))] = shown
    return ApprovalStatus(rule.needed, tuple(counted.values()), rule.approvers,
                          tuple(left_out))


def approve(reg: Registry, config: Config | None, ref: refs.ModelRef, by: str, note: str,
            alias: str | None = None) -> dict[str, Any]:
    """Record the caller's approval of ``ref`` (a version), refused when a rule with
    ``separation_of_duties`` covers it and the caller registered the version."""
    if ref.version is None:
        raise RegistryInputError(f"'{ref}' names no version", where=str(ref),
                                 hint=f"write {ref.name}@VERSION")
    meta = reg.metadata(ref.name, ref.version)
    rules = _rules_for(config, ref.name, alias)
    if any(rule.separation_of_duties for rule in rules.values()):
        who = reg.caller()
        if author_of(meta) == who.principal:
            which = ", ".join(sorted(a for a, r in rules.items() if r.separation_of_duties))
            raise ApprovalRequiredError(
                f"{who.principal} registered {ref.name}@{ref.version} and may not approve it "
                f"(separation_of_duties for {which})", where=f"{ref.name}@{ref.version}",
                hint="another identity must approve it")
    return reg.approve(ref.name, ref.version, by, note, alias)


def _rules_for(config: Config | None, name: str, alias: str | None) -> dict[str, Approval]:
    """The rules an approval for ``alias`` (None: any alias) would count towards."""
    if config is None:
        return {}
    model = config.models.get(name)
    aliases = set(config.registry.approvals) | set(model.approvals if model else {})
    chosen = [alias] if alias is not None else sorted(aliases)
    found = {a: approval_rule(config, name, a) for a in chosen}
    return {a: r for a, r in found.items() if r is not None}


# -- aliases --------------------------------------------------------------------------


def promote(reg: Registry, config: Config | None, ref: refs.ModelRef, alias: str,
            reason: str = "") -> dict[str, Any]:
    refs.check_alias(alias)
    if ref.version is None:
        raise RegistryInputError(f"'{ref}' names no version", where=str(ref),
                                 hint=f"write {ref.name}@VERSION, e.g. {ref.name}@1.2.0")
    reg.verify(ref.name, ref.version)
    rule = approval_rule(config, ref.name, alias)
    status = approval_status(reg, rule, ref.name, ref.version, alias)
    if rule is not None and not status.satisfied:
        who = f" {rule_text(rule)}" if rule_text(rule) else ""
        got = f" (so far: {', '.join(status.approvers)})" if status.approvers else ""
        out = f"; not counted: {'; '.join(status.left_out)}" if status.left_out else ""
        raise ApprovalRequiredError(
            f"moving '{alias}' to {ref.name}@{ref.version} needs {status.required} "
            f"approval(s){who}; it has {len(status.approvers)}{got}{out}",
            where=f"{ref.name}@{ref.version}",
            hint=f"`mlops models approve {ref.name}@{ref.version} --by NAME --note TEXT`, run "
                 "by each approver under their own identity (AWS credentials; locally "
                 "MLOPS_IDENTITY)")
    expected = reg.alias(ref.name, alias)
    if expected.version == ref.version:
        return expected.doc or {}
    return reg.set_alias(expected, ref.version, action="promote", reason=reason)


def rollback_target(records: list[dict[str, Any]]) -> str | None:
    """The version before the current one, undoing earlier rollbacks (a stack of promotions)."""
    stack: list[str] = []
    for rec in sorted(records, key=lambda r: int(r["seq"])):
        if rec.get("action") == "rollback" and stack:
            stack.pop()
            if not stack or stack[-1] != rec["version"]:
                stack.append(str(rec["version"]))
        else:
            stack.append(str(rec["version"]))
    return stack[-2] if len(stack) >= 2 else None


def rollback(reg: Registry, name: str, alias: str, to: str | None = None,
             reason: str = "") -> dict[str, Any]:
    expected = reg.alias(name, alias)
    if expected.version is None:
        raise RegistryInputError(f"alias '{alias}' of '{name}' is not set; nothing to roll back",
                                 where=f"{name}@{alias}")
    target = to or rollback_target(reg.history(name, alias))
    if target is None:
        raise RegistryInputError(
            f"'{alias}' of '{name}' has pointed only at {expected.version}; there is no "
            "previous version", where=f"{name}@{alias}",
            hint="pass --to VERSION to name the version explicitly")
    refs.check_version(target)
    if target == expected.version:
        raise RegistryInputError(f"'{alias}' already points at {target}", where=f"{name}@{alias}")
    reg.verify(name, target)
    return reg.set_alias(expected, target, action="rollback", reason=reason)


def parse_time(text: str) -> datetime:
    """ISO date or date-time (``2026-03-01``, ``2026-03-01T14:00``, ``... 14:00Z``), UTC."""
    cleaned = text.strip().replace(" ", "T")
    if cleaned.endswith("Z"):
        cleaned = cleaned[:-1] + "+00:00"
    try:
        when = datetime.fromisoformat(cleaned)
    except ValueError as exc:
        raise RegistryInputError(f"'{text}' is not a time", where="--at/--since",
                                 hint="write e.g. 2026-03-01 or 2026-03-01T14:00 (UTC)") from exc
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def record_time(rec: Mapping[str, Any], key: str = "changed_at") -> datetime:
    return parse_time(str(rec[key]))


def at_time(records: list[dict[str, Any]], when: datetime) -> dict[str, str | None]:
    """What each alias pointed at, at ``when``."""
    out: dict[str, str | None] = {}
    for rec in sorted(records, key=lambda r: (record_time(r), int(r["seq"]))):
        out.setdefault(str(rec["alias"]), None)
        if record_time(rec) <= when:
            out[str(rec["alias"])] = str(rec["version"])
    return dict(sorted(out.items()))


# -- lineage and diff -----------------------------------------------------------------


def lineage(reg: Registry, name: str, version: str) -> list[dict[str, Any]]:
    """``name@version`` and its ancestors, newest first."""
    chain: list[dict[str, Any]] = []
    seen: set[str] = set()
    current: str | None = version
    while current is not None and current not in seen:
        seen.add(current)
        meta = reg.metadata(name, current)
        chain.append(meta)
        current = (meta.get("lineage") or {}).get("parent")
    return chain


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: json.dumps(value, sort_keys=True) if isinstance(value, list) else value}


DIFF_SKIP = ("signature", "features", "data.column_names", "reference.key")


def diff(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(key, a, b) for every differing leaf; metric deltas are easy to read off."""
    fa, fb = _flatten(a), _flatten(b)
    rows = []
    for key in sorted(set(fa) | set(fb)):
        if any(key == s or key.startswith(s + ".") for s in DIFF_SKIP):
            continue
        if fa.get(key) != fb.get(key):
            rows.append((key, fa.get(key), fb.get(key)))
    if a.get("signature") != b.get("signature"):
        rows.append(("signature", "…", "… (differs)"))
    if a.get("features") != b.get("features"):
        rows.append(("features", "…", "… (differs)"))
    return rows
