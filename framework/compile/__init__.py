"""Compile: validated config → deterministic resource graph. Pure; never imports boto3."""

from framework.compile.compiler import ArtifactInfo, CodeBundle, CompileContext, compile_config
from framework.compile.graph import KINDS, Resource, ResourceGraph, ref, resolve

__all__ = [
    "KINDS",
    "ArtifactInfo",
    "CodeBundle",
    "CompileContext",
    "Resource",
    "ResourceGraph",
    "compile_config",
    "ref",
    "resolve",
]
