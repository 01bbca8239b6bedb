"""framework.client: batches, feedback items and totals, without a server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from framework.client import EndpointClient, Sent, until_file


class Recording(EndpointClient):
    def __init__(self) -> None:
        super().__init__("http://x/score/", api_key="k")
        self.calls: list[tuple[str, Any]] = []

    def _post(self, url: str, body: Any) -> tuple[dict[str, Any], dict[str, str]]:
        self.calls.append((url, body))
        if url.endswith("/feedback"):
            return {"accepted": len(body)}, {}
        n = len(body["instances"])
        return ({"predictions": ["a"] * n, "version": "1.0.0",
                 "request_id": f"r{len(self.calls)}"}, {"x-mlops-executed-version": "1"})


def test_send_batches_rows_and_labels_by_request_id() -> None:
    client = Recording()
    sent = client.send([{"x": i} for i in range(5)], list("abcde"), batch=2)
    assert client.url == "http://x/score" and client.headers["x-api-key"] == "k"
    urls = [u for u, _ in client.calls]
    assert urls == ["http://x/score", "http://x/score/feedback"] * 3
    assert client.calls[3][1] == [{"request_id": "r3", "row": 0, "label": "c"},
                                  {"request_id": "r3", "row": 1, "label": "d"}]
    assert (sent.rows, sent.requests, sent.labels) == (5, 3, 5)
    assert sent.versions == {"1.0.0": 5} and len(sent.predictions) == 5
    assert "answered by 1.0.0: 5" in sent.describe()
    with pytest.raises(ValueError):
        client.send([{"x": 1}], ["a", "b"])


def test_until_file_sums_until_the_file_exists(tmp_path: Path) -> None:
    stop = tmp_path / "stop"

    def send(i: int) -> Sent:
        if i == 2:
            stop.touch()
        return Sent(rows=10, requests=1, versions={"1.0.0" if i < 1 else "1.0.1": 10})

    total = until_file(stop, send, pause=0)
    assert total.rows == 30 and total.versions == {"1.0.0": 10, "1.0.1": 20}
