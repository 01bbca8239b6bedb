"""YAML text -> a tree of located nodes: every key and value knows its line and column.

Built on PyYAML's compose API (nodes with marks), so problems found later (by pydantic or the
cross-field checks) can point at the exact spot. Duplicate keys are errors, not "last one
wins". Scalars keep both their resolved value and their source text, so a field that expects
a string can take ``version: 1.10`` as ``"1.10"`` rather than the float 1.1.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import yaml
from yaml.constructor import SafeConstructor

from framework.config.checks import Loc, dotted
from framework.errors import Problem

MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(frozen=True)
class Mark:
    """A 1-based position in the file."""

    line: int
    column: int


@dataclass(frozen=True)
class YNode:
    """A value in the document, where it starts, where its key starts and its YAML path."""

    mark: Mark
    key_mark: Mark | None  # position of the key holding this value, if any
    origin: str  # dotted path where it was written, e.g. "stages.prod.overrides.models"


@dataclass(frozen=True)
class YScalar(YNode):
    value: object  # resolved by YAML's rules: str, int, float, bool, None, date...
    raw: str  # the text as written
    quoted: bool


@dataclass(frozen=True)
class YMap(YNode):
    items: dict[str, YNode] = field(default_factory=dict)


@dataclass(frozen=True)
class YSeq(YNode):
    items: tuple[YNode, ...] = ()


def _mark(m: yaml.Mark | None) -> Mark:
    if m is None:
        return Mark(1, 1)
    return Mark(m.line + 1, m.column + 1)


def _syntax_problem(err: yaml.YAMLError, where: str) -> Problem:
    if isinstance(err, yaml.MarkedYAMLError):
        problem = err.problem or "invalid YAML"
        at = _mark(err.problem_mark)
        if "\t" in problem or "'\\t'" in problem:
            return Problem(
                where=where,
                what="a tab character is used for indentation",
                hint="indent with spaces; YAML does not allow tabs",
                line=at.line,
                column=at.column,
            )
        hint = "check the indentation and quoting on this line and the one before"
        if "mapping values are not allowed" in problem:
            hint = "quote values that contain ': ', or fix the indentation"
        elif "got '?'" in problem:
            hint = "inside {...} a '?' starts a key; quote the value, e.g. \"cron(0 12 * * ? *)\""
        context = ""
        if err.context:
            context = f" ({err.context}"
            if err.context_mark is not None and err.context_mark.line != at.line - 1:
                context += f" at line {err.context_mark.line + 1}"
            context += ")"
        what = f"invalid YAML: {problem}{context}".replace("\n", " ")
        return Problem(where=where, what=what, hint=hint, line=at.line, column=at.column)
    return Problem(where=where, what=f"invalid YAML: {err}", hint="save the file as UTF-8 text")


class _Converter:
    def __init__(self, where: str) -> None:
        self.where = where
        self.problems: list[Problem] = []
        self.constructor = SafeConstructor()
        self.active: set[int] = set()

    def node(self, node: yaml.Node, loc: Loc, key_mark: Mark | None) -> YNode:
        mark = _mark(node.start_mark)
        origin = dotted(loc)
        if id(node) in self.active:
            self.problems.append(
                Problem(
                    origin or self.where, "an alias refers to itself", "", mark.line, mark.column
                )
            )
            return YScalar(mark, key_mark, origin, None, "", False)
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return YMap(mark, key_mark, origin, self.mapping(node, loc))
            if isinstance(node, yaml.SequenceNode):
                items = tuple(self.node(n, (*loc, i), None) for i, n in enumerate(node.value))
                return YSeq(mark, key_mark, origin, items)
            return self.scalar(node, mark, key_mark, origin)
        finally:
            self.active.discard(id(node))

    def scalar(self, node: yaml.Node, mark: Mark, key_mark: Mark | None, origin: str) -> YScalar:
        assert isinstance(node, yaml.ScalarNode)
        try:
            value = self.constructor.construct_object(node, deep=True)
        except yaml.YAMLError as err:
            problem = getattr(err, "problem", None) or str(err)
            self.problems.append(
                Problem(
                    origin or self.where,
                    f"cannot read this value: {problem}",
                    "",
                    mark.line,
                    mark.column,
                )
            )
            value = node.value
        return YScalar(mark, key_mark, origin, value, str(node.value), node.style in ("'", '"'))

    def mapping(self, node: yaml.MappingNode, loc: Loc) -> dict[str, YNode]:
        merged: dict[str, YNode] = {}
        explicit: dict[str, Mark] = {}
        for key_node, value_node in node.value:
            if key_node.tag == MERGE_TAG:
                for key, value in self.merge_sources(value_node, loc).items():
                    if key not in explicit:
                        merged[key] = value
                continue
            key_mark = _mark(key_node.start_mark)
            if not isinstance(key_node, yaml.ScalarNode):
                self.problems.append(
                    Problem(
                        dotted(loc) or self.where,
                        "a key must be plain text",
                        "write key: value",
                        key_mark.line,
                        key_mark.column,
                    )
                )
                continue
            key = str(key_node.value)
            if key in explicit:
                first = explicit[key]
                self.problems.append(
                    Problem(
                        where=dotted((*loc, key)),
                        what=f"duplicate key '{key}' (first at line {first.line})",
                        hint="remove one of them; each key may appear once",
                        line=key_mark.line,
                        column=key_mark.column,
                    )
                )
                continue
            explicit[key] = key_mark
            merged[key] = self.node(value_node, (*loc, key), key_mark)
        return merged

    def merge_sources(self, node: yaml.Node, loc: Loc) -> dict[str, YNode]:
        """The entries a ``<<: *anchor`` (or a list of anchors) brings in; first source wins."""
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        result: dict[str, YNode] = {}
        for source in sources:
            if not isinstance(source, yaml.MappingNode):
                at = _mark(source.start_mark)
                self.problems.append(
                    Problem(
                        dotted(loc) or self.where,
                        "'<<' must merge a mapping",
                        "write <<: *anchor where the anchor is a mapping",
                        at.line,
                        at.column,
                    )
                )
                continue
            for key, value in self.mapping(source, loc).items():
                result.setdefault(key, value)
        return result


def parse_yaml(text: str, where: str) -> tuple[YNode | None, list[Problem]]:
    """Compose ``text`` into located nodes; syntax problems come back as Problems."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as err:
        return None, [_syntax_problem(err, where)]
    if root is None:
        return None, []
    converter = _Converter(where)
    tree = converter.node(root, (), None)
    return tree, converter.problems


