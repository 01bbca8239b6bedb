"""Large models are streamed from the registry into a memory-mapped file, hashed on the way,
and served like a model read whole; a short, long or altered object is refused. Against a
real moto server (S3's streaming body, chunk by chunk)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from moto.server import ThreadedMotoServer

from framework.runtime import modelfile
from framework.runtime.clients import Connection
from framework.runtime.errors import IntegrityError
from framework.runtime.inference import ModelBundle, ModelUnavailableError
from tests.runtime.tinymodels import tensor_classifier

BUCKET = "stream-registry"


@pytest.fixture(scope="module")
def conn() -> Iterator[Connection]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    connection = Connection(region="us-east-1", endpoint_url=f"http://127.0.0.1:{port}",
                            dummy_credentials=True, max_attempts=1)
    connection.client("s3").create_bucket(Bucket=BUCKET)
    yield connection
    server.stop()


def publish(conn: Connection, name: str, model: bytes, meta: dict[str, Any]) -> None:
    s3 = conn.client("s3")
    meta = {**meta, "name": name}
    s3.put_object(Bucket=BUCKET, Key=f"models/{name}/1.0.0/metadata.json",
                  Body=json.dumps(meta).encode())
    s3.put_object(Bucket=BUCKET, Key=f"models/{name}/1.0.0/model.onnx", Body=model)


ROWS = {"instances": [{"a": 1.0, "b": 2.0, "c": 3.0}, {"a": 9.0, "b": 0.0, "c": 1.0}]}


def test_a_model_above_the_threshold_is_streamed_and_served_alike(
        conn: Connection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model, meta = tensor_classifier()
    publish(conn, "big", model, meta)
    whole = ModelBundle.load(conn, BUCKET, "big", "1.0.0", meta["sha256"])
    assert not list(tmp_path.iterdir())
    monkeypatch.setenv("MLOPS_STREAM_MODEL_MB", "0")  # everything counts as large
    monkeypatch.setenv("MLOPS_MODEL_DIR", str(tmp_path))
    monkeypatch.setattr(modelfile, "CHUNK", 97)  # many small chunks, one odd-sized last one
    streamed = ModelBundle.load(conn, BUCKET, "big", "1.0.0", meta["sha256"])
    [file] = tmp_path.iterdir()
    assert file.read_bytes() == model
    assert streamed.predict(ROWS) == whole.predict(ROWS)


def test_the_threshold_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLOPS_STREAM_MODEL_MB", raising=False)
    assert modelfile.stream_threshold() == modelfile.NEVER  # off unless set: see the module
    monkeypatch.setenv("MLOPS_STREAM_MODEL_MB", "0.5")
    assert modelfile.stream_threshold() == 512 << 10
    monkeypatch.setenv("MLOPS_STREAM_MODEL_MB", "lots")
    assert modelfile.stream_threshold() == modelfile.NEVER


@pytest.mark.parametrize(("recorded", "why"), [(-10, "larger than"), (+10, "bytes, metadata")])
def test_an_object_of_another_size_is_refused_and_leaves_no_file(
        conn: Connection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        recorded: int, why: str) -> None:
    model, meta = tensor_classifier()
    publish(conn, "sized", model, {**meta, "size": len(model) + recorded})
    monkeypatch.setenv("MLOPS_STREAM_MODEL_MB", "0")
    monkeypatch.setenv("MLOPS_MODEL_DIR", str(tmp_path))
    with pytest.raises(ModelUnavailableError, match=why):
        ModelBundle.load(conn, BUCKET, "sized", "1.0.0", meta["sha256"])
    assert not list(tmp_path.iterdir())


def test_altered_bytes_are_refused_before_a_session_is_built(
        conn: Connection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model, meta = tensor_classifier()
    altered = bytearray(model)
    altered[len(altered) // 2] ^= 0xFF
    publish(conn, "tampered", bytes(altered), meta)
    monkeypatch.setenv("MLOPS_STREAM_MODEL_MB", "0")
    monkeypatch.setenv("MLOPS_MODEL_DIR", str(tmp_path))
    with pytest.raises(IntegrityError, match="INTEGRITY FAILURE"):
        ModelBundle.load(conn, BUCKET, "tampered", "1.0.0", meta["sha256"])


def test_the_module_is_stdlib_only() -> None:
    import ast

    source = Path(modelfile.__file__).read_text()
    imported = {(n.module or "").split(".")[0] if isinstance(n, ast.ImportFrom)
                else a.name.split(".")[0]
                for n in ast.walk(ast.parse(source))
                if isinstance(n, ast.Import | ast.ImportFrom)
                for a in (n.names if isinstance(n, ast.Import) else [n])}
    assert imported <= {"__future__", "hashlib", "mmap", "os", "tempfile", "uuid", "pathlib",
                        "typing"}
