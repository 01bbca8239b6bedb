"""``mlops.yaml``: the schema (pydantic models), its loader and its JSON Schema.

Pure: no boto3, no network, no file access other than reading the YAML (and writing the
schema when asked).
"""

from framework.config.loader import LoadedConfig, load_config
from framework.config.models import (
    AuthMode,
    Config,
    Endpoint,
    Feature,
    FeatureType,
    Model,
    Monitor,
    TargetKind,
    Task,
)
from framework.config.schedule import Schedule, parse_schedule
from framework.config.schema import json_schema, write_schema
from framework.config.semver import SemVer

__all__ = [
    "AuthMode",
    "Config",
    "Endpoint",
    "Feature",
    "FeatureType",
    "LoadedConfig",
    "Model",
    "Monitor",
    "Schedule",
    "SemVer",
    "Task",
    "TargetKind",
    "json_schema",
    "load_config",
    "parse_schedule",
    "write_schema",
]