def merge(base: YNode | None, over: YNode) -> YNode:
    """Deep-merge ``over`` onto ``base``: mappings merge recursively, anything else replaces."""
    if isinstance(base, YMap) and isinstance(over, YMap):
        items = dict(base.items)
        for key, value in over.items.items():
            items[key] = merge(base.items.get(key), value)
        return replace(base, items=items)
    return over


def _child(node: YNode, part: str | int) -> YNode | None:
    if isinstance(node, YMap) and isinstance(part, str):
        return node.items.get(part)
    if isinstance(node, YSeq) and isinstance(part, int) and 0 <= part < len(node.items):
        return node.items[part]
    return None


def find(root: YNode, loc: Loc) -> tuple[YNode, int]:
    """The deepest node along ``loc`` and how many parts of ``loc`` it consumed."""
    node = root
    for depth, part in enumerate(loc):
        child = _child(node, part)
        if child is None:
            return node, depth
        node = child
    return node, len(loc)


def to_data(node: YNode, wants_text: Callable[[Loc], bool], loc: Loc = ()) -> object:
    """Plain Python data for validation. Where the schema expects text (``wants_text``), an
    unquoted scalar YAML would read as a number, boolean or date keeps its source text."""
    if isinstance(node, YMap):
        return {k: to_data(v, wants_text, (*loc, k)) for k, v in node.items.items()}
    if isinstance(node, YSeq):
        return [to_data(v, wants_text, (*loc, i)) for i, v in enumerate(node.items)]
    assert isinstance(node, YScalar)
    if node.value is not None and not isinstance(node.value, str) and wants_text(loc):
        return node.raw
    return node.value
