"""Semantic versions (semver 2.0.0): parsing, printing and precedence.

Build metadata is kept for printing but ignored for ordering and equality, as the
specification says: ``1.0.0+a == 1.0.0+b``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# The regular expression recommended by semver.org, with named groups.
_SEMVER_RE = re.compile(
    r"^(?P<major>0|[1-9]\d*)\.(?P<minor>0|[1-9]\d*)\.(?P<patch>0|[1-9]\d*)"
    r"(?:-(?P<pre>(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)"
    r"(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+(?P<build>[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)

# A pre-release identifier, as a sort key: numeric ones sort before alphanumeric ones.
_IdentKey = tuple[int, int, str]


def _example_for(text: str) -> str:
    """A valid version close to what the user wrote, for the hint."""
    candidate = text.strip().lstrip("vV")
    parts = candidate.split(".")
    if 1 <= len(parts) <= 3 and all(p.isdigit() for p in parts):
        parts = [str(int(p)) for p in parts] + ["0"] * (3 - len(parts))
        return ".".join(parts)
    return "1.2.0"


@dataclass(frozen=True, eq=False)
class SemVer:
    """A semantic version ``MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD]``."""

    major: int
    minor: int
    patch: int
    prerelease: tuple[str, ...] = ()
    build: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> SemVer:
        """Parse ``text``; raise ``ValueError("<what>; <hint>")`` when it is not semver."""
        m = _SEMVER_RE.match(text) if isinstance(text, str) else None
        if m is None:
            raise ValueError(
                f"'{text}' is not a semantic version; use MAJOR.MINOR.PATCH, "
                f"e.g. {_example_for(str(text))}"
            )
        pre = m.group("pre")
        build = m.group("build")
        return cls(
            major=int(m.group("major")),
            minor=int(m.group("minor")),
            patch=int(m.group("patch")),
            prerelease=tuple(pre.split(".")) if pre else (),
            build=tuple(build.split(".")) if build else (),
        )

    @property
    def is_prerelease(self) -> bool:
        return bool(self.prerelease)

    def precedence_key(self) -> tuple[int, int, int, int, tuple[_IdentKey, ...]]:
        """Sort key implementing semver 2.0.0 precedence (build metadata ignored)."""
        idents: tuple[_IdentKey, ...] = tuple(
            (0, int(p), "") if p.isdigit() else (1, 0, p) for p in self.prerelease
        )
        # A release sorts after all of its pre-releases.
        return (self.major, self.minor, self.patch, 0 if self.prerelease else 1, idents)

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += "-" + ".".join(self.prerelease)
        if self.build:
            text += "+" + ".".join(self.build)
        return text

    def __repr__(self) -> str:
        return f"SemVer('{self}')"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SemVer):
            return NotImplemented
        return self.precedence_key() == other.precedence_key()

    def __hash__(self) -> int:
        return hash(self.precedence_key())

    def __lt__(self, other: SemVer) -> bool:
        if not isinstance(other, SemVer):
            return NotImplemented
        return self.precedence_key() < other.precedence_key()

    def __le__(self, other: SemVer) -> bool:
        if not isinstance(other, SemVer):
            return NotImplemented
        return self.precedence_key() <= other.precedence_key()

    def __gt__(self, other: SemVer) -> bool:
        if not isinstance(other, SemVer):
            return NotImplemented
        return self.precedence_key() > other.precedence_key()

    def __ge__(self, other: SemVer) -> bool:
        if not isinstance(other, SemVer):
            return NotImplemented
        return self.precedence_key() >= other.precedence_key()
