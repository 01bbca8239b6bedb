"""What every resource kind is made of: typed properties, rules, provider calls, a
CloudFormation form.

A kind's properties are a frozen dataclass (a subclass of ``Props``) whose fields are the
properties, in the order compile writes them. ``from_props`` builds one from the JSON-able dict
the graph, a plan and the state hold (refuses a key it does not know, and a missing required
one); ``to_props`` gives that dict back exactly. A value may be a ref (``{"$ref": ...}``) until
apply resolves it. An optional property that is not set is ``ABSENT`` and left out of the dict.

Pure: importing a kind loads neither boto3 nor botocore (compile and plan import them). The
provider calls receive a ``Context`` (``framework.providers.aws``) for clients and the shared
retry and wait helpers; AWS errors reach them as ``Refused``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, Self, TypeVar

from framework.errors import DeployError

if TYPE_CHECKING:
    from framework.plan.state import Entry, State
    from framework.providers.aws import Context

# Error codes of a request that conflicts with the resource's state (AWS says the first for
# Lambda, moto both; API Gateway the second).
CONFLICT = frozenset({"ResourceConflictException", "ConflictException"})
# What a CloudFormation template's Fn::Sub fills in (``mlops synth`` compiles with these).
ACCOUNT = "${AWS::AccountId}"
REGION = "${AWS::Region}"

Ref = dict[str, str]  # {"$ref": logical id, "attr": output, "format"?: "...{}..."}
Outputs = dict[str, Any]
CfnResource = dict[str, Any]  # one resource of a template: {"Type": ..., "Properties": ...}


class Absent:
    """The value of an optional property that is not set (falsy, like a missing key)."""

    _instance: ClassVar[Absent | None] = None

    def __new__(cls) -> Absent:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __bool__(self) -> Literal[False]:
        return False

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT = Absent()
T = TypeVar("T")


def unset_is_none(value: T | Absent) -> T | None:
    """``value``, or None for a property that is not set (as ``dict.get`` gave)."""
    return None if isinstance(value, Absent) else value


class PropsError(ValueError):
    """Properties that are not those of their kind: a key misspelt, or one missing."""


def _names(cls: type[Props]) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def _required(cls: type[Props]) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]


@dataclass(frozen=True, kw_only=True)
class Props:
    """Typed properties of one kind; subclasses are frozen, keyword-only dataclasses."""

    kind: ClassVar[str]

    @classmethod
    def from_props(cls, data: Mapping[str, Any]) -> Self:
        """The typed form of ``data``; an unknown or a missing required key is an error."""
        known = _names(cls)
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise PropsError(f"{cls.kind}: unknown propert{'y' if len(unknown) == 1 else 'ies'} "
                             f"{', '.join(repr(k) for k in unknown)} (known: {', '.join(known)})")
        missing = [k for k in _required(cls) if k not in data]
        if missing:
            raise PropsError(f"{cls.kind}: missing propert{'y' if len(missing) == 1 else 'ies'} "
                             f"{', '.join(repr(k) for k in missing)}")
        return cls(**data)

    @classmethod
    def from_state(cls, data: Mapping[str, Any]) -> Self:
        """The typed form of properties recorded in a state, which an older version may have
        written: keys since removed are ignored, keys since added are ``ABSENT``. Only for
        reading what is deployed (delete, exists, the properties before an update)."""
        return cls(**{k: data.get(k, ABSENT) for k in _names(cls)})

    def to_props(self) -> dict[str, Any]:
        """The JSON-able dict, in field order, without the properties that are not set."""
        out = {}
        for name in _names(type(self)):
            value = getattr(self, name)
            if value is not ABSENT:
                out[name] = value
        return out


P = TypeVar("P", bound=Props)


@dataclass(frozen=True)
class Deployed(Generic[P]):
    """A deployed resource as its kind's calls read it: the recorded properties (refs
    unresolved) and the outputs the provider reported."""

    props: P
    outputs: Outputs


@dataclass(frozen=True)
class Refused:
    """An error answer of an AWS API, as a kind's calls see it."""

    code: str
    message: str
    status: int | None
    error: Exception  # the client error, to chain from

    MISSING_CODES: ClassVar[frozenset[str]] = frozenset({
        "NoSuchEntity", "ResourceNotFoundException", "NotFoundException", "NoSuchBucket",
        "NoSuchKey", "404", "NotFound"})

    @property
    def missing(self) -> bool:
        """The resource asked about does not exist."""
        return self.code in self.MISSING_CODES


