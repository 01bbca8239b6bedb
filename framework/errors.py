"""One family of user-facing errors: each carries where, what and a hint.

The CLI prints these without a traceback (``--debug`` shows it); anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One problem found in user input."""

    where: str  # e.g. "models.fraud-clf.version" or a file path
    what: str  # what is wrong, in one sentence
    hint: str = ""  # how to fix it
    line: int | None = None  # 1-based
    column: int | None = None  # 1-based

    def render(self) -> str:
        loc = ""
        if self.line is not None:
            loc = f" (line {self.line}, col {self.column or 1})"
        text = f"{self.where}: {self.what}{loc}"
        if self.hint:
            text += f"; {self.hint}"
        return text


class MlopsError(Exception):
    """A user-facing error: the CLI prints it and exits with ``exit_code``."""

    exit_code = 1

    def __init__(self, what: str, *, where: str = "", hint: str = "") -> None:
        self.what = what
        self.where = where
        self.hint = hint
        super().__init__(self.render())

    def render(self) -> str:
        text = f"{self.where}: {self.what}" if self.where else self.what
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class ConfigError(MlopsError):
    """Invalid user input (mlops.yaml, artifacts, saved plans): exit code 2."""

    exit_code = 2

    def __init__(self, problems: list[Problem], *, source: str = "mlops.yaml") -> None:
        self.problems = problems
        self.source = source
        count = len(problems)
        head = f"{source}: {count} problem{'s' if count != 1 else ''}"
        super().__init__(head, hint="")

    def render(self) -> str:
        lines = [f"{self.source}: {len(self.problems)} problem(s)"]
        lines += [f"  - {p.render()}" for p in self.problems]
        return "\n".join(lines)


class StateLockedError(MlopsError):
    """Another deploy holds the state lock."""

    exit_code = 3


class StalePlanError(MlopsError):
    """A saved plan no longer matches the deployed state."""

    exit_code = 4


class DeployError(MlopsError):
    """An apply failed part-way; state records what was done."""

    exit_code = 1


class TargetUnavailableError(MlopsError):
    """The control plane (local AWS, LocalStack, AWS) does not answer."""

    exit_code = 1
