"""Compile: validated config → deterministic resource graph. Pure; never imports boto3."""

from framework.compile.compiler import (
    ArtifactInfo,
    CodeBundle,
    CompileContext,
    LayerBundle,
    compile_config,
    required_layers,
)
from framework.compile.graph import KINDS, Resource, ResourceGraph, ref, resolve

__all__ = [
    "KINDS",
    "ArtifactInfo",
    "CodeBundle",
    "CompileContext",
    "LayerBundle",
    "Resource",
    "ResourceGraph",
    "compile_config",
    "required_layers",
    "ref",
    "resolve",
]
