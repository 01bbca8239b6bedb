"""Gate thresholds, parsed once into typed values (stdlib only: the Lambda zip may import it).

A threshold compares a measured figure with a bound. The bound is a number, or the
*champion*'s figure — the version that serves the model's endpoints now — moved by an
offset or scaled by a factor::

    threshold := OP SP* ( NUMBER | "champion" [ SP* ("+" | "-" | "*") SP* UNSIGNED ] )
    OP        := ">=" | "<=" | ">" | "<" | "=="
    NUMBER    := ["-"] UNSIGNED
    UNSIGNED  := DIGITS ["." DIGITS] [("e" | "E") ["+" | "-"] DIGITS]

``>=0.95``: at least 0.95. ``>= champion - 0.01``: at most 0.01 below the champion.
``<= champion * 1.2``: at most 20% above the champion. ``>= champion``: no worse.

A :class:`Threshold` is the text as written (a ``str``, so configuration stays plain JSON
wherever it is copied) with its parsed parts as attributes. A malformed expression raises
:class:`ThresholdError` (a ``ValueError`` whose message is ``"what; hint"``) carrying the
offset of the offending character, so the loader can point at it.
"""

from __future__ import annotations

import difflib
import operator
import re
from collections.abc import Callable
from typing import Any

CHAMPION = "champion"
# Longest first, so ">=" is not read as ">" followed by "=".
OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, "<=": operator.le, "==": operator.eq, ">": operator.gt, "<": operator.lt,
}
RELATIONS = ("+", "-", "*")

_UNSIGNED = r"[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?"
_UNSIGNED_RE = re.compile(_UNSIGNED)
_NUMBER_RE = re.compile(rf"-?{_UNSIGNED}")
_SPACE_RE = re.compile(r"\s*")
_WORD_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# The same language as a JSON Schema (ECMA-262) pattern: editors flag what the loader refuses.
PATTERN = (r"^\s*(>=|<=|==|>|<)\s*(-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?"
           r"|champion(\s*[-+*]\s*[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?)?)\s*$")
EXAMPLES = "e.g. '>=0.95', '<=50', '>= champion - 0.01' or '<= champion * 1.2'"


class ThresholdError(ValueError):
    """A malformed threshold; ``offset`` is the 0-based index of the offending character."""

    def __init__(self, what: str, hint: str, offset: int) -> None:
        super().__init__(f"{what}; {hint}")
        self.what, self.hint, self.offset = what, hint, offset


def _g(value: float) -> str:
    return f"{value:g}"


class Threshold(str):
    """A parsed threshold that is also its text.

    ``relative`` thresholds bound the measured figure by ``champion * factor + offset``;
    absolute ones by ``value``.
    """

    op: str
    relative: bool
    value: float  # the bound of an absolute threshold (0 for a relative one)
    offset: float  # champion + offset (negative for "champion - x")
    factor: float  # champion * factor

    def __new__(cls, expression: Any) -> Threshold:
        text = expression if isinstance(expression, str) else _g(expression) \
            if isinstance(expression, float) else str(expression)
        parts = _parse(text, quoted=isinstance(expression, str))
        self = super().__new__(cls, text)
        self.op, self.relative, self.value, self.offset, self.factor = parts
        return self

    def bound(self, champion: float | None = None) -> float | None:
        """The bound the measured figure is compared with: the number, or the champion's
        figure moved by the offset or factor (None for a relative threshold without one)."""
        if not self.relative:
            return self.value
        if champion is None:
            return None
        return champion * self.factor + self.offset

    def holds(self, measured: float, bound: float) -> bool:
        return OPERATORS[self.op](measured, bound)

    @property
    def canonical(self) -> str:
        """The threshold in one spelling: '>= 0.95', '>= champion - 0.01'."""
        if not self.relative:
            return f"{self.op} {_g(self.value)}"
        if self.factor != 1.0:
            return f"{self.op} champion * {_g(self.factor)}"
        if self.offset:
            sign = "-" if self.offset < 0 else "+"
            return f"{self.op} champion {sign} {_g(abs(self.offset))}"
        return f"{self.op} champion"

    def __repr__(self) -> str:
        return f"Threshold({str(self)!r})"


