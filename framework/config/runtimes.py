"""Lambda's Python runtimes and architectures: the table, parsed once at load. Stdlib only.

The dates are AWS's ("Supported runtimes" in the Lambda developer guide): on the
deprecation date a runtime stops receiving security patches; from ``block_create`` Lambda
refuses to create functions on it, from ``block_update`` to update them. ``mlops`` refuses a
runtime from its ``block_create`` date on (a deploy creates functions), and warns from six
months before its deprecation date.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum

DEFAULT_RUNTIME = "python3.13"
WARN_BEFORE = timedelta(days=183)  # six months before deprecation


class Architecture(StrEnum):
    """The instruction set a function runs on."""

    x86_64 = "x86_64"
    arm64 = "arm64"


@dataclass(frozen=True)
class LambdaRuntime:
    """One managed Python runtime of Lambda."""

    identifier: str  # python3.13
    version: tuple[int, int]  # (3, 13)
    os: str  # Amazon Linux 2 or 2023: it decides the glibc, hence the wheel tags
    deprecation: date
    block_create: date
    block_update: date

    @property
    def python(self) -> str:
        """'3.13', as ``pip --python-version`` and interpreter names want it."""
        return f"{self.version[0]}.{self.version[1]}"

    @property
    def short(self) -> str:
        """'py313', for names that allow no dot (layer names)."""
        return f"py{self.version[0]}{self.version[1]}"

    @property
    def glibc(self) -> tuple[int, int]:
        """The newest manylinux_2_X the runtime's OS runs wheels of."""
        return (2, 28) if self.os == "Amazon Linux 2023" else (2, 17)


RUNTIMES: dict[str, LambdaRuntime] = {r.identifier: r for r in (
    LambdaRuntime("python3.14", (3, 14), "Amazon Linux 2023",
                  date(2029, 6, 30), date(2029, 7, 31), date(2029, 8, 31)),
    LambdaRuntime("python3.13", (3, 13), "Amazon Linux 2023",
                  date(2029, 6, 30), date(2029, 7, 31), date(2029, 8, 31)),
    LambdaRuntime("python3.12", (3, 12), "Amazon Linux 2023",
                  date(2028, 10, 31), date(2028, 11, 30), date(2029, 1, 10)),
    LambdaRuntime("python3.11", (3, 11), "Amazon Linux 2",
                  date(2026, 6, 30), date(2026, 7, 31), date(2026, 8, 31)),
    LambdaRuntime("python3.10", (3, 10), "Amazon Linux 2",
                  date(2026, 6, 30), date(2026, 7, 31), date(2026, 8, 31)),
)}


def supported(today: date) -> list[str]:
    """Runtimes Lambda still creates functions on, newest first."""
    return [name for name, r in RUNTIMES.items() if today < r.block_create]


def parse_runtime(text: str, today: date | None = None) -> LambdaRuntime:
    """'python3.13' → its table row; ValueError ``"<what>; <hint>"`` otherwise."""
    today = today or date.today()
    runtime = RUNTIMES.get(text)
    ok = ", ".join(supported(today))
    if runtime is None:
        raise ValueError(f"'{text}' is not a Lambda Python runtime; use one of {ok}")
    if today >= runtime.block_create:
        raise ValueError(
            f"{text} was deprecated on {runtime.deprecation.isoformat()} and Lambda creates no "
            f"function on it since {runtime.block_create.isoformat()}; use one of {ok}")
    return runtime


def runtime_warning(text: str, today: date | None = None) -> str | None:
    """A sentence when ``text`` is deprecated or will be within six months, else None."""
    today = today or date.today()
    runtime = RUNTIMES.get(text)
    if runtime is None or today >= runtime.block_create:
        return None  # parse_runtime refuses it
    newest = supported(today)[0]
    if today >= runtime.deprecation:
        return (f"{text} is deprecated since {runtime.deprecation.isoformat()}; Lambda stops "
                f"creating functions on it on {runtime.block_create.isoformat()}: move to "
                f"{newest}")
    if today >= runtime.deprecation - WARN_BEFORE:
        return (f"{text} is deprecated on {runtime.deprecation.isoformat()} (Lambda stops "
                f"creating functions on it on {runtime.block_create.isoformat()}): plan the "
                f"move to {newest}")
    return None


def parse_architecture(text: str) -> Architecture:
    try:
        return Architecture(text)
    except ValueError:
        raise ValueError(f"'{text}' is not a Lambda architecture; use x86_64 or arm64") from None
