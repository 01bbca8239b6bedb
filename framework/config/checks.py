"""Checks across fields of ``mlops.yaml``, and the route rules they rely on.

``cross_issues`` works on validated data and on raw YAML data alike (malformed parts are
skipped: their own validators report them), and returns every issue it finds, each with the
path it belongs to, so the loader can report them all at once with line and column.
Messages have the form ``"<what>; <hint>"``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
SEGMENT_RE = re.compile(r"^(?:[A-Za-z0-9._~\-]+|\{[A-Za-z_][A-Za-z0-9_]*\+?\})$")
RESERVED_PATHS = ("/_mlops", "/metrics")  # served by the gateway itself


def parse_route(route: str) -> tuple[str, tuple[str, ...]]:
    """Split ``"METHOD /a/{id}"`` into the method and path segments, or raise ValueError."""
    method, _, path = route.partition(" ")
    if method.upper() in METHODS and method != method.upper():
        raise ValueError(
            f"'{route}' is not a route; write the method in capitals: {', '.join(METHODS)}"
        )
    if method not in METHODS or not path.startswith("/") or " " in path:
        raise ValueError(
            f"'{route}' is not a route; write METHOD /path with METHOD one of "
            f"{', '.join(METHODS)}, e.g. 'POST /fraud/score'"
        )
    segments = tuple(path[1:].split("/")) if path != "/" else ()
    params: set[str] = set()
    for i, seg in enumerate(segments):
        if not seg:
            raise ValueError(
                f"'{route}' has an empty path segment; remove the doubled or trailing '/'"
            )
        if seg in (".", ".."):
            raise ValueError(
                f"'{route}' has a dot segment '{seg}', which clients and proxies resolve away; "
                "name the path without '.' or '..' segments"
            )
        if not SEGMENT_RE.match(seg):
            raise ValueError(
                f"'{route}' has an invalid path segment '{seg}'; use letters, digits, '-', '_', "
                "'.', '~', or a whole-segment parameter such as {id}"
            )
        if seg.startswith("{"):
            name = seg.strip("{}+")
            if name in params:
                raise ValueError(f"'{route}' uses the parameter {{{name}}} twice; rename one")
            params.add(name)
            if seg.endswith("+}") and i != len(segments) - 1:
                raise ValueError(f"'{route}' has the greedy {seg} before the end; move it last")
    for reserved in RESERVED_PATHS:
        if path == reserved or path.startswith(reserved + "/"):
            raise ValueError(
                f"'{route}' is reserved for the gateway; paths under "
                f"{' and '.join(RESERVED_PATHS)} are the framework's own, choose another path"
            )
    return method, segments


Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Issue:
    """A problem found by a cross-field check: where (a path in the config) and what."""

    loc: Loc
    message: str  # "<what>; <hint>"


def dotted(loc: Loc) -> str:
    """``("models", "a", "features", 2)`` -> ``"models.a.features[2]"``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


def _mapping(value: object) -> Mapping[str, object]:
    return value if isinstance(value, Mapping) else {}


def _sequence(value: object) -> Sequence[object]:
    return value if isinstance(value, list | tuple) else ()


def _unknown(kind: str, name: str, declared: Mapping[str, object]) -> str:
    close = difflib.get_close_matches(name, [str(k) for k in declared], n=1)
    if close:
        return f"{kind} '{name}' is not declared; did you mean '{close[0]}'?"
    known = ", ".join(sorted(str(k) for k in declared)) or "none"
    return f"{kind} '{name}' is not declared; declared {kind}s: {known}"


def feature_issues(base: Loc, features: Sequence[object]) -> list[Issue]:
    issues: list[Issue] = []
    first: dict[str, int] = {}
    for i, feature in enumerate(features):
        name = _mapping(feature).get("name")
        if not isinstance(name, str):
            continue
        if name in first:
            issues.append(
                Issue(
                    (*base, i, "name"),
                    f"feature '{name}' is declared twice (also features[{first[name]}]); "
                    "names must be unique",
                )
            )
        else:
            first[name] = i
    return issues


