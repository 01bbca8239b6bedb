"""``mlops models reproduce``: re-run the recorded training entry point and compare.

The command, parameters and data fingerprint come from the version's metadata.json (not from
today's mlops.yaml). The data file must still hash to the recorded fingerprint. The run writes
into a fresh folder; the result matches when the artifact's SHA-256 is identical, or else when
every recorded metric is within the tolerance.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from framework.registry.errors import RegistryInputError
from framework.registry.store import Registry

TIMEOUT = 3600


@dataclass
class Reproduction:
    matches: bool
    how: str
    lines: list[str] = field(default_factory=list)


def command_line(template: str, out: Path, params: dict[str, Any]) -> list[str]:
    values = {k: str(v) for k, v in params.items()}
    values["out"] = str(out)
    try:
        argv = [token.format(**values) for token in shlex.split(template)]
    except KeyError as exc:
        raise RegistryInputError(f"the training command uses {{{exc.args[0]}}}, which is not a "
                                 "recorded parameter", where="training.command") from exc
    if argv and argv[0] in ("python", "python3"):
        argv[0] = sys.executable  # the interpreter mlops runs in, not whatever is on PATH
    return argv


def reproduce(reg: Registry, root: Path, name: str, version: str,
              tolerance: float) -> Reproduction:
    meta = reg.metadata(name, version)
    training = meta.get("training")
    if not training:
        raise RegistryInputError(
            f"{name}@{version} records no training entry point", where=f"{name}@{version}",
            hint="declare training: {command: ..., params: ...} in mlops.yaml for new versions")
    lines: list[str] = []
    data = meta.get("data")
    if data and data.get("file"):
        path = root / str(data["file"])
        if not path.is_file():
            return Reproduction(False, f"training data {data['file']} is missing", lines)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != data.get("sha256"):
            return Reproduction(False, f"training data {data['file']} changed since registration "
                                f"(sha256 {digest[:12]}…, recorded {str(data['sha256'])[:12]}…)",
                                lines)
        lines.append(f"data {data['file']}: sha256 matches the recorded fingerprint")
    with tempfile.TemporaryDirectory(prefix="mlops-reproduce-") as tmp:
        out = Path(tmp)
        argv = command_line(str(training["command"]), out, dict(meta.get("params") or {}))
        lines.append("ran: " + " ".join(shlex.quote(a) for a in argv))
        proc = subprocess.run(argv, cwd=root, capture_output=True, text=True, timeout=TIMEOUT,
                              check=False)
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
            return Reproduction(False, f"the training command exited {proc.returncode}",
                                lines + tail)
        produced = out / str(training["artifact"])
        if not produced.is_file():
            return Reproduction(False, f"the command wrote no {training['artifact']}", lines)
        sha = hashlib.sha256(produced.read_bytes()).hexdigest()
        if sha == meta["sha256"]:
            return Reproduction(True, f"identical artifact (sha256 {sha[:12]}…)", lines)
        lines.append(f"artifact differs: sha256 {sha[:12]}…, recorded {meta['sha256'][:12]}…")
        recorded = meta.get("metrics") or {}
        if not training.get("metrics") or not recorded:
            return Reproduction(False, "artifact differs and no metrics to compare", lines)
        got = json.loads((out / str(training["metrics"])).read_text())
        worst = 0.0
        for key, value in sorted(recorded.items()):
            if key not in got:
                return Reproduction(False, f"the run reported no metric '{key}'", lines)
            delta = abs(float(got[key]) - float(value))
            worst = max(worst, delta)
            lines.append(f"metric {key}: recorded {value}, reproduced {got[key]} (Δ {delta:.2g})")
        if worst <= tolerance:
            return Reproduction(True, f"metrics within {tolerance:g} (largest Δ {worst:.2g})",
                                lines)
        return Reproduction(False, f"metrics differ by up to {worst:.2g} (> {tolerance:g})",
                            lines)
