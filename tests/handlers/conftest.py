from __future__ import annotations

import sys
from pathlib import Path

# The tiny-model builders live with the runtime tests; share them rather than copy them.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))