def _route_key(route: str) -> tuple[str, tuple[str, ...]] | None:
    """Method and path with parameters blanked: equal keys match the same requests."""
    try:
        method, segments = parse_route(route)
    except ValueError:
        return None  # reported by the field validator
    shape = tuple(
        ("{+}" if s.endswith("+}") else "{}") if s.startswith("{") else s for s in segments
    )
    return method, shape


def _redact_issues(name: str, endpoint: Mapping[str, object],
                   models: Mapping[str, object]) -> list[Issue]:
    """Each ``capture.redact`` name must be an input of the endpoint's model: a misspelt one
    would record what was meant to be left out."""
    ref = endpoint.get("model")
    redact = _sequence(_mapping(endpoint.get("capture")).get("redact"))
    model = _mapping(models.get(ref.split("@", 1)[0])) if isinstance(ref, str) else {}
    features = {str(_mapping(f).get("name")) for f in _sequence(model.get("features"))}
    if not redact or not features:
        return []
    issues = []
    for i, field in enumerate(redact):
        if isinstance(field, str) and field not in features:
            close = difflib.get_close_matches(field, sorted(features), n=1)
            hint = f"did you mean '{close[0]}'?" if close else (
                f"the model's features: {', '.join(sorted(features))}")
            issues.append(Issue(("endpoints", name, "capture", "redact", i),
                                f"'{field}' is not a feature of the endpoint's model, so nothing "
                                f"would be redacted; {hint}"))
    return issues


def cross_issues(data: Mapping[str, object]) -> list[Issue]:
    """Every cross-field problem in ``data`` (validated or raw: malformed parts are skipped,
    their own validators report them)."""
    issues: list[Issue] = []
    models = _mapping(data.get("models"))
    endpoints = _mapping(data.get("endpoints"))
    monitors = _mapping(data.get("monitors"))
    for name, model in models.items():
        features = _sequence(_mapping(model).get("features"))
        issues += feature_issues(("models", name, "features"), features)
    routes: dict[tuple[str, tuple[str, ...]], tuple[str, str]] = {}
    for name, raw in endpoints.items():
        endpoint = _mapping(raw)
        ref = endpoint.get("model")
        if isinstance(ref, str) and ref:
            model_name = ref.split("@", 1)[0]
            if model_name not in models:
                issues.append(
                    Issue(("endpoints", name, "model"), _unknown("model", model_name, models))
                )
        issues += _redact_issues(name, endpoint, models)
        route = endpoint.get("route")
        key = _route_key(route) if isinstance(route, str) else None
        if key is None or not isinstance(route, str):
            continue
        if key in routes:
            other, other_route = routes[key]
            if other_route == route:
                what = f"'{route}' is also the route of endpoint '{other}'"
            else:
                what = (
                    f"'{route}' matches the same requests as '{other_route}' of endpoint '{other}'"
                )
            issues.append(
                Issue(("endpoints", name, "route"), f"{what}; give each endpoint its own route")
            )
        else:
            routes[key] = (name, route)
    for name, raw in monitors.items():
        target = _mapping(raw).get("endpoint")
        if isinstance(target, str) and target not in endpoints:
            issues.append(
                Issue(("monitors", name, "endpoint"), _unknown("endpoint", target, endpoints))
            )
    return issues


def target_issues(data: Mapping[str, object], target: str) -> list[Issue]:
    """What a stage's target needs beyond the rest: on AWS (and LocalStack) the From address of
    a report must be an SES identity that a person verified by clicking the link SES mails to
    it, so it is never guessed from the recipients; only the local target, which keeps every
    message in its outbox, defaults it to the first recipient."""
    if target == "local":
        return []
    issues = []
    for name, monitor in _mapping(data.get("monitors")).items():
        notify = _mapping(_mapping(monitor).get("notify"))
        if _sequence(notify.get("email")) and not notify.get("sender"):
            issues.append(Issue(("monitors", name, "notify"), (
                f"monitor '{name}' e-mails its report but names no sender, which the {target} "
                "target needs: reports are sent from a verified SES identity; add "
                "sender: ADDRESS (an address whose verification link someone will click, "
                "e.g. in this stage's overrides)")))
    return issues
