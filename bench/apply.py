"""Apply benchmark: how long a deploy's and a destroy's apply take against the number of
endpoints, one action at a time (``--parallelism 1``) vs the default (10 at once).

    .venv/bin/python bench/apply.py [--endpoints 1,5,20] [--call-latency 0.25] [--json FILE]

For each count of endpoints, and for each parallelism, in one run: the example project
(``mlops.yaml``, the breast-cancer model trained once, seed 42) with the example's ``predict``
endpoint and as many more copies of it as asked (each with its own function, version, alias,
role, log group, capture stream and subscription, integration, routes and permission), in a
fresh folder, deployed to a fresh embedded local AWS on free ports, then destroyed. Each of
the two runs in a child process, as ``mlops deploy --parallelism N`` and ``mlops destroy``
would (``workflow.plan`` then ``workflow.apply``); what is timed is the apply alone (the plan,
the layers and the local AWS's start are before it). The two parallelisms alternate, so that
a busy machine slows both alike.

``--call-latency S`` adds a second pass in which each provider call first waits ``S`` seconds
(a sleep in the calling thread: no CPU), a stand-in for the network and the waiters of AWS,
where a Lambda create with its waiter takes seconds: the local AWS answers in milliseconds and
shares the machine's CPUs with the apply, which hides what running calls at once saves.

Installs nothing. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import serve  # noqa: E402  (bench/serve.py: training, free ports, the machine's name)

PARALLEL = 10  # the default (framework.apply.executor.DEFAULT_PARALLELISM)

ENDPOINT = """\
  predict-{i}:                        # bench: a copy of predict
    model: diagnosis
    route: POST /diagnosis/predict-{i}
    memory: 1024
    timeout: 15
    capture: {{sample_rate: 1.0}}
