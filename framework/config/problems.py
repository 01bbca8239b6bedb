"""Pydantic errors and cross-field issues -> Problems written for people, with line:column.

Pydantic's default messages ("Input should be a valid integer, unable to parse string as an
integer") are replaced by short sentences (``expected an integer, got 'abc'``) and a hint
taken from the field's description, a close match, or the validator's own ``"what; hint"``.
"""

from __future__ import annotations

import difflib
import re
import types
from collections.abc import Mapping
from enum import Enum
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import ErrorDetails

from framework.config.checks import Issue, Loc, dotted
from framework.config.models import Config
from framework.config.yamlsource import YNode, YScalar, find
from framework.errors import Problem

# ------------------------------------------------------------------ walking the schema


def _unwrap(tp: object) -> object:
    """Strip ``Annotated[...]`` and ``X | None``."""
    origin = get_origin(tp)
    if origin is Annotated:
        return _unwrap(get_args(tp)[0])
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        return _unwrap(args[0]) if len(args) == 1 else tp
    return tp


def _model(tp: object) -> type[BaseModel] | None:
    tp = _unwrap(tp)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _child(tp: object, part: str | int) -> object | None:
    tp = _unwrap(tp)
    model = _model(tp)
    if model is not None:
        info = model.model_fields.get(part) if isinstance(part, str) else None
        return info.annotation if info is not None else None
    origin = get_origin(tp)
    if origin is dict:
        value_type: object = get_args(tp)[1]
        return value_type
    if origin in (tuple, list):
        item_type: object = get_args(tp)[0]
        return item_type
    return None


def annotation_at(loc: Loc) -> object | None:
    """The type the schema expects at ``loc`` (None when unknown)."""
    tp: object | None = Config
    for part in loc:
        if tp is None:
            return None
        tp = _child(tp, part)
    return tp


def wants_text(loc: Loc) -> bool:
    """Whether the schema expects a string (or a string enum) at ``loc``."""
    tp = _unwrap(annotation_at(loc))
    return tp is str or (isinstance(tp, type) and issubclass(tp, Enum))


def _field_description(parent: Loc, key: str) -> str:
    model = _model(annotation_at(parent))
    if model is None or key not in model.model_fields:
        return ""
    return model.model_fields[key].description or ""


def _allowed_keys(parent: Loc) -> list[str]:
    model = _model(annotation_at(parent))
    return list(model.model_fields) if model is not None else []


# ------------------------------------------------------------------ wording


def _got(value: object) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"'{value}'"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return str(value)


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if close:
        return f"did you mean '{close[0]}'?"
    return ""


def _choices(expected: str) -> list[str]:
    """``"'none', 'api_key' or 'iam'"`` -> ``['none', 'api_key', 'iam']``."""
    return re.findall(r"'([^']*)'", expected)


def split_message(message: str) -> tuple[str, str]:
    """``"what; hint"`` -> ``("what", "hint")``."""
    what, _, hint = message.partition("; ")
    return what, hint


