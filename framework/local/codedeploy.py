"""The local CodeDeploy: deployments of Lambda aliases, executed.

moto stores CodeDeploy applications, deployment groups and deployments but never runs a
deployment (it stays ``Created``), and has no deployment configs, no stop, no lifecycle hook
statuses and no deployment targets. ``patch_moto`` adds what the API lacks, answered as AWS
answers it (the deployment config calls, ``UpdateDeploymentGroup``, ``DeleteApplication``,
``DeleteDeploymentGroup``, ``StopDeployment``, ``ContinueDeployment``,
``PutLifecycleEventHookExecutionStatus``, ``ListDeploymentTargets``, ``GetDeploymentTarget``;
one active deployment per group; deployment ids as AWS writes them, drawn from moto's seeded
generator so a replayed journal makes the same ones); ``CodeDeployEngine`` runs what is
stored, one tick a second, as CodeDeploy runs a Lambda deployment:

1. **Start**: the AppSpec (one ``AWS::Lambda::Function`` with Name, Alias, CurrentVersion,
   TargetVersion; ``Hooks``) is read, the alias must serve CurrentVersion.
2. **BeforeAllowTraffic**: the hook function, if any, is invoked through the local Lambda
   service with ``{"DeploymentId", "LifecycleEventHookExecutionId"}``; the deployment waits
   for its ``PutLifecycleEventHookExecutionStatus`` (up to an hour, as CodeDeploy;
   ``MLOPS_CODEDEPLOY_HOOK_TIMEOUT_S``). The invocation is asynchronous, as CodeDeploy makes
   it: the local Lambda service retries it twice when the function fails.
3. **AllowTraffic**: the alias' weights are moved (``UpdateAlias``, ``RoutingConfig``
   ``AdditionalVersionWeights``) step by step as the deployment config says — all at once,
   canary (a share for one interval, then all) or linear (the same share more every
   interval) — and finally the alias points at TargetVersion alone.
4. **AfterAllowTraffic**: as BeforeAllowTraffic. Then the deployment has ``Succeeded``.

From start to end the deployment group's alarms are read (``DescribeAlarms``; their state is
what the local CloudWatch, ``metrics_engine.py``, set): one in ``ALARM`` stops the deployment
(``Stopped``, ``ALARM_ACTIVE``); a hook that reports ``Failed`` or never reports fails it
(``Failed``, ``HOOK_EXECUTION_FAILURE``); ``StopDeployment`` stops it (``MANUAL_STOP``).
When the deployment's (or its group's) automatic rollback covers that event — or
``StopDeployment`` asked for it — the alias is pointed back at CurrentVersion alone and a
rollback deployment (creator ``codeDeployRollback``) is recorded, as ``rollbackInfo`` says.
What a client reads with ``GetDeployment`` (``status``, ``deploymentOverview``,
``errorInformation``, ``rollbackInfo``, times) and ``GetDeploymentTarget`` (the lifecycle
events, the target version's weight) is AWS-shaped.

One difference, on purpose: a custom deployment config's intervals (``canaryInterval``,
``linearInterval``) count **seconds** here, where AWS counts minutes, so that bake times of
seconds can be tried locally (mlops creates its configs accordingly; the plan refuses bake
times that are not whole minutes on AWS). CodeDeploy's own configs
(``CodeDeployDefault.LambdaCanary10Percent5Minutes``, …) last the minutes their names say.
The engine's clock is the scheduler's: ``POST /_mlops/clock`` moves bake times forward too.

**Events**: as CodeDeploy does, every deployment puts a ``CodeDeploy Deployment State-change
Notification`` on the default event bus when it starts (``START``) and when it ends
(``SUCCESS``, ``FAILURE``, ``STOP``), a rollback deployment included::

    {"version": "0", "id", "detail-type": "CodeDeploy Deployment State-change Notification",
     "source": "aws.codedeploy", "account", "time", "region",
     "resources": [application ARN, deployment group ARN],
     "detail": {"region", "application", "deploymentGroup", "deploymentId", "state",
                "instanceGroupId"}}

They are handed to ``publish`` (the local EventBridge's router) once the tick has laid the
deployment's new state over moto's record, so a rule's target reads (``GetDeployment``) what
the event says, its rollback included. Best effort, as AWS delivers them: an event of a tick
the daemon did not finish is not sent again.

Restarts: moto's records are rebuilt by replaying the journal, where deployments are
``Created`` again; ``codedeploy.json`` keeps each deployment's progress (written after every
change) and is laid back over them before the engine's first tick, so a deployment goes on
from the step it had reached (a hook invocation the daemon took down is invoked again).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

STATE_FILE = "codedeploy.json"
TICK_S = 1.0
HOOK_TIMEOUT_S = 3600.0  # CodeDeploy waits an hour for a hook's status
ACTIVE = ("Created", "Queued", "InProgress", "Baking", "Ready")
DONE = ("Succeeded", "Failed", "Stopped")
EVENTS = ("Start", "BeforeAllowTraffic", "AllowTraffic", "AfterAllowTraffic", "End")
HOOKED = ("BeforeAllowTraffic", "AfterAllowTraffic")
LAMBDA_CONFIGS = {  # CodeDeploy's own Lambda configs: (type, percentage, interval minutes)
    "CodeDeployDefault.LambdaAllAtOnce": ("AllAtOnce", 0, 0),
    **{f"CodeDeployDefault.LambdaCanary10Percent{m}Minutes": ("TimeBasedCanary", 10, m)
       for m in (5, 10, 15, 30)},
    **{f"CodeDeployDefault.LambdaLinear10PercentEvery{m}Minute{'s' if m > 1 else ''}":
       ("TimeBasedLinear", 10, m) for m in (1, 2, 3, 10)},
}
ALARM_MESSAGE = ("One or more alarms have been activated according to the Amazon CloudWatch "
                 "metrics you selected, and the affected deployments have been stopped. "
                 "Activated alarms: <{}>")
HOOK_MESSAGE = ("The deployment failed because a specified lifecycle event hook function "
                "failed or timed out ({}: {})")
STOP_MESSAGE = "Deployment was stopped by a user"

RUNNING = threading.Event()  # an engine runs this process's deployments (replay is over)
Client = Callable[[str, str], Any]  # (service, region) → boto3 client of the control plane
Invoke = Callable[[str, dict[str, Any]], object]  # an asynchronous invoke of (function, event)
Publish = Callable[[dict[str, Any]], object]  # an event put on the default event bus
DETAIL_TYPE = "CodeDeploy Deployment State-change Notification"
STATES = {"Succeeded": "SUCCESS", "Failed": "FAILURE", "Stopped": "STOP"}  # at the end


# -- what moto lacks ------------------------------------------------------------------------


def _error(code: str, message: str) -> Exception:
    from moto.codedeploy.exceptions import CodeDeployException

    class Refusal(CodeDeployException):
        pass

    refusal = Refusal(code, message)
    refusal.code = 400
    return refusal


def _configs(backend: Any) -> dict[str, dict[str, Any]]:
    configs: dict[str, dict[str, Any]] = backend.__dict__.setdefault("mlops_configs", {})
    return configs


def deployment_config(backend: Any, name: str) -> dict[str, Any]:
    """A deployment config by name, CodeDeploy's own included (AWS's DeploymentConfigInfo)."""
    if name in LAMBDA_CONFIGS:
        kind, share, minutes = LAMBDA_CONFIGS[name]
        routing: dict[str, Any] = {"type": kind}
        if kind == "TimeBasedCanary":
            routing["timeBasedCanary"] = {"canaryPercentage": share, "canaryInterval": minutes}
        elif kind == "TimeBasedLinear":
            routing["timeBasedLinear"] = {"linearPercentage": share, "linearInterval": minutes}
        return {"deploymentConfigName": name, "computePlatform": "Lambda",
                "trafficRoutingConfig": routing}
    found = _configs(backend).get(name)
    if found is None:
        raise _error("DeploymentConfigDoesNotExistException",
                     f"The deployment configuration {name} does not exist with the user or "
                     "AWS account.")
    return found


def _check_routing(routing: dict[str, Any] | None) -> None:
    kind = (routing or {}).get("type")
    keys = {"TimeBasedCanary": ("timeBasedCanary", "canaryPercentage", "canaryInterval"),
            "TimeBasedLinear": ("timeBasedLinear", "linearPercentage", "linearInterval")}
    if kind == "AllAtOnce":
        return
    if kind not in keys:
        raise _error("InvalidTrafficRoutingConfigurationException",
                     f"The traffic routing type {kind!r} is not valid for Lambda")
    key, share, interval = keys[kind]
    inner = (routing or {}).get(key) or {}
    if not 1 <= int(inner.get(share) or 0) <= 99 or int(inner.get(interval) or 0) < 1:
        raise _error("InvalidTrafficRoutingConfigurationException",
                     f"{key} needs a {share} of 1-99 and an {interval} of at least 1")


def _group(backend: Any, app: str, group: str) -> Any:
    from moto.codedeploy.exceptions import (
        ApplicationDoesNotExistException,
        DeploymentGroupDoesNotExistException,
    )

    if app not in backend.applications:
        raise ApplicationDoesNotExistException(f"The application {app} does not exist with "
                                               "the user or AWS account.")
    found = backend.deployment_groups.get(app, {}).get(group)
    if found is None:
        raise DeploymentGroupDoesNotExistException(f"The deployment group {group} does not "
                                                   "exist with the user or AWS account.")
    return found


def _deployment(backend: Any, deployment_id: str) -> Any:
    return backend.get_deployment(deployment_id)  # DeploymentDoesNotExistException


class _SeededUuid:
    """``uuid`` for moto's CodeDeploy module: ids drawn from moto's seeded generator, so a
    replayed journal gives applications and groups the ids they had."""

    @staticmethod
    def uuid4() -> Any:
        from moto.moto_api._internal import mock_random

        return mock_random.uuid4()


def _aws_deployment_id() -> str:
    from moto.moto_api._internal import mock_random

    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return "d-" + "".join(mock_random.choice(alphabet) for _ in range(9))


def patch_moto() -> None:
    """Add to moto's CodeDeploy what the engine and its clients call (idempotent)."""
    from moto.codedeploy import models, responses
    from moto.core.responses import ActionResult, EmptyResult

    backend_cls, response_cls = models.CodeDeployBackend, responses.CodeDeployResponse
    if getattr(backend_cls, "_mlops_patched", False):
        return
    backend_cls._mlops_patched = True  # type: ignore[attr-defined]

    models.uuid = _SeededUuid()  # type: ignore[attr-defined,assignment]
    original_init = models.DeploymentInfo.__init__

    def deployment_init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self.deployment_id = _aws_deployment_id()  # d-XXXXXXXXX, seeded by the journal
        self.mlops_hooks = {}  # hook execution id → {"event", "status"}
        self.mlops_stop = None  # {"rollback": bool | None} once StopDeployment asked

    models.DeploymentInfo.__init__ = deployment_init  # type: ignore[method-assign]

    original_create = backend_cls.create_deployment

    def create_deployment(self: Any, application_name: str, deployment_group_name: str,
                          revision: dict[str, Any], deployment_config_name: str | None = None,
                          *args: Any, **kwargs: Any) -> str:
        group = _group(self, application_name, deployment_group_name)
        if group.application.compute_platform == "Lambda":
            deployment_config(self, deployment_config_name or str(group.deployment_config_name))
        for other in self.deployments.values():
            # Which deployments are active is the engine's to say: not while the journal
            # replays (every deployment is Created again until its progress is laid back).
            if RUNNING.is_set() and other.status in ACTIVE and not getattr(
                    other, "mlops_rolling_back", False) and (
                    other.application_name, other.deployment_group_name) == (
                    application_name, deployment_group_name):
                raise _error("DeploymentLimitExceededException",
                             f"The Deployment Group {deployment_group_name} already has an "
                             f"active Deployment {other.deployment_id}")
        made: str = original_create(self, application_name, deployment_group_name, revision,
                                    deployment_config_name, *args, **kwargs)
        return made

    backend_cls.create_deployment = create_deployment  # type: ignore[method-assign]

    # -- responses: one method per API action (moto dispatches by name) ------------------
    def backend(self: Any) -> Any:
        return self.codedeploy_backend

    def create_deployment_config(self: Any) -> Any:
        from moto.moto_api._internal import mock_random

        name = self._get_param("deploymentConfigName")
        b = backend(self)
        if name in LAMBDA_CONFIGS or name in _configs(b):
            raise _error("DeploymentConfigAlreadyExistsException",
                         f"A deployment configuration with the name {name} already exists.")
        platform = self._get_param("computePlatform") or "Server"
        routing = self._get_param("trafficRoutingConfig")
        if platform == "Lambda":
            _check_routing(routing)
        config_id = str(mock_random.uuid4())
        _configs(b)[name] = {
            "deploymentConfigId": config_id, "deploymentConfigName": name,
            "computePlatform": platform, "createTime": datetime.now(UTC),
            "trafficRoutingConfig": routing or {"type": "AllAtOnce"},
            **({"minimumHealthyHosts": self._get_param("minimumHealthyHosts")}
               if self._get_param("minimumHealthyHosts") else {})}
        return ActionResult({"deploymentConfigId": config_id})

    def get_deployment_config(self: Any) -> Any:
        info = deployment_config(backend(self), self._get_param("deploymentConfigName"))
        return ActionResult({"deploymentConfigInfo": info})

    def list_deployment_configs(self: Any) -> Any:
        names = sorted(LAMBDA_CONFIGS) + sorted(_configs(backend(self)))
        return ActionResult({"deploymentConfigsList": names})

    def delete_deployment_config(self: Any) -> Any:
        b, name = backend(self), self._get_param("deploymentConfigName")
        if name in LAMBDA_CONFIGS:
            raise _error("InvalidOperationException",
                         f"{name} is a default deployment configuration and cannot be deleted")
        deployment_config(b, name)
        for groups in b.deployment_groups.values():
            for group in groups.values():
                if str(group.deployment_config_name) == name:
                    raise _error("DeploymentConfigInUseException",
                                 f"The deployment configuration {name} is still in use.")
        del _configs(b)[name]
        return EmptyResult()

    def update_deployment_group(self: Any) -> Any:
        b = backend(self)
        app = self._get_param("applicationName")
        group = _group(b, app, self._get_param("currentDeploymentGroupName"))
        new_name = self._get_param("newDeploymentGroupName")
        config = self._get_param("deploymentConfigName")
        if config:
            deployment_config(b, config)
            group.deployment_config_name = config
        for param, attr in (("serviceRoleArn", "service_role_arn"),
                            ("alarmConfiguration", "alarm_configuration"),
                            ("autoRollbackConfiguration", "auto_rollback_configuration"),
                            ("deploymentStyle", "deployment_style"),
                            ("triggerConfigurations", "trigger_configurations")):
            value = self._get_param(param)
            if value is not None:
                setattr(group, attr, value)
        if new_name and new_name != group.deployment_group_name:
            groups = b.deployment_groups[app]
            groups[new_name] = groups.pop(group.deployment_group_name)
            group.deployment_group_name = new_name
        return ActionResult({"hooksNotCleanedUp": []})

    def delete_deployment_group(self: Any) -> Any:
        b = backend(self)
        app, name = self._get_param("applicationName"), self._get_param("deploymentGroupName")
        _group(b, app, name)
        del b.deployment_groups[app][name]
        return ActionResult({"hooksNotCleanedUp": []})

    def delete_application(self: Any) -> Any:
        b, name = backend(self), self._get_param("applicationName")
        b.applications.pop(name, None)  # AWS: deleting an application that is gone succeeds
        b.deployment_groups.pop(name, None)
        return EmptyResult()

    def stop_deployment(self: Any) -> Any:
        deployment = _deployment(backend(self), self._get_param("deploymentId"))
        if deployment.status in DONE:
            raise _error("DeploymentAlreadyCompletedException",
                         f"The deployment {deployment.deployment_id} has already completed.")
        rollback = self._get_param("autoRollbackEnabled")
        deployment.mlops_stop = {"rollback": rollback}
        return ActionResult({"status": "Pending", "statusMessage": "Stopping Pending. "
                             "Stopping to schedule commands in the deployment instances"})

    def continue_deployment(self: Any) -> Any:
        deployment = _deployment(backend(self), self._get_param("deploymentId"))
        if deployment.status != "Ready":  # a Lambda deployment never waits in Ready
            raise _error("DeploymentIsNotInReadyStateException",
                         f"The deployment {deployment.deployment_id} is not in the Ready "
                         "state.")
        return EmptyResult()

    def put_lifecycle_event_hook_execution_status(self: Any) -> Any:
        deployment = _deployment(backend(self), self._get_param("deploymentId"))
        execution = self._get_param("lifecycleEventHookExecutionId")
        status = self._get_param("status")
        if status not in ("Succeeded", "Failed"):
            raise _error("InvalidLifecycleEventHookExecutionStatusException",
                         f"The status {status!r} is not valid: use Succeeded or Failed")
        hooks = deployment.mlops_hooks
        # Checked against what the engine started (a replayed journal, before the engine
        # laid its progress back, has started nothing yet).
        if hooks and execution not in hooks:
            raise _error("InvalidLifecycleEventHookExecutionIdException",
                         f"The lifecycle event hook execution id {execution} is not valid")
        if (hooks.get(execution) or {}).get("status"):
            raise _error("LifecycleEventAlreadyCompletedException",
                         f"The lifecycle event hook execution {execution} has already "
                         "completed")
        hooks.setdefault(execution, {})["status"] = status
        return ActionResult({"lifecycleEventHookExecutionId": execution})

    def list_deployment_targets(self: Any) -> Any:
        deployment = _deployment(backend(self), self._get_param("deploymentId"))
        target = getattr(deployment, "mlops_target", None)
        return ActionResult({"targetIds": [target["targetId"]] if target else []})

    def get_deployment_target(self: Any) -> Any:
        deployment = _deployment(backend(self), self._get_param("deploymentId"))
        target = getattr(deployment, "mlops_target", None)
        if target is None or target["targetId"] != self._get_param("targetId"):
            raise _error("DeploymentTargetDoesNotExistException",
                         f"The target {self._get_param('targetId')} does not exist")
        return ActionResult({"deploymentTarget": {"deploymentTargetType": "LambdaTarget",
                                                  "lambdaTarget": target}})

    for method in (create_deployment_config, get_deployment_config, list_deployment_configs,
                   delete_deployment_config, update_deployment_group, delete_deployment_group,
                   delete_application, stop_deployment, continue_deployment,
                   put_lifecycle_event_hook_execution_status, list_deployment_targets,
                   get_deployment_target):
        setattr(response_cls, method.__name__, method)

    # -- what GetDeployment and GetDeploymentGroup leave out -----------------------------
    deployment_info, group_info = responses._deployment_info, responses._deployment_group_info

    def full_deployment_info(deployment: Any) -> dict[str, Any]:
        info = deployment_info(deployment)
        info["errorInformation"] = getattr(deployment, "mlops_error", None) or {}
        info["rollbackInfo"] = getattr(deployment, "mlops_rollback", None) or {}
        return info

    def full_group_info(group: Any) -> dict[str, Any]:
        info = group_info(group)
        alarms = group.alarm_configuration
        if alarms is not None and not isinstance(alarms, dict):
            alarms = {"enabled": alarms.enabled, "alarms": alarms.alarms,
                      "ignorePollAlarmFailure": alarms.ignore_poll_alarm_failure}
        info["alarmConfiguration"] = alarms or {}
        return info

    responses._deployment_info = full_deployment_info
    responses._deployment_group_info = full_group_info  # type: ignore[assignment]