def parse_threshold(expression: Any) -> Threshold:
    """``'>=0.95'`` or ``'>= champion - 0.01'`` → a :class:`Threshold`; ThresholdError (a
    ValueError with ``"what; hint"``) for anything else."""
    return expression if isinstance(expression, Threshold) else Threshold(expression)


def _skip(text: str, at: int) -> int:
    match = _SPACE_RE.match(text, at)
    return match.end() if match else at


def _token(text: str, at: int) -> str:
    """The word, number or character at ``at``, to quote in a message."""
    for pattern in (_WORD_RE, _NUMBER_RE):
        match = pattern.match(text, at)
        if match:
            return match.group()
    return text[at:at + 1]


def _parse(text: str, *, quoted: bool) -> tuple[str, bool, float, float, float]:
    """(op, relative, value, offset, factor) of ``text``."""
    shown = f"'{text}'" if quoted else text

    def fail(what: str, hint: str, at: int) -> ThresholdError:
        return ThresholdError(f"{shown} is not a threshold: {what}", hint, at)

    at = _skip(text, 0)
    if at == len(text):
        raise fail("it is empty", f"write a comparison, {EXAMPLES}", at)
    op = next((o for o in OPERATORS if text.startswith(o, at)), None)
    if op is None:
        rest = text[at:].strip()
        if _NUMBER_RE.fullmatch(rest):
            hint = f"write '>={rest}' for at least {rest}, or '<={rest}' for at most {rest}"
        elif text.startswith(("=>", "=<"), at):
            hint = f"did you mean '{text[at + 1]}='?"
        elif text.startswith("=", at) or text.startswith("!=", at):
            hint = f"the comparisons are >=, <=, >, < and ==; {EXAMPLES}"
        else:
            hint = f"start with >=, <=, >, < or ==, {EXAMPLES}"
        raise fail(f"it does not start with a comparison ('{_token(text, at)}')", hint, at)
    at = _skip(text, at + len(op))
    if at == len(text):
        raise fail(f"nothing after '{op}'", f"write a number or champion after it, {EXAMPLES}",
                   at)
    number = _NUMBER_RE.match(text, at)
    if number is not None:
        end = _skip(text, number.end())
        if end != len(text):
            raise fail(f"unexpected '{_token(text, end)}' after {number.group()}",
                       "a number bound is one number; to compare with the serving version "
                       f"write e.g. '{op} champion - 0.01'", end)
        return op, False, float(number.group()), 0.0, 1.0
    if not text.startswith(CHAMPION, at) or _WORD_RE.match(text, at + len(CHAMPION)) \
            or text[at + len(CHAMPION):at + len(CHAMPION) + 1].isdigit():
        word = _token(text, at)
        close = difflib.get_close_matches(word.lower(), [CHAMPION], n=1, cutoff=0.6)
        hint = (f"did you mean '{CHAMPION}'?" if close else
                f"compare with a number or with champion (the serving version), {EXAMPLES}")
        raise fail(f"'{word}' is not a number or '{CHAMPION}'", hint, at)
    at = _skip(text, at + len(CHAMPION))
    if at == len(text):
        return op, True, 0.0, 0.0, 1.0
    relation = text[at]
    if relation not in RELATIONS:
        raise fail(f"'{_token(text, at)}' cannot follow champion",
                   f"move it by + or - a number, or scale it by * a number, {EXAMPLES}", at)
    at = _skip(text, at + 1)
    amount = _UNSIGNED_RE.match(text, at)
    if amount is None:
        what = (f"nothing after 'champion {relation}'" if at == len(text) else
                f"'{_token(text, at)}' after 'champion {relation}' is not a number")
        example = "champion * 1.2" if relation == "*" else f"champion {relation} 0.01"
        hint = f"write a number without a sign, e.g. '{op} {example}'"
        if text.startswith("-", at) or text.startswith("+", at):
            hint = f"write one sign, e.g. '{op} champion - 0.01'"
        raise fail(what, hint, at)
    end = _skip(text, amount.end())
    if end != len(text):
        raise fail(f"unexpected '{_token(text, end)}' after {amount.group()}",
                   f"one + - or * per threshold, {EXAMPLES}", end)
    x = float(amount.group())
    if relation == "*":
        return op, True, 0.0, 0.0, x
    return op, True, 0.0, -x if relation == "-" else x, 1.0
