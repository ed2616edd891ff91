"""Which flows a role's rules admit, and which ipsets they name (pure, from the model)."""
from __future__ import annotations

from topology.model import Flow, Stack

from firewall import chains


def inbound(stack: Stack, role: str) -> tuple[Flow, ...]:
    """Flows into `role`: SSH first (implicit flows come first in the model), then the rest."""
    return stack.flows_to(role)


def outbound(stack: Stack, role: str) -> tuple[Flow, ...]:
    """Flows `role` originates (only enforced when its egress policy is drop)."""
    return stack.flows_from(role)


def referenced_sets(stack: Stack, role: str) -> tuple[str, ...]:
    """ipset names the role's rulesets use, in first-use order (deterministic)."""
    names: list[str] = []

    def add(name: str) -> None:
        if name not in names:
            names.append(name)

    for flow in inbound(stack, role):
        if flow.source.kind == "role":
            add(chains.role_set(flow.source.label))
        elif flow.source.label == "admin":
            add(chains.ADMIN_SET)
            add(chains.ADMIN_SET6)
    if stack.role(role).egress == "drop":
        for flow in outbound(stack, role):
            add(chains.role_set(flow.to))
    return tuple(names)