# -- the CloudFormation form of a kind ---------------------------------------------------------


@dataclass(frozen=True)
class Stack(Generic[P]):
    """A stack resource: ``form`` gives its template body (refs still as the graph has them).
    ``attrs`` names the CloudFormation attribute of each output other resources refer to
    (``"Ref"``: the Ref value); ``outputs`` are template Outputs: name → attribute."""

    form: Callable[[P], CfnResource]
    attrs: Mapping[str, str] = field(default_factory=dict)
    outputs: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class InRegistry:
    """Registry content: made before the stack (it outlives any one), listed in the template's
    Metadata with its bucket, key or prefix and SHA-256."""


@dataclass(frozen=True)
class FoldedInto(Generic[P]):
    """Part of another resource's template: ``item(props)`` is appended to the ``key`` list of
    the properties of the ``parent`` kind it depends on."""

    parent: str
    key: str
    item: Callable[[P], dict[str, Any]]


@dataclass(frozen=True)
class Implicit:
    """Not a resource of the template: what the stack does by itself (``why``), e.g. a
    CodeDeploy deployment, which CloudFormation starts through the alias's UpdatePolicy."""

    why: str


CloudFormation = Stack[P] | InRegistry | FoldedInto[P] | Implicit


def cfn_tags(tags: Mapping[str, str]) -> list[dict[str, str]]:
    """Tags as CloudFormation (and most AWS APIs) list them: sorted Key/Value pairs."""
    return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]


# -- the kind --------------------------------------------------------------------------------

LockItem = tuple[str, str | None, dict[str, Any]]  # (section, key or None for the whole, value)


@dataclass(frozen=True)
class Kind(Generic[P]):
    """Everything about one resource kind, registered in ``framework.resources.KINDS``."""

    props: type[P]
    services: tuple[str, ...]  # the AWS services its calls create clients for
    # Properties whose change means a new physical resource; "*": any change does.
    replace_on: frozenset[str]
    create: Callable[[Context, P], Outputs]
    update: Callable[[Context, P, Deployed[P] | None], Outputs]
    delete: Callable[[Context, Deployed[P], bool], None]  # (..., destroying)
    exists: Callable[[Context, Deployed[P]], bool]
    cloudformation: CloudFormation[P]
    # How a replace is done, when not by delete then create (e.g. publish another version).
    replace: Callable[[Context, P, Deployed[P]], Outputs] | None = None
    retained: bool = False  # a delete short of a destroy leaves it in the registry
    # Properties checked before a version ships, not deployed: changing them alone changes
    # nothing.
    checked_only: frozenset[str] = frozenset()
    # What a delete short of a destroy leaves behind ("version kept in the registry"), if any.
    kept: Callable[[P], str | None] | None = None
    # Why the desired properties may not replace the deployed ones (bytes of a released
    # version), or None.
    immutable: Callable[[P, P], str | None] | None = None
    # What the kind records in mlops.lock for a deployed resource (logical id, properties, the
    # whole state), if anything.
    lock: Callable[[str, P, State], LockItem | None] | None = None
    # What is live now, for a resource that changes outside apply (an alias a CodeDeploy
    # deployment moves; the deployment itself): outputs as ``create`` gives them, or None when
    # nothing can be read. The plan records what it finds (``framework.plan.planner``).
    observe: Callable[[Context, Deployed[P]], Outputs | None] | None = None

    @property
    def name(self) -> str:
        return self.props.kind

    def parse(self, props: Mapping[str, Any]) -> P:
        return self.props.from_props(props)

    def view(self, entry: Entry) -> Deployed[P]:
        return Deployed(self.props.from_state(entry.props), entry.outputs)


class UnknownKindError(DeployError, ValueError):
    """A resource kind no module registers (a state or plan of another mlops version)."""

    def __init__(self, kind: str) -> None:
        super().__init__(f"unknown resource kind '{kind}'",
                         hint="the kinds are registered in framework/resources/__init__.py; a "
                              "state or plan that names another was written by another mlops "
                              "version: use that version")