# -- the engine -----------------------------------------------------------------------------


def _now_iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat()


@dataclass
class Run:
    """A deployment the engine runs: what it read at the start and how far it got."""

    deployment_id: str
    region: str
    function: str = ""
    alias: str = ""
    current: str = ""
    target: str = ""
    hooks: dict[str, str] = field(default_factory=dict)  # lifecycle event → function
    routing: str = "AllAtOnce"
    percentage: int = 0
    interval_s: float = 0.0
    alarms: list[str] = field(default_factory=list)
    rollback_events: list[str] = field(default_factory=list)
    status: str = "InProgress"
    phase: str = "BeforeAllowTraffic"
    started: float = 0.0
    completed: float | None = None
    step: int = -1
    step_started: float = 0.0
    weight: float = 0.0  # the target version's share now, 0-100
    hook_id: str = ""  # the lifecycle event hook execution under way
    hook_started: float = 0.0
    hook_attempts: int = 0
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    error: dict[str, str] = field(default_factory=dict)
    rollback: dict[str, str] = field(default_factory=dict)
    creator: str = "user"

    @property
    def weights(self) -> list[float]:
        if self.routing == "TimeBasedCanary":
            return [float(self.percentage), 100.0]
        if self.routing == "TimeBasedLinear":
            return [*map(float, range(self.percentage, 100, self.percentage)), 100.0]
        return [100.0]

    def event(self, name: str, status: str, now: float, message: str = "") -> None:
        entry = self.events.setdefault(name, {"status": "Pending"})
        if status == "InProgress" or (status in ("Succeeded", "Failed", "Skipped")
                                      and "start" not in entry):
            entry["start"] = now
        if status in ("Succeeded", "Failed", "Skipped"):
            entry["end"] = now
        entry["status"] = status
        if message:
            entry["message"] = message


