"""The embedded local AWS: one background process, ``python -m framework.local.daemon``.

It hosts moto (the control plane, on ``--port``) behind the write journal, with the engines
for what moto only stores: Lambda's ``Invoke`` (``admin.py``), Firehose delivery
(``firehose.py``), the mail outbox (``mail.py``), CloudWatch Logs' delivery of function
logs and subscriptions (``logship.py``) and CloudWatch's metrics from EMF log lines and alarm
evaluation (``metrics_engine.py``) and CodeDeploy's deployments of Lambda aliases
(``codedeploy.py``); the local Lambda service (``runner.py``) and the HTTP
API gateway (on ``--port + 1``, with the admin routes of ``admin.py``) on one event loop; and
the local EventBridge (``scheduler.py``: schedules, and the events of the local CodeDeploy
and of S3, ``s3events.py``, routed to the rules they match). On start it raises its soft
descriptor limit to the hard one (the gateway's connections are kept below it) and replays
``journal.jsonl``; when ready it writes ``daemon.json`` (pid, ports, start time). SIGTERM/SIGINT
stop it cleanly: servers shut down, runner workers are killed, ``daemon.json`` is removed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import resource
import signal
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from framework.runtime.clients import LOCAL_ACCOUNT_ID, Connection

from . import admin, mail, motoapp, s3events
from .codedeploy import CodeDeployEngine, local_backends
from .codedeploy import patch_moto as patch_codedeploy
from .destinations import Destinations
from .files import JOURNAL_FILE, LOG_FILE, REPLAY_FILE, STATE_FILE
from .firehose import SPOOL_DIR, FirehoseEngine, FirehoseMiddleware
from .gateway import Gateway, Limits
from .journal import Journal, JournalMiddleware
from .logship import disable_moto_delivery, index_moto_streams, patch_moto_filters
from .metrics_engine import MetricsEngine, local_regions, patch_moto
from .presign import PresignedMiddleware
from .runner import Runner
from .scheduler import Scheduler, load_rules

log = logging.getLogger("framework.local.daemon")


def _setup_logging(home: Path) -> None:
    handler = logging.FileHandler(home / LOG_FILE)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(os.environ.get("MLOPS_LOCAL_LOG_LEVEL", "INFO").upper())
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    logging.getLogger("botocore").setLevel(logging.WARNING)


def _regions() -> list[str]:
    configured = os.environ.get("MLOPS_LOCAL_REGIONS")
    if configured:
        return [r.strip() for r in configured.split(",") if r.strip()]
    return motoapp.regions_with_http_apis()


def _rule_regions() -> list[str]:
    configured = os.environ.get("MLOPS_LOCAL_REGIONS")
    if configured:
        return [r.strip() for r in configured.split(",") if r.strip()]
    return motoapp.regions_with_event_rules()


FD_RESERVE = 512  # descriptors kept for what is not a gateway connection (workers, moto, files)
# How long a thread computing in Python (moto, the log shipper, the metrics engine) keeps the
# GIL from the data plane's loop, which waits for it after each socket event: Python's 5 ms
# default made those waits the daemon's latency tail (one client's p99 16.9 ms against 11.7 ms
# at 0.5 ms, medians of six alternated runs; p50 alike).
SWITCH_INTERVAL_S = 0.0005


def raise_descriptor_limit() -> int:
    """Raise the soft limit on open descriptors to the hard one; the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            log.warning("could not raise the descriptor limit from %d to %d", soft, target)
    return soft


def gateway_limits(environ: Mapping[str, str], descriptors: int) -> Limits:
    """The gateway's bounds, its connections kept ``FD_RESERVE`` below the descriptor limit."""
    limits = Limits.from_env(environ)
    room = max(64, descriptors - FD_RESERVE)
    return dataclasses.replace(limits, max_connections=min(limits.max_connections, room))


