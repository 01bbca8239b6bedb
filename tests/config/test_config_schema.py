"""The JSON Schema of mlops.yaml: deterministic, described, usable by editors."""

from __future__ import annotations

import json
from pathlib import Path

from framework.config import json_schema, write_schema


def test_schema_header() -> None:
    schema = json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "mlops.yaml"
    assert schema["description"]
    assert schema["required"] == ["project"]
    assert schema["additionalProperties"] is False


def test_every_field_is_described() -> None:
    schema = json_schema()
    models = [schema, *schema["$defs"].values()]
    undescribed = [
        f"{m.get('title')}.{name}"
        for m in models
        for name, prop in m.get("properties", {}).items()
        if not prop.get("description")
    ]
    assert undescribed == []
    endpoint = schema["$defs"]["Endpoint"]["properties"]
    assert endpoint["memory"]["description"] == "Lambda memory in MB (128-10240)."
    assert endpoint["memory"]["minimum"] == 128 and endpoint["memory"]["maximum"] == 10240
    assert "auth" in endpoint


def test_write_schema_is_deterministic(tmp_path: Path) -> None:
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    write_schema(first)
    write_schema(second)
    text = first.read_text(encoding="utf-8")
    assert text == second.read_text(encoding="utf-8")
    assert text.endswith("}\n") and not text.endswith("\n\n")
    assert text.splitlines()[1].startswith('  "')  # 2-space indent
    assert json.loads(text) == json_schema()
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
