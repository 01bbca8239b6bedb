"""Start, stop and find the embedded local AWS daemon of a project.

``home`` is the project's ``.mlops/local`` directory. The daemon is fully detached (own
session, stdio to ``daemon.log``) so it outlives the CLI that started it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from framework.errors import TargetUnavailableError
from framework.procs import pid_alive
from framework.progress import say
from framework.runtime.clients import Connection

from .files import LOG_FILE, REPLAY_FILE, STATE_FILE

DEFAULT_PORT = 4588
START_TIMEOUT_S = 30.0  # without a sign of progress (a long journal replay keeps moving it)
REPLAY_SAID_AFTER_S = 2.0  # a replay still going after this long is said
STOP_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class LocalAWS:
    """A running local AWS."""

    control_url: str  # http://127.0.0.1:P  (moto)
    gateway_url: str  # http://127.0.0.1:P+1
    pid: int
    home: Path


def default_port() -> int:
    return int(os.environ.get("MLOPS_LOCAL_PORT") or DEFAULT_PORT)


def _health(gateway_url: str, timeout: float = 1.0) -> dict[str, object] | None:
    try:
        with urllib.request.urlopen(f"{gateway_url}/_mlops/health", timeout=timeout) as resp:
            data: dict[str, object] = json.loads(resp.read())
            return data
    except (OSError, ValueError):
        return None


def _read_json(path: Path) -> dict[str, object] | None:
    try:
        data: dict[str, object] = json.loads(path.read_text())
        return data
    except (OSError, ValueError):
        return None


def _read_state(home: Path) -> dict[str, object] | None:
    return _read_json(home / STATE_FILE)


def status(home: Path) -> LocalAWS | None:
    """The running daemon of ``home``, or None."""
    home = home.resolve()
    state = _read_state(home)
    if state is None:
        return None
    pid = int(str(state["pid"]))
    if not pid_alive(pid):
        return None
    aws = LocalAWS(str(state["control_url"]), str(state["gateway_url"]), pid, home)
    health = _health(aws.gateway_url)
    if health is None or health.get("pid") != pid:
        return None
    return aws


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _log_tail(home: Path, lines: int = 15) -> str:
    try:
        return "\n".join((home / LOG_FILE).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def start(home: Path, port: int | None = None) -> LocalAWS:
    """Start the daemon for ``home`` (or return the running one); wait until it is healthy."""
    home = home.resolve()
    running = status(home)
    if running is not None:
        return running
    port = port or default_port()
    busy = [p for p in (port, port + 1) if not _port_free(p)]
    if busy:
        raise TargetUnavailableError(
            f"cannot start the local AWS: port {busy[0]} on 127.0.0.1 is in use",
            where=str(home),
            hint="stop what uses it, or pick other ports: set MLOPS_LOCAL_PORT "
            "(the gateway uses MLOPS_LOCAL_PORT + 1)",
        )
    home.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    with (home / LOG_FILE).open("ab") as log, open(os.devnull, "rb") as devnull:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "framework.local.daemon",
                "--home",
                str(home),
                "--port",
                str(port),
            ],
            cwd=home,
            env=env,
            stdin=devnull,
            stdout=log,
            stderr=log,
            start_new_session=True,
            close_fds=True,
        )
    spawned = time.monotonic()
    deadline = spawned + START_TIMEOUT_S
    replayed, said = -1, False  # writes the daemon has replayed so far, as it last said
    while time.monotonic() < deadline:
        replay = _read_json(home / REPLAY_FILE)
        if replay and replay.get("pid") == proc.pid and int(str(replay["done"])) > replayed:
            replayed = int(str(replay["done"]))
            deadline = time.monotonic() + START_TIMEOUT_S  # a replay that moves is waited for
            if not said and time.monotonic() - spawned > REPLAY_SAID_AFTER_S:
                say(f"the local AWS replays its journal ({replay['of']:,} writes) before serving")
                said = True
        if proc.poll() is not None:
            raced = status(home)  # another caller started the same home a moment earlier
            if raced is not None:
                return raced
            raise TargetUnavailableError(
                f"the local AWS exited during start (code {proc.returncode})",
                where=str(home / LOG_FILE),
                hint=_log_tail(home) or "see the log",
            )
        state = _read_state(home)
        if state is not None and state.get("pid") == proc.pid:
            aws = status(home)
            if aws is not None:
                return aws
        time.sleep(0.02)
    _terminate(proc.pid)
    raise TargetUnavailableError(
        f"the local AWS did not become healthy within {START_TIMEOUT_S:.0f}s"
        + (f" (its journal's replay stood at write {replayed:,})" if replayed >= 0 else ""),
        where=str(home / LOG_FILE),
        hint=_log_tail(home) or "see the log",
    )


def _terminate(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return
        time.sleep(0.02)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    while pid_alive(pid):
        time.sleep(0.02)


def _is_daemon(pid: int) -> bool:
    """Whether ``pid`` is a local AWS daemon (for one that no longer answers health checks)."""
    try:
        return b"framework.local.daemon" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def stop(home: Path) -> bool:
    """Stop the daemon of ``home``. False if it was not running."""
    home = home.resolve()
    aws = status(home)
    if aws is not None:
        _terminate(aws.pid)
        return True
    state = _read_state(home)
    if state is not None:
        pid = int(str(state["pid"]))
        if pid_alive(pid) and _is_daemon(pid):
            _terminate(pid)
            return True
    return False


def ensure_running(home: Path) -> LocalAWS:
    """The running daemon of ``home``, started if needed."""
    return status(home) or start(home)


def connection(aws: LocalAWS, region: str) -> Connection:
    """A boto3 connection to the local control plane."""
    return Connection(region=region, endpoint_url=aws.control_url, dummy_credentials=True)
