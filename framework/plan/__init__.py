"""Plan: deployed state and the pure diff that yields typed actions. Never imports boto3."""

from framework.plan.planner import Action, Op, Plan, make_plan
from framework.plan.state import Entry, State

__all__ = ["Action", "Entry", "Op", "Plan", "State", "make_plan"]