"""


def project(work: Path, trained: Path, endpoints: int, name: str) -> Path:
    """The example with ``endpoints`` endpoints, in a folder of its own."""
    root = work / name
    root.mkdir()
    text = (serve.REPO / "mlops.yaml").read_text().replace("strategy: canary",
                                                           "strategy: all_at_once")
    extra = "".join(ENDPOINT.format(i=i) for i in range(2, endpoints + 1))
    (root / "mlops.yaml").write_text(text.replace("endpoints:\n", "endpoints:\n" + extra, 1))
    shutil.copytree(trained, root / serve.EXAMPLE)
    return root


def child(root: Path, parallelism: int, destroy: bool, call_latency: float) -> dict[str, Any]:
    """In the child process: plan, then apply timed (what `mlops deploy` / `destroy` run)."""
    sys.path.insert(0, str(serve.REPO))
    from framework import workflow

    session = workflow.open_session(workflow.Workspace.open(root / "mlops.yaml"))
    if call_latency:
        provider = session.provider
        for name in ("create", "update", "replace", "delete"):
            call = getattr(provider, name)

            def slow(*args: Any, _call: Any = call, **kwargs: Any) -> Any:
                time.sleep(call_latency)
                return _call(*args, **kwargs)

            setattr(provider, name, slow)
    spent = {"save_s": 0.0, "audit_s": 0.0}  # the two writers' time, within the apply

    def timed(call: Any, key: str) -> Any:
        def run(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return call(*args, **kwargs)
            finally:
                spent[key] += time.perf_counter() - t0
        return run

    session.store.save = timed(session.store.save, "save_s")  # type: ignore[method-assign]
    session.audit.record = timed(session.audit.record, "audit_s")  # type: ignore[method-assign]
    started = time.perf_counter()
    the_plan = workflow.plan(session, destroy=destroy)
    planned = time.perf_counter() - started
    started = time.perf_counter()
    state = workflow.apply(session, the_plan, parallelism=parallelism,
                           command="mlops destroy" if destroy else "mlops deploy")
    took = time.perf_counter() - started
    return {"changes": len(the_plan.changes), "resources": len(state.resources),
            "plan_s": planned, "apply_s": took, **spent}


def run(root: Path, parallelism: int, destroy: bool, call_latency: float) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, __file__, "--child", str(root), "--parallelism",
                           str(parallelism), "--call-latency", str(call_latency),
                           *(["--destroy"] if destroy else [])],
                          cwd=root, capture_output=True, text=True, env={**os.environ})
    if proc.returncode != 0:
        raise RuntimeError(f"apply failed in {root}:\n{proc.stdout[-3000:]}\n"
                           f"{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.splitlines()[-1])
    return result


def one(work: Path, trained: Path, endpoints: int, parallelism: int,
        call_latency: float) -> dict[str, Any]:
    """Deploy then destroy ``endpoints`` endpoints on a fresh local AWS."""
    from framework import local

    root = project(work, trained, endpoints, f"e{endpoints}-p{parallelism}-l{call_latency:g}")
    os.environ["MLOPS_LOCAL_PORT"] = str(serve.free_port(pair=True))
    try:
        deploy = run(root, parallelism, False, call_latency)
        destroy = run(root, parallelism, True, call_latency)
    finally:
        local.stop(root / ".mlops" / "local")
    load = os.getloadavg()[0]  # others' work on the machine slows both parallelisms alike
    print(f"  {endpoints:>2} endpoint(s), {deploy['changes']} resources, parallelism "
          f"{parallelism:>2}: deploy {deploy['apply_s']:.1f} s (state saves "
          f"{deploy['save_s']:.1f} s, audit records {deploy['audit_s']:.1f} s), destroy "
          f"{destroy['apply_s']:.1f} s (load {load:.1f})", flush=True)
    return {"endpoints": endpoints, "parallelism": parallelism, "call_latency": call_latency,
            "resources": deploy["changes"], "deploy_s": deploy["apply_s"],
            "destroy_s": destroy["apply_s"], "deploy_plan_s": deploy["plan_s"],
            "deploy_save_s": deploy["save_s"], "deploy_audit_s": deploy["audit_s"],
            "destroy_save_s": destroy["save_s"], "destroy_audit_s": destroy["audit_s"],
            "load": load}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoints", default="1,5,20", help="endpoint counts, comma-separated")
    parser.add_argument("--call-latency", type=float, default=0.0,
                        help="also a pass with each provider call delayed this many seconds")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--parallelism", type=int, default=PARALLEL, help=argparse.SUPPRESS)
    parser.add_argument("--destroy", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        print(json.dumps(child(args.child, args.parallelism, args.destroy, args.call_latency)))
        return 0

    counts = [int(n) for n in args.endpoints.split(",")]
    latencies = [0.0] + ([args.call_latency] if args.call_latency else [])
    results: dict[str, Any] = {"machine": serve.machine(), "runs": []}
    with tempfile.TemporaryDirectory(prefix="mlops-apply-") as tmp:
        work = Path(tmp)
        print("training the example model ...", flush=True)
        trained = serve.train(work)
        for latency in latencies:
            print(f"provider calls {'as they are' if not latency else f'+{latency:g} s each'}:",
                  flush=True)
            for endpoints in counts:
                for parallelism in (1, PARALLEL):
                    results["runs"].append(one(work, trained, endpoints, parallelism,
                                               latency))
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


def report(r: dict[str, Any]) -> None:
    print(f"\nmachine: {r['machine']}")
    runs = r["runs"]
    for latency in sorted({x["call_latency"] for x in runs}):
        print(f"\nprovider calls {'as they are' if not latency else f'+{latency:g} s each'}:\n")
        print(f"| endpoints | resources | deploy, 1 at a time (s) | deploy, {PARALLEL} at once (s) "
              f"| speed-up | … of which audit records, {PARALLEL} at once (s) "
              f"| destroy, 1 at a time (s) | destroy, {PARALLEL} at once (s) | speed-up |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for endpoints in sorted({x["endpoints"] for x in runs}):
            by = {x["parallelism"]: x for x in runs
                  if x["endpoints"] == endpoints and x["call_latency"] == latency}
            seq, par = by[1], by[PARALLEL]
            print(f"| {endpoints} | {seq['resources']} | {seq['deploy_s']:.1f} | "
                  f"{par['deploy_s']:.1f} | {seq['deploy_s'] / par['deploy_s']:.1f}× | "
                  f"{par['deploy_audit_s']:.1f} | "
                  f"{seq['destroy_s']:.1f} | {par['destroy_s']:.1f} | "
                  f"{seq['destroy_s'] / par['destroy_s']:.1f}× |")


if __name__ == "__main__":
    sys.exit(main())
