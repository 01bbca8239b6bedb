"""A small client for a deployed endpoint: predictions, then the ground truth as feedback.

    from framework.client import EndpointClient, endpoint_url

    client = EndpointClient(endpoint_url("mlops.yaml", "score"))
    answer = client.predict([{"amount": 12.5, "channel": "web"}])
    client.feedback(answer.request_id, ["legit"])          # row i of that request → label i
    sent = client.send(rows, labels, batch=50)             # both, batch by batch

Only the standard library is used for HTTP (``endpoint_url`` reads the deploy state, so it
needs the framework's dependencies). Feedback is joined by the monitor to the captured
predictions by request id and row; see ``framework.runtime.feedback``.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from framework.errors import MlopsError

Record = Mapping[str, Any]


class EndpointError(MlopsError):
    """The endpoint answered with an error status."""

    def __init__(self, url: str, status: int, body: Any) -> None:
        self.status, self.body = status, body
        message = body.get("message") if isinstance(body, dict) else str(body)[:200]
        super().__init__(f"POST {url} answered {status}: {message}",
                         hint="`mlops status` shows what is deployed")


@dataclass(frozen=True)
class Answer:
    """One prediction request's answer."""

    request_id: str | None
    predictions: list[Any]
    probabilities: list[list[float]] | None
    classes: list[Any] | None
    version: str | None  # the model version that answered
    executed_version: str | None  # the endpoint function's version (canaries: old or new)
    body: dict[str, Any]


@dataclass
class Sent:
    """What ``EndpointClient.send`` did."""

    rows: int = 0
    requests: int = 0
    labels: int = 0
    versions: dict[str, int] = field(default_factory=dict)  # model version → rows answered
    predictions: list[Any] = field(default_factory=list)

    def add(self, other: Sent) -> Sent:
        self.rows += other.rows
        self.requests += other.requests
        self.labels += other.labels
        for version, n in other.versions.items():
            self.versions[version] = self.versions.get(version, 0) + n
        self.predictions += other.predictions
        return self

    def describe(self) -> str:
        served = ", ".join(f"{v}: {n}" for v, n in sorted(self.versions.items()))
        return (f"{self.rows} rows in {self.requests} requests, {self.labels} labels sent back "
                f"(answered by {served or 'nobody'})")


class EndpointClient:
    """Calls ``POST <url>`` and ``POST <url>/feedback`` of one deployed endpoint."""

    def __init__(self, url: str, *, api_key: str | None = None, timeout: float = 30) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.headers = {"content-type": "application/json"}
        if api_key:
            self.headers["x-api-key"] = api_key

    def _post(self, url: str, body: Any) -> tuple[dict[str, Any], dict[str, str]]:
        req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers=self.headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw, headers = resp.read(), {k.lower(): v for k, v in resp.headers.items()}
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                detail: Any = json.loads(raw)
            except ValueError:
                detail = raw.decode(errors="replace")
            raise EndpointError(url, e.code, detail) from e
        return (json.loads(raw) if raw else {}), headers

    def predict(self, rows: Sequence[Record]) -> Answer:
        body, headers = self._post(self.url, {"instances": [dict(r) for r in rows]})
        return Answer(
            request_id=body.get("request_id") or headers.get("x-request-id"),
            predictions=list(body.get("predictions", [])),
            probabilities=body.get("probabilities"),
            classes=body.get("classes"),
            version=body.get("version"),
            executed_version=headers.get("x-mlops-executed-version"),
            body=body,
        )

    def feedback(self, request_id: str, labels: Sequence[Any]) -> int:
        """The true label of each row of request ``request_id``, in row order."""
        items = [{"request_id": request_id, "row": i, "label": label}
                 for i, label in enumerate(labels)]
        if items:
            self._post(f"{self.url}/feedback", items)
        return len(items)

    def send(self, rows: Sequence[Record], labels: Sequence[Any] | None = None, *,
             batch: int = 25) -> Sent:
        """Predict ``rows`` in batches; after each batch, send its ``labels`` as feedback."""
        if labels is not None and len(labels) != len(rows):
            raise ValueError(f"{len(rows)} rows but {len(labels)} labels")
        sent = Sent()
        for start in range(0, len(rows), batch):
            chunk = rows[start:start + batch]
            answer = self.predict(chunk)
            sent.rows += len(chunk)
            sent.requests += 1
            sent.predictions += answer.predictions
            key = answer.version or "?"
            sent.versions[key] = sent.versions.get(key, 0) + len(chunk)
            if labels is not None and answer.request_id:
                sent.labels += self.feedback(answer.request_id, labels[start:start + batch])
        return sent


def until_file(path: Path, send: Callable[[int], Sent], pause: float = 0.05) -> Sent:
    """Call ``send(0)``, ``send(1)``, ... until ``path`` exists (traffic while a rollout runs);
    the sum of what was sent."""
    total, i = Sent(), 0
    while not path.exists():
        total.add(send(i))
        i += 1
        time.sleep(pause)
    return total


def endpoint_url(config: Path | str = "mlops.yaml", endpoint: str | None = None,
                 stage: str | None = None) -> str:
    """The URL where a deployed endpoint answers (the only endpoint when none is named)."""
    from framework.workflow import Workspace, endpoints, open_session

    session = open_session(Workspace.open(Path(config), stage))
    found = endpoints(session, session.store.load())
    chosen = [e for e in found if endpoint in (None, e.name)]
    if not chosen or (endpoint is None and len(chosen) > 1):
        names = ", ".join(e.name for e in found) or "none deployed"
        raise MlopsError(f"no single deployed endpoint {endpoint or ''} (endpoints: {names})",
                         hint="run `mlops deploy` first, or name the endpoint")
    return str(chosen[0].url)