def _write_file(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def run(home: Path, port: int) -> int:
    home.mkdir(parents=True, exist_ok=True)
    _setup_logging(home)
    started = time.time()
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    limits = gateway_limits(os.environ, raise_descriptor_limit())
    log.info("gateway limits: %s", limits)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    control_url = f"http://127.0.0.1:{port}"
    app = JournalMiddleware(
        motoapp.build_app(home), Journal(home / JOURNAL_FILE), motoapp.seed, motoapp.prepare
    )
    outbox = mail.outbox_of(home)
    relay = mail.Relay.from_env(outbox)
    runner = Runner(home, control_url)

    def deliver(region: str, bucket: str, key: str, data: bytes) -> None:
        s3 = Connection(region, control_url, dummy_credentials=True).client("s3")
        s3.put_object(Bucket=bucket, Key=key, Body=data)

    firehose = FirehoseEngine(home / SPOOL_DIR, deliver,
                              max_age_s=float(os.environ.get("MLOPS_FIREHOSE_FLUSH_S") or 2.0))
    disable_moto_delivery()  # the runner's log shipper delivers subscriptions instead
    patch_moto_filters()  # a group's filter replaced by name, even when it has two
    index_moto_streams()  # reads of a day's log stream cost what is new, not all of it
    patch_moto()  # GetMetricStatistics by exact dimensions, with percentiles
    patch_codedeploy()  # deployment configs, stop, hook statuses, targets (before replay)
    metrics = MetricsEngine(
        lambda service, region: Connection(region, control_url,
                                           dummy_credentials=True).client(service),
        local_regions, home, float(os.environ.get("MLOPS_LOG_SHIP_S") or 1.0))
    runner.publish = metrics.record  # each invocation's AWS/Lambda metrics

    def flush() -> int:
        """Every line functions have logged, through subscriptions and Firehose into S3."""
        runner.logs.ship()
        return firehose.flush()
    # Outside the journal: a replayed SendRawEmail is not kept (or relayed) twice, a replayed
    # Invoke does not run again, and Firehose's deliveries are journaled as the S3 writes
    # they are.
    served = PresignedMiddleware(admin.InvokeMiddleware(
        FirehoseMiddleware(mail.MailMiddleware(app, outbox, relay), firehose), runner))
    control = motoapp.ControlServer(port, served)
    info = {"pid": os.getpid(), "home": str(home), "control_url": control_url}
    gateway = Gateway(runner, control_url, _regions, info, flush=flush, limits=limits)
    scheduler = Scheduler(
        home, lambda: load_rules(control_url, _rule_regions()),
        Destinations(runner, lambda service, region: Connection(
            region, control_url, dummy_credentials=True).client(service)).invoke,
        before_fire=flush,  # the monitor sees every request captured so far
    )
    gateway.admin.update({
        "/_mlops/clock": admin.clock_route(scheduler),
        "/_mlops/schedules": admin.schedules_route(scheduler),
    })
    gateway.on_refresh.append(scheduler.reload)  # a deploy's rules, anchored now
    codedeploy = CodeDeployEngine(
        lambda service, region: Connection(region, control_url,
                                           dummy_credentials=True).client(service),
        local_backends(LOCAL_ACCOUNT_ID), home,
        lambda function, event: runner.submit_event(function, None, event),
        clock=lambda: scheduler.clock.now().timestamp(), after_shift=runner.refresh,
        publish=scheduler.route, account=LOCAL_ACCOUNT_ID)  # its events, to the rules

    motoapp.warm_up()

    def replaying(done: int, total: int) -> None:  # the starter's deadline moves with it
        _write_file(home / REPLAY_FILE, {"pid": os.getpid(), "done": done, "of": total})

    replayed = app.replay(replaying)
    (home / REPLAY_FILE).unlink(missing_ok=True)
    s3events.start(scheduler.route)  # objects created from now on: S3's events, to the rules
    log.info("replayed %d journaled writes in %.2fs", replayed, time.time() - started)

    control_thread = threading.Thread(target=control.serve, name="control", daemon=True)
    control_thread.start()
    firehose.start()
    metrics.start()
    codedeploy.start()  # after the replay: its progress laid over the replayed deployments
    runner.run(gateway.start("127.0.0.1", port + 1))
    scheduler.start()
    if relay is not None:
        relay.start()
        log.info("mail: relaying to %s", relay.address)
    _write_file(
        home / STATE_FILE,
        {
            "pid": os.getpid(),
            "control_port": port,
            "gateway_port": port + 1,
            "control_url": control_url,
            "gateway_url": f"http://127.0.0.1:{port + 1}",
            "started_at": started,
            "replayed": replayed,
        },
    )
    log.info("ready: control %s, gateway port %d", control_url, port + 1)
    try:
        stop.wait()
    finally:
        log.info("stopping")
        runner.run(gateway.stop())
        scheduler.close()
        if relay is not None:
            relay.close()
        codedeploy.close()
        runner.close()
        metrics.close()
        firehose.close()  # delivers what is buffered while the control plane still answers
        threading.Thread(target=control.stop, daemon=True).start()
        control_thread.join(timeout=5)
        state = home / STATE_FILE
        try:
            if json.loads(state.read_text()).get("pid") == os.getpid():
                state.unlink()
        except (OSError, ValueError):
            pass
        log.info("stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m framework.local.daemon")
    parser.add_argument("--home", required=True, type=Path, help="state directory (.mlops/local)")
    parser.add_argument("--port", required=True, type=int, help="control port; gateway is +1")
    args = parser.parse_args(argv)
    return run(args.home.resolve(), args.port)


if __name__ == "__main__":
    sys.exit(main())