def read_appspec(revision: dict[str, Any]) -> dict[str, Any]:
    """The Lambda AppSpec of a deployment's revision (JSON or YAML content)."""
    if (revision or {}).get("revisionType") != "AppSpecContent":
        raise ValueError("a Lambda deployment's revision must be AppSpecContent")
    text = str(((revision or {}).get("appSpecContent") or {}).get("content") or "")
    try:
        spec = json.loads(text)
    except ValueError:
        import yaml

        spec = yaml.safe_load(text)
    resources = (spec or {}).get("Resources") or []
    if len(resources) != 1 or not isinstance(resources[0], dict) or len(resources[0]) != 1:
        raise ValueError("the AppSpec must name exactly one Lambda function resource")
    (body,) = resources[0].values()
    props = (body or {}).get("Properties") or {}
    if (body or {}).get("Type") != "AWS::Lambda::Function" or not all(
            props.get(k) for k in ("Name", "Alias", "CurrentVersion", "TargetVersion")):
        raise ValueError("the AppSpec's resource must be an AWS::Lambda::Function with Name, "
                         "Alias, CurrentVersion and TargetVersion")
    hooks: dict[str, str] = {}
    for item in spec.get("Hooks") or []:
        for event, function in (item or {}).items():
            if event not in HOOKED:
                raise ValueError(f"{event} is not a lifecycle event of a Lambda deployment")
            hooks[event] = str(function)
    return {"function": str(props["Name"]), "alias": str(props["Alias"]),
            "current": str(props["CurrentVersion"]), "target": str(props["TargetVersion"]),
            "hooks": hooks}


