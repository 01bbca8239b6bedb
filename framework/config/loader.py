"""Load ``mlops.yaml``: parse with positions, merge the stage's overrides, validate, and
report every problem at once as a ``ConfigError`` (exit code 2).

The only file this module reads is the YAML itself; environment variables are not
interpolated into the config (``AWS_ENDPOINT_URL`` is read for the LocalStack target only).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from framework.config.checks import cross_issues, target_issues
from framework.config.models import DEFER_CROSS_CHECKS, OVERRIDABLE, Config, TargetKind
from framework.config.problems import from_issue, from_pydantic, is_noise, wants_text
from framework.config.yamlsource import YMap, merge, parse_yaml, to_data
from framework.errors import ConfigError, Problem

DEFAULT_STAGE = "dev"
EXTENSION_PREFIX = "x-"


@dataclass(frozen=True)
class LoadedConfig:
    """A validated config and where, for which stage, it deploys."""

    config: Config  # validated, with the stage's overrides merged in
    path: Path  # absolute path of mlops.yaml
    root: Path  # its directory (artifact paths are relative to it)
    stage: str  # the stage name; "dev" when none given
    target: TargetKind  # stage.target or config.target
    region: str  # stage.region or config.region
    endpoint_url: str | None  # stage.endpoint_url, else AWS_ENDPOINT_URL for localstack
    profile: str | None
    warnings: tuple[str, ...] = ()  # not errors: e.g. a runtime nearing its deprecation


def _read(path: Path) -> str:
    hint = "run mlops in the project directory, or pass -f PATH/TO/mlops.yaml"
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        problem = Problem(str(path), "file not found", hint)
    except IsADirectoryError:
        problem = Problem(str(path), "is a directory, not a file", hint)
    except UnicodeDecodeError as err:
        problem = Problem(str(path), f"is not UTF-8 text ({err.reason})", "save it as UTF-8")
    except OSError as err:
        problem = Problem(str(path), f"cannot be read: {err.strerror}", hint)
    raise ConfigError([problem], source=str(path))


def _sort_key(p: Problem) -> tuple[int, int, str, str]:
    return (p.line if p.line is not None else 1 << 30, p.column or 0, p.where, p.what)


def _stage_overrides(root: YMap, stage: str) -> YMap | None:
    stages = root.items.get("stages")
    node = stages.items.get(stage) if isinstance(stages, YMap) else None
    overrides = node.items.get("overrides") if isinstance(node, YMap) else None
    return overrides if isinstance(overrides, YMap) else None


def _without_extensions(root: YMap) -> YMap:
    """Drop top-level ``x-...`` keys: they only hold YAML anchors for reuse."""
    items = {k: v for k, v in root.items.items() if not k.startswith(EXTENSION_PREFIX)}
    return YMap(root.mark, root.key_mark, root.origin, items)


def _overlay(root: YMap, stage: str) -> YMap:
    """``root`` with ``stages.<stage>.overrides`` deep-merged over it."""
    overrides = _stage_overrides(root, stage)
    if overrides is None:
        return _without_extensions(root)
    merged = _without_extensions(root).items
    for key, value in overrides.items.items():
        if key in OVERRIDABLE:  # other keys are reported by the Stage model
            merged[key] = merge(root.items.get(key), value)
    return YMap(root.mark, root.key_mark, root.origin, merged)


def _validate(tree: YMap, fallback: str) -> tuple[Config | None, list[Problem]]:
    data = to_data(tree, wants_text)
    assert isinstance(data, Mapping)
    problems = [from_issue(i, tree, fallback) for i in cross_issues(data)]
    try:
        config = Config.model_validate(data, context={DEFER_CROSS_CHECKS: True})
    except ValidationError as err:
        problems += [from_pydantic(e, tree, fallback) for e in err.errors() if not is_noise(e)]
        return None, problems
    return (config if not problems else None), problems


def runtime_warnings(config: Config) -> tuple[str, ...]:
    """Each runtime in use that is deprecated or will be within six months, with where."""
    from framework.config.runtimes import runtime_warning

    found = [("runtime", config.runtime)] + [
        (f"endpoints.{name}.runtime", ep.runtime)
        for name, ep in config.endpoints.items() if ep.runtime]
    out = []
    for where, runtime in found:
        note = runtime_warning(runtime)
        if note:
            out.append(f"{where}: {note}")
    return tuple(out)


def _check_stage(root: YMap, stage: str, source: str) -> None:
    stages = root.items.get("stages")
    declared = list(stages.items) if isinstance(stages, YMap) else []
    if stage == DEFAULT_STAGE or stage in declared:
        return
    known = sorted({DEFAULT_STAGE, *declared})
    close = difflib.get_close_matches(stage, known, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    hint += f"known stages: {', '.join(known)}; declare others under stages:"
    raise ConfigError([Problem("stages", f"unknown stage '{stage}'", hint)], source=source)


def load_config(
    path: Path | str,
    stage: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> LoadedConfig:
    """Load, merge and validate ``path`` for ``stage``; raise ConfigError listing every problem.

    Problems in other stages' overrides are reported too, so a file that loads for one stage
    does not fail later for another.
    """
    path = Path(path).resolve()
    source = str(path)
    fallback = path.name
    text = _read(path)
    tree, problems = parse_yaml(text, fallback)
    if tree is None and not problems:
        problems = [Problem(fallback, "the file is empty", "start with project: NAME", 1, 1)]
    if tree is not None and not isinstance(tree, YMap):
        mark = tree.mark
        problems.append(
            Problem(
                fallback,
                "the top level must be a mapping of keys (project:, models:, ...)",
                "start with project: NAME",
                mark.line,
                mark.column,
            )
        )
    if not isinstance(tree, YMap):
        raise ConfigError(sorted(problems, key=_sort_key), source=source)

    stage_name = stage or DEFAULT_STAGE
    _check_stage(tree, stage_name, source)
    merged = _overlay(tree, stage_name)
    config, found = _validate(merged, fallback)
    problems += found
    stages = tree.items.get("stages")
    for other in list(stages.items) if isinstance(stages, YMap) else []:
        overrides = _stage_overrides(tree, other)
        if other == stage_name or overrides is None:
            continue
        prefix = overrides.origin
        _, extra = _validate(_overlay(tree, other), fallback)
        problems += [p for p in extra if p.where.startswith(prefix)]
    unique = sorted(set(problems), key=_sort_key)
    if unique or config is None:
        raise ConfigError(unique, source=source)

    chosen = config.stages.get(stage_name)
    target = (chosen.target if chosen else None) or config.target
    needs = target_issues(config.model_dump(mode="json"), target.value)
    if needs:
        raise ConfigError([from_issue(i, merged, fallback) for i in needs], source=source)
    env = os.environ if environ is None else environ
    endpoint_url = chosen.endpoint_url if chosen else None
    if endpoint_url is None and target is TargetKind.localstack:
        endpoint_url = env.get("AWS_ENDPOINT_URL") or None
    return LoadedConfig(
        config=config,
        path=path,
        root=path.parent,
        stage=stage_name,
        target=target,
        region=(chosen.region if chosen else None) or config.region,
        endpoint_url=endpoint_url,
        profile=chosen.profile if chosen else None,
        warnings=runtime_warnings(config),
    )
