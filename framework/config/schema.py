"""The JSON Schema of ``mlops.yaml``, for editors (completion and inline errors).

Point an editor at it with ``# yaml-language-server: $schema=./mlops.schema.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from framework.config.models import Config

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
TITLE = "mlops.yaml"


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of Config, with every field's description."""
    schema = Config.model_json_schema(mode="validation")
    return {
        "$schema": SCHEMA_DIALECT,
        **schema,
        "title": TITLE,
        "description": (
            "Declares the ONNX models, the HTTP endpoints that serve them and the monitors "
            "that watch them; `mlops deploy` compiles it to AWS resources."
        ),
    }


def render_schema() -> str:
    """The schema as deterministic text: sorted keys, 2-space indent, trailing newline."""
    return json.dumps(json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_schema(path: Path | str) -> None:
    """Write the schema to ``path`` (byte-identical for identical models)."""
    Path(path).write_text(render_schema(), encoding="utf-8")