class CodeDeployEngine:
    """Runs the deployments moto stores (see the module's docstring)."""

    def __init__(self, client: Client, backends: Callable[[], Iterator[tuple[str, Any]]],
                 home: Path, invoke: Invoke, *, clock: Callable[[], float] = time.time,
                 after_shift: Callable[[], object] | None = None,
                 tick_s: float = TICK_S, publish: Publish | None = None,
                 account: str = "000000000000") -> None:
        self.client = client
        self.publish = publish
        self.account = account
        self._events: list[dict[str, Any]] = []  # to publish once the tick is mirrored
        self.backends = backends  # (region, moto CodeDeploy backend) of the local account
        self.path = home / STATE_FILE
        self.invoke = invoke
        self.clock = clock
        self.after_shift = after_shift
        self.tick_s = tick_s
        self.hook_timeout_s = float(os.environ.get("MLOPS_CODEDEPLOY_HOOK_TIMEOUT_S")
                                    or HOOK_TIMEOUT_S)
        self.runs: dict[str, Run] = {}
        self._submitted: set[str] = set()  # hook executions invoked by this process
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._load()

    # -- persistence ------------------------------------------------------------------
    def _load(self) -> None:
        try:
            saved = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return
        for item in saved.get("deployments", []):
            run = Run(**item)
            self.runs[run.deployment_id] = run

    def _save(self) -> None:
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        body = {"deployments": [asdict(r) for r in sorted(self.runs.values(),
                                                          key=lambda r: r.started)]}
        tmp.write_text(json.dumps(body, indent=1))
        os.replace(tmp, self.path)

    # -- the loop ---------------------------------------------------------------------
    def start(self) -> None:
        self.restore()
        RUNNING.set()
        self._thread = threading.Thread(target=self._loop, name="codedeploy", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.wait(self.tick_s):
            try:
                self.tick()
            except Exception:
                log.exception("codedeploy tick failed")

    def restore(self) -> None:
        """Lay the saved progress back over moto's records (rebuilt by the journal)."""
        with self._lock:
            for region, backend in self.backends():
                for deployment in list(backend.deployments.values()):
                    run = self.runs.get(deployment.deployment_id)
                    if run is not None and run.region == region:
                        if run.hook_id and not deployment.mlops_hooks.get(run.hook_id):
                            deployment.mlops_hooks[run.hook_id] = {}
                        self._mirror(run, deployment)

    def tick(self) -> None:
        """One look at every deployment: start the new ones, move the running ones on."""
        with self._lock:
            changed = False
            for region, backend in self.backends():
                for deployment in list(backend.deployments.values()):
                    run = self.runs.get(deployment.deployment_id)
                    if run is None:
                        if deployment.status != "Created":
                            continue
                        run = self._begin(region, backend, deployment)
                        changed = True
                    if run.status in DONE:
                        continue
                    changed = self._advance(run, backend, deployment) or changed
                    self._mirror(run, deployment)
            if changed:
                self._save()
            events, self._events = self._events, []
        for event in events:
            self._publish(event)

    # -- events -----------------------------------------------------------------------
    def _emit(self, run: Run, deployment: Any, state: str) -> None:
        """Queue the deployment's state-change event (published at the end of the tick)."""
        app, group = str(deployment.application_name), str(deployment.deployment_group_name)
        prefix = f"arn:aws:codedeploy:{run.region}:{self.account}"
        self._events.append({
            "version": "0", "id": str(uuid.uuid4()), "detail-type": DETAIL_TYPE,
            "source": "aws.codedeploy", "account": self.account,
            "time": datetime.fromtimestamp(self.clock(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": run.region,
            "resources": [f"{prefix}:application:{app}",
                          f"{prefix}:deploymentgroup:{app}/{group}"],
            "detail": {"region": run.region, "application": app, "deploymentGroup": group,
                       "deploymentId": run.deployment_id, "state": state,
                       "instanceGroupId": str(uuid.uuid5(uuid.NAMESPACE_URL,
                                                         run.deployment_id))}})

    def _publish(self, event: dict[str, Any]) -> None:
        if self.publish is None:
            return
        try:
            self.publish(event)
        except Exception:  # best effort, as AWS's delivery of service events
            log.exception("codedeploy: event %s of %s not published", event["detail"]["state"],
                          event["detail"]["deploymentId"])

    # -- one deployment ---------------------------------------------------------------
    def _begin(self, region: str, backend: Any, deployment: Any) -> Run:
        now = self.clock()
        run = Run(deployment_id=deployment.deployment_id, region=region, started=now,
                  creator=deployment.creator or "user")
        self.runs[run.deployment_id] = run
        self._emit(run, deployment, "START")
        run.event("Start", "Succeeded", now)
        for name in EVENTS[1:]:
            run.events[name] = {"status": "Pending"}
        try:
            spec = read_appspec(deployment.revision)
        except ValueError as exc:
            self._fail(run, backend, deployment, "INVALID_REVISION", str(exc), rollback=False)
            return run
        run.function, run.alias = spec["function"], spec["alias"]
        run.current, run.target, run.hooks = spec["current"], spec["target"], spec["hooks"]
        group = backend.deployment_groups.get(deployment.application_name, {}).get(
            deployment.deployment_group_name)
        try:
            config = deployment_config(backend, str(deployment.deployment_config_name
                                                    or group.deployment_config_name))
        except Exception as exc:
            self._fail(run, backend, deployment, "INVALID_REVISION", str(exc), rollback=False)
            return run
        routing = config.get("trafficRoutingConfig") or {"type": "AllAtOnce"}
        run.routing = routing.get("type", "AllAtOnce")
        inner = routing.get("timeBasedCanary") or routing.get("timeBasedLinear") or {}
        run.percentage = int(inner.get("canaryPercentage") or inner.get("linearPercentage") or 0)
        interval = float(inner.get("canaryInterval") or inner.get("linearInterval") or 0)
        # CodeDeploy's own configs last the minutes their names say; ours count seconds.
        run.interval_s = interval * 60 if config["deploymentConfigName"] in LAMBDA_CONFIGS \
            else interval
        alarms = (group.alarm_configuration if group is not None else None) or {}
        if not isinstance(alarms, dict):
            alarms = {"enabled": alarms.enabled, "alarms": alarms.alarms}
        if alarms.get("enabled"):
            run.alarms = [str(a.get("name")) for a in alarms.get("alarms") or []]
        rollback = deployment.auto_rollback_configuration or (
            group.auto_rollback_configuration if group is not None else None) or {}
        if rollback.get("enabled"):
            run.rollback_events = list(rollback.get("events") or [])
        served = self._alias(run)
        if served is None or served["FunctionVersion"] != run.current:
            what = ("does not exist" if served is None else
                    f"serves version {served['FunctionVersion']}")
            self._fail(run, backend, deployment, "INVALID_LAMBDA_CONFIGURATION",
                       f"The alias {run.alias} of {run.function} {what}, not the AppSpec's "
                       f"CurrentVersion {run.current}", rollback=False)
            return run
        log.info("deployment %s: %s:%s %s → %s (%s)", run.deployment_id, run.function,
                 run.alias, run.current, run.target, config["deploymentConfigName"])
        return run

    def _advance(self, run: Run, backend: Any, deployment: Any) -> bool:
        """Move ``run`` on; whether anything changed."""
        now = self.clock()
        stop = deployment.mlops_stop
        if stop is not None:
            rollback = stop.get("rollback")
            if rollback is None:
                rollback = "DEPLOYMENT_STOP_ON_REQUEST" in run.rollback_events
            self._end(run, backend, deployment, "Stopped", "MANUAL_STOP", STOP_MESSAGE,
                      bool(rollback))
            return True
        firing = self._alarms_firing(run)
        if firing:
            self._end(run, backend, deployment, "Stopped", "ALARM_ACTIVE",
                      ALARM_MESSAGE.format(", ".join(firing)),
                      "DEPLOYMENT_STOP_ON_ALARM" in run.rollback_events)
            return True
        if run.phase in HOOKED:
            return self._hook(run, backend, deployment, now)
        if run.phase == "AllowTraffic":
            return self._shift(run, now)
        if run.phase == "End":
            run.event("End", "Succeeded", now)
            run.status, run.completed, run.phase = "Succeeded", now, "Done"
            log.info("deployment %s succeeded", run.deployment_id)
            self._emit(run, deployment, "SUCCESS")
            return True
        return False

    def _next_phase(self, run: Run) -> None:
        run.phase = EVENTS[EVENTS.index(run.phase) + 1]

    def _hook(self, run: Run, backend: Any, deployment: Any, now: float) -> bool:
        event = run.phase
        function = run.hooks.get(event)
        if function is None:
            run.event(event, "Skipped", now)
            self._next_phase(run)
            return True
        if not run.hook_id:
            run.hook_id = str(uuid.uuid4())
            run.hook_started = now
            deployment.mlops_hooks[run.hook_id] = {"event": event}
            run.event(event, "InProgress", now)
        status = (deployment.mlops_hooks.get(run.hook_id) or {}).get("status")
        refused = None
        if status is None and run.hook_id not in self._submitted:
            # Invoked asynchronously, as CodeDeploy does (the local Lambda service retries a
            # failed invocation twice); again after a restart took the invocation down.
            refused = self._call(run, function)
        if status == "Succeeded":
            run.event(event, "Succeeded", now)
            run.hook_id = ""
            self._next_phase(run)
            return True
        if status == "Failed" or refused or now - run.hook_started >= self.hook_timeout_s:
            why = ("reported Failed" if status == "Failed" else refused if refused
                   else f"no status within {self.hook_timeout_s:g} s")
            run.event(event, "Failed", now, why)
            self._end(run, backend, deployment, "Failed", "HOOK_EXECUTION_FAILURE",
                      HOOK_MESSAGE.format(event, why), "DEPLOYMENT_FAILURE" in run.rollback_events)
            return True
        return run.hook_started == now

    def _call(self, run: Run, function: str) -> str | None:
        """Invoke the hook; why it could not be invoked, or None."""
        self._submitted.add(run.hook_id)
        run.hook_attempts += 1
        event = {"DeploymentId": run.deployment_id, "LifecycleEventHookExecutionId": run.hook_id}
        try:
            self.invoke(function, event)
        except Exception as exc:  # no such function: Lambda refuses it before it answers
            return f"{function} could not be invoked: {exc}"
        log.info("deployment %s: %s invoked (%s)", run.deployment_id, function, run.phase)
        return None

    def _shift(self, run: Run, now: float) -> bool:
        weights = run.weights
        if run.step < 0:
            run.event("AllowTraffic", "InProgress", now)
        elif run.step < len(weights) - 1 and now - run.step_started < run.interval_s:
            return False  # baking
        if run.step >= len(weights) - 1:
            run.event("AllowTraffic", "Succeeded", now)
            self._next_phase(run)
            return True
        run.step += 1
        run.step_started = now
        self._route(run, weights[run.step])
        if run.step == len(weights) - 1:
            run.event("AllowTraffic", "Succeeded", now)
            self._next_phase(run)
        return True

    def _route(self, run: Run, weight: float) -> None:
        """Point the alias: ``weight`` % on the target version, the rest on the current."""
        lam = self.client("lambda", run.region)
        if weight >= 100:
            lam.update_alias(FunctionName=run.function, Name=run.alias,
                             FunctionVersion=run.target,
                             RoutingConfig={"AdditionalVersionWeights": {}})
        elif weight <= 0:
            lam.update_alias(FunctionName=run.function, Name=run.alias,
                             FunctionVersion=run.current,
                             RoutingConfig={"AdditionalVersionWeights": {}})
        else:
            lam.update_alias(FunctionName=run.function, Name=run.alias,
                             FunctionVersion=run.current, RoutingConfig={
                                 "AdditionalVersionWeights": {run.target: round(weight / 100, 4)}})
        run.weight = weight
        log.info("deployment %s: %g%% on version %s", run.deployment_id, weight, run.target)
        if self.after_shift is not None:
            self.after_shift()

    def _alias(self, run: Run) -> dict[str, Any] | None:
        try:
            got: dict[str, Any] = self.client("lambda", run.region).get_alias(
                FunctionName=run.function, Name=run.alias)
        except Exception:
            return None
        return got

    def _alarms_firing(self, run: Run) -> list[str]:
        if not run.alarms:
            return []
        try:
            found = self.client("cloudwatch", run.region).describe_alarms(
                AlarmNames=run.alarms).get("MetricAlarms", [])
        except Exception as exc:
            log.info("deployment %s: alarms not read: %s", run.deployment_id, exc)
            return []
        return sorted(a["AlarmName"] for a in found if a.get("StateValue") == "ALARM")

    def _fail(self, run: Run, backend: Any, deployment: Any, code: str, message: str, *,
              rollback: bool) -> None:
        self._end(run, backend, deployment, "Failed", code, message, rollback)
        self._mirror(run, deployment)

    def _end(self, run: Run, backend: Any, deployment: Any, status: str, code: str,
             message: str, rollback: bool) -> None:
        now = self.clock()
        for name in EVENTS:
            entry = run.events.setdefault(name, {"status": "Pending"})
            if entry["status"] == "InProgress":
                run.event(name, "Failed", now, message)
            elif entry["status"] == "Pending":
                run.event(name, "Skipped", now)
        run.status, run.completed, run.phase = status, now, "Done"
        run.error = {"code": code, "message": message}
        run.hook_id = ""
        log.info("deployment %s %s: %s", run.deployment_id, status.lower(), message)
        self._emit(run, deployment, STATES[status])  # published once mirrored, rollback too
        if rollback and run.function:
            self._roll_back(run, backend, deployment)

    def _roll_back(self, run: Run, backend: Any, deployment: Any) -> None:
        """Traffic back on CurrentVersion alone, and a rollback deployment that says so."""
        if run.weight > 0 or (self._alias(run) or {}).get("FunctionVersion") != run.current:
            self._route(run, 0)
        deployment.mlops_rolling_back = True  # not active: its rollback may be created
        spec = {"version": 0.0, "Resources": [{run.function: {
            "Type": "AWS::Lambda::Function", "Properties": {
                "Name": run.function, "Alias": run.alias, "CurrentVersion": run.target,
                "TargetVersion": run.current}}}]}
        try:
            made = self.client("codedeploy", run.region).create_deployment(
                applicationName=deployment.application_name,
                deploymentGroupName=deployment.deployment_group_name,
                deploymentConfigName="CodeDeployDefault.LambdaAllAtOnce",
                description=f"Rollback of {run.deployment_id}",
                revision={"revisionType": "AppSpecContent",
                          "appSpecContent": {"content": json.dumps(spec)}})
        except Exception as exc:
            log.warning("rollback deployment of %s not recorded: %s", run.deployment_id, exc)
            run.rollback = {"rollbackMessage": f"Traffic returned to version {run.current}"}
            return
        finally:
            deployment.mlops_rolling_back = False
        rollback_id = str(made["deploymentId"])
        now = self.clock()
        back = Run(deployment_id=rollback_id, region=run.region, function=run.function,
                   alias=run.alias, current=run.target, target=run.current,
                   status="Succeeded", phase="Done", started=now, completed=now,
                   weight=100.0, creator="codeDeployRollback",
                   rollback={"rollbackTriggeringDeploymentId": run.deployment_id})
        for name in EVENTS:
            back.event(name, "Skipped" if name in HOOKED else "Succeeded", now)
        self.runs[rollback_id] = back
        created = backend.deployments.get(rollback_id)
        if created is not None:
            self._mirror(back, created)
            self._emit(back, created, "START")
            self._emit(back, created, "SUCCESS")
        run.rollback = {"rollbackDeploymentId": rollback_id,
                        "rollbackMessage": f"The deployment was rolled back by deployment "
                                           f"{rollback_id}: version {run.current} serves all "
                                           "traffic again"}

    # -- what clients read ------------------------------------------------------------
    def _mirror(self, run: Run, deployment: Any) -> None:
        """Set moto's record to ``run``: what GetDeployment and GetDeploymentTarget answer."""
        deployment.status = run.status
        deployment.creator = run.creator
        deployment.start_time = datetime.fromtimestamp(run.started, UTC)
        deployment.complete_time = (datetime.fromtimestamp(run.completed, UTC)
                                    if run.completed is not None else None)
        deployment.mlops_error = dict(run.error)
        deployment.mlops_rollback = dict(run.rollback)
        target_status = {"Succeeded": "Succeeded", "Failed": "Failed", "Stopped": "Failed"
                         }.get(run.status, "InProgress")
        overview = dict.fromkeys(("Pending", "InProgress", "Succeeded", "Failed", "Skipped",
                                  "Ready"), 0)
        overview[target_status] = 1
        deployment.deployment_overview = overview
        if not run.function:
            return
        deployment.mlops_target = {
            "deploymentId": run.deployment_id, "targetId": f"{run.function}:{run.alias}",
            "targetArn": f"{run.function}:{run.alias}", "status": target_status,
            "lastUpdatedAt": datetime.fromtimestamp(max(
                [run.started, run.completed or 0.0, run.step_started, run.hook_started]), UTC),
            "lifecycleEvents": [self._lifecycle(name, run.events.get(name) or {})
                                for name in EVENTS],
            "lambdaFunctionInfo": {"functionName": run.function, "functionAlias": run.alias,
                                   "currentVersion": run.current,
                                   "targetVersion": run.target,
                                   "targetVersionWeight": round(run.weight / 100, 4)}}

    @staticmethod
    def _lifecycle(name: str, entry: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"lifecycleEventName": name,
                               "status": entry.get("status", "Pending")}
        if "start" in entry:
            out["startTime"] = datetime.fromtimestamp(entry["start"], UTC)
        if "end" in entry:
            out["endTime"] = datetime.fromtimestamp(entry["end"], UTC)
        if entry.get("message"):
            out["diagnostics"] = {"errorCode": "ScriptFailed" if entry["status"] == "Failed"
                                  else "Success", "message": entry["message"][:1000]}
        return out


def local_backends(account: str) -> Callable[[], Iterator[tuple[str, Any]]]:
    """The local account's CodeDeploy backends, by region (moto's, in this process)."""

    def each() -> Iterator[tuple[str, Any]]:
        from moto.codedeploy.models import codedeploy_backends

        per_account = dict.get(codedeploy_backends, account)
        if not per_account:
            return
        for region, backend in list(dict.items(per_account)):
            if backend.deployments:
                yield region, backend

    return each
