"""Physical names, derived by functions and never typed by hand.

The config limits project names to 24 characters and item names to 32, so every name below
fits its AWS limit; ``_fit`` still guards the limit with a stable hash suffix.
"""

from __future__ import annotations

import hashlib

LIMITS = {
    "codedeploy": 100,
    "alarm": 255,
    "bucket": 63,
    "function": 64,
    "role": 64,
    "rule": 64,
    "api": 128,
    "policy": 128,
}

ALIAS = "live"  # the alias every endpoint's route invokes
SHADOW_ALIAS = "shadow"  # the alias a shadow rollout points at its candidate while it runs
SHADOW_TAG = "mlops:shadow"  # function tag: the version mirrored with a copy of its traffic
DEFAULT_STAGE = "dev"


def _fit(name: str, limit: int) -> str:
    if len(name) <= limit:
        return name
    tail = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: limit - 9]}-{tail}"


def registry_bucket(project: str, account_id: str, region: str) -> str:
    return _fit(f"{project}-registry-{account_id}-{region}", LIMITS["bucket"])


def function_name(project: str, stage: str, endpoint: str) -> str:
    return _fit(f"{project}-{stage}-{endpoint}", LIMITS["function"])


def role_name(project: str, stage: str, endpoint: str) -> str:
    return _fit(f"{project}-{stage}-{endpoint}-fn", LIMITS["role"])


def policy_name(project: str, stage: str, endpoint: str) -> str:
    return _fit(f"{project}-{stage}-{endpoint}-access", LIMITS["policy"])


def log_group(function: str) -> str:
    return f"/aws/lambda/{function}"


def api_access_log(api: str) -> str:
    """The API's access log group (under /aws/vendedlogs/, as AWS advises for log groups
    written through log delivery, whose resource policy would otherwise grow per group)."""
    return f"/aws/vendedlogs/apigateway/{api}"


def log_group_arn(region: str, account_id: str, name: str) -> str:
    return f"arn:aws:logs:{region}:{account_id}:log-group:{name}"


def api_name(project: str, stage: str) -> str:
    return _fit(f"{project}-{stage}", LIMITS["api"])


def schedule_rule(project: str, stage: str, monitor: str) -> str:
    return _fit(f"{project}-{stage}-{monitor}", LIMITS["rule"])


def monitor_unit(monitor: str) -> str:
    """The item name of a monitor's function, role and logs (``mon-`` keeps it apart from
    endpoints, whose names are user-chosen)."""
    return f"mon-{monitor}"


def model_prefix(model: str, version: str) -> str:
    return f"models/{model}/{version}"


def code_key(sha256: str) -> str:
    return f"code/{sha256}.zip"


def capture_stream(project: str, stage: str, endpoint: str) -> str:
    return _fit(f"{project}-{stage}-{endpoint}-capture", LIMITS["function"])


def feedback_stream(project: str, stage: str, endpoint: str) -> str:
    return _fit(f"{project}-{stage}-{endpoint}-feedback", LIMITS["function"])


def layer_key(sha256: str) -> str:
    return f"layers/{sha256}.zip"


def layer_unit(need: str, runtime: str, architecture: str) -> str:
    """('serve', 'python3.13', 'x86_64') → 'serve-py313-x86_64': one layer's item name."""
    return f"{need}-{runtime.replace('python', 'py').replace('.', '')}-{architecture}"


def layer_name(project: str, stage: str, unit: str) -> str:
    return _fit(f"{project}-{stage}-{unit}", LIMITS["function"])


def codedeploy_app(project: str, stage: str) -> str:
    """The stage's CodeDeploy application."""
    return _fit(f"{project}-{stage}", LIMITS["codedeploy"])


def deployment_group(project: str, stage: str, endpoint: str) -> str:
    """An endpoint's CodeDeploy deployment group: named as its function."""
    return _fit(f"{project}-{stage}-{endpoint}", LIMITS["codedeploy"])


def deployment_config(project: str, stage: str, shape: str) -> str:
    """A CodeDeploy deployment config of the stage, named after its traffic shape (e.g.
    ``Canary10Percent15Seconds``, as CodeDeploy's own ``LambdaCanary10Percent5Minutes``)."""
    return _fit(f"{project}-{stage}-{shape}", LIMITS["codedeploy"])


def hook_unit(endpoint: str) -> str:
    """The item name of an endpoint's pre-traffic hook function, role and logs."""
    return f"hook-{endpoint}"


def holdout_key(model: str, sha256: str) -> str:
    """A model's hold-out data in the registry, addressed by content (the hooks read it)."""
    return f"holdout/{model}/{sha256}.csv"


def state_key(project: str, stage: str) -> str:
    return f"state/{project}/{stage}.json"


def lock_key(project: str, stage: str) -> str:
    return f"state/{project}/{stage}.lock"


def legacy_state_key(stage: str) -> str:
    """Where states were kept before they were keyed by project (read to migrate them)."""
    return f"state/{stage}.json"


def function_arn(region: str, account_id: str, function: str, qualifier: str = "") -> str:
    base = f"arn:aws:lambda:{region}:{account_id}:function:{function}"
    return f"{base}:{qualifier}" if qualifier else base


def stream_arn(region: str, account_id: str, stream: str) -> str:
    return f"arn:aws:firehose:{region}:{account_id}:deliverystream/{stream}"


def role_arn(account_id: str, role: str) -> str:
    return f"arn:aws:iam::{account_id}:role/{role}"


def oip_path(endpoint: str) -> str:
    """The Open Inference Protocol v2 model path of an endpoint (its name is the model name)."""
    return f"/v2/models/{endpoint}"


# Open Inference Protocol v2 server routes, answered by the project's first endpoint by name:
# (resource id suffix, route key, open to all). Liveness and readiness probes carry no
# credentials and reveal nothing; the server metadata takes the endpoint's auth.
SERVER_ROUTES = (
    ("v2-live", "GET /v2/health/live", True),
    ("v2-ready", "GET /v2/health/ready", True),
    ("v2-server", "GET /v2", False),
)


def endpoint_routes(route: str, endpoint: str) -> list[tuple[str, str]]:
    """(resource id suffix, route key) of an endpoint's routes besides its own ``route``."""
    path = route.split(" ", 1)[1].rstrip("/")
    v2 = oip_path(endpoint)
    return [
        ("feedback", f"POST {path}/feedback"),
        ("openapi", f"GET {path}/openapi.json"),
        ("v2-infer", f"POST {v2}/infer"),
        ("v2-metadata", f"GET {v2}"),
        ("v2-ready", f"GET {v2}/ready"),
    ]