def _number(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _words(err: ErrorDetails, loc: Loc, key: str) -> tuple[str, str]:
    """What went wrong and a hint, for one pydantic error at ``loc`` (key = its last part)."""
    kind = err["type"]
    ctx: dict[str, Any] = dict(err.get("ctx") or {})
    value = err.get("input")
    got = _got(value)
    description = _field_description(loc[:-1], key) if key else ""
    if kind == "missing":
        hint = f"add '{key}'" + (f" ({description.rstrip('.')})" if description else "")
        return f"missing required key '{key}'", hint
    if kind == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1])
        hint = _suggest(key, allowed) or f"allowed keys: {', '.join(allowed)}"
        return f"unknown key '{key}'", hint
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"expected an integer, got {got}", description
    if kind in ("float_type", "float_parsing", "finite_number"):
        return f"expected a number, got {got}", description
    if kind in ("bool_type", "bool_parsing"):
        return f"expected true or false, got {got}", description
    if kind == "string_type":
        return f"expected a string, got {got}", description or "give a value or remove the key"
    if kind in ("dict_type", "model_type", "model_attributes_type", "mapping_type"):
        return f"expected a mapping (key: value), got {got}", description
    if kind in ("tuple_type", "list_type", "iterable_type"):
        return f"expected a list, got {got}", "write [a, b] or one '- item' per line"
    if kind in ("enum", "literal_error"):
        choices = _choices(str(ctx.get("expected", "")))
        hint = _suggest(str(value), choices) if isinstance(value, str) else ""
        return f"{got} is not one of: {', '.join(choices)}", hint
    if kind == "greater_than_equal":
        return f"{_number(value)} is below the minimum {_number(ctx['ge'])}", description
    if kind == "less_than_equal":
        return f"{_number(value)} is above the maximum {_number(ctx['le'])}", description
    if kind == "greater_than":
        return f"{_number(value)} must be greater than {_number(ctx['gt'])}", description
    if kind == "less_than":
        return f"{_number(value)} must be less than {_number(ctx['lt'])}", description
    if kind == "too_short":
        n = int(ctx.get("min_length", 1))
        count = len(value) if isinstance(value, list | tuple) else 0
        return f"needs at least {n} item{'s' if n != 1 else ''}, got {count or 'none'}", description
    if kind == "too_long":
        return f"has more than {ctx.get('max_length')} items", description
    if kind in ("value_error", "assertion_error"):
        return split_message(str(ctx.get("error", err["msg"])))
    return err["msg"], description


# ------------------------------------------------------------------ locating


def _where(node: YNode, rest: Loc, fallback: str) -> str:
    path = node.origin
    tail = dotted(rest)
    if tail:
        if path:
            path += tail if tail.startswith("[") else "." + tail
        else:
            path = tail
    return path or fallback


def is_noise(err: ErrorDetails) -> bool:
    """Errors that only echo others: a list whose items all failed is also "too short"."""
    value = err.get("input")
    if err["type"] == "too_short" and isinstance(value, list | tuple):
        return len(value) >= int((err.get("ctx") or {}).get("min_length", 0))
    return False


def from_pydantic(err: ErrorDetails, root: YNode, fallback: str) -> Problem:
    """One pydantic error -> a Problem located in the YAML tree ``root``."""
    loc: Loc = tuple(err["loc"])
    on_key = bool(loc) and loc[-1] == "[key]"
    if on_key:
        loc = loc[:-1]
    key = loc[-1] if loc and isinstance(loc[-1], str) else ""
    node, depth = find(root, loc)
    if on_key and err["type"] == "literal_error":  # a dict whose keys are a fixed set
        choices = _choices(str((err.get("ctx") or {}).get("expected", "")))
        what, hint = f"unknown key '{key}'", _suggest(key, choices)
        hint = hint or f"allowed keys: {', '.join(choices)}"
    else:
        what, hint = _words(err, loc, str(key))
    if err["type"] == "missing":
        mark = node.key_mark or node.mark
        return Problem(_where(node, loc[depth:-1], fallback), what, hint, mark.line, mark.column)
    mark = node.mark
    if (on_key or err["type"] == "extra_forbidden") and node.key_mark is not None:
        mark = node.key_mark
    column = mark.column + (_offset(err, node) if mark is node.mark and depth == len(loc) else 0)
    return Problem(_where(node, loc[depth:], fallback), what, hint, mark.line, column)


def _offset(err: ErrorDetails, node: YNode) -> int:
    """Columns from a one-line scalar's start to the character its validator found at fault
    (a grammar's error carries ``offset`` into the value: thresholds do)."""
    offset = getattr((err.get("ctx") or {}).get("error"), "offset", None)
    if not isinstance(offset, int) or not isinstance(node, YScalar) or "\n" in node.raw \
            or "\\" in node.raw or "'" in node.raw:  # escapes: the text is not what is shown
        return 0
    return offset + (1 if node.quoted else 0)


def from_issue(issue: Issue, root: YNode, fallback: str) -> Problem:
    """One cross-field issue -> a Problem located in the YAML tree ``root``."""
    node, depth = find(root, issue.loc)
    what, hint = split_message(issue.message)
    return Problem(
        _where(node, issue.loc[depth:], fallback), what, hint, node.mark.line, node.mark.column
    )
