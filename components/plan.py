"""Pure plans the components walk: names and tags, droplet placement, cloud firewall rules,
managed load balancer forwarding. No Pulumi here: the plans are plain frozen values, tested
directly and compared against the resources the components register.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from topology.errors import ConfigError, Problem
from topology.model import Flow, PortRange, Source, Stack, managed_lb_label, merge_ranges

ANYWHERE = ("0.0.0.0/0", "::/0")
DO_NAME = re.compile(r"[^A-Za-z0-9-]+")


# --- names -------------------------------------------------------------------------------------

def _slug(text: str) -> str:
    """DigitalOcean names and tags: letters, digits and dashes (tags also allow `:` and `_`)."""
    return DO_NAME.sub("-", text).strip("-").lower()


def stack_tag(stack: Stack) -> str:
    """Carried by every droplet of the stack (the policy pack and `doctl` filter on it)."""
    return f"enclave-{_slug(stack.name)}"


def role_tag(stack: Stack, role: str) -> str:
    """Per stack and role: cloud firewalls apply by tag account-wide, so the stack is in it."""
    return f"enclave-{_slug(stack.name)}-{role}"


def resource_name(stack: Stack, *parts: str) -> str:
    return "-".join(["enclave", _slug(stack.name), *parts])


# --- which roles become droplets -------------------------------------------------------------

def managed_lb_role(stack: Stack) -> str | None:
    """The haproxy role that DigitalOcean's managed load balancer stands for in managed mode."""
    if stack.load_balancer != "managed":
        return None
    return next(r.name for r in stack.roles if r.profile == "haproxy")


def haproxy_lb_roles(stack: Stack) -> tuple[str, ...]:
    """Roles served by haproxy droplets (the LoadBalancer component owns them in haproxy mode)."""
    if stack.load_balancer != "haproxy":
        return ()
    return tuple(r.name for r in stack.roles if r.profile == "haproxy")


def has_load_balancer(stack: Stack) -> bool:
    """A stack without a haproxy role (evergreen, amanda, ...) has no LoadBalancer component."""
    return any(r.profile == "haproxy" for r in stack.roles)


def group_roles(stack: Stack) -> tuple[str, ...]:
    """Roles built as plain RoleGroups: not the tunnel, not a load balancer role."""
    skip = {stack.tunnel_role, managed_lb_role(stack), *haproxy_lb_roles(stack)}
    return tuple(r.name for r in stack.roles if r.name not in skip)


def droplet_hosts(stack: Stack) -> tuple[str, ...]:
    """Every host that is a droplet, in plan order (the managed load balancer is not one)."""
    virtual = managed_lb_role(stack)
    return tuple(h.name for h in stack.hosts if h.role != virtual)


# --- cloud firewall -------------------------------------------------------------------------------

MAX_TAGS_PER_FIREWALL = 5  # DigitalOcean API limit
MAX_RULES_PER_FIREWALL = 50  # inbound and outbound rules together


@dataclass(frozen=True)
class FirewallRule:
    """One DigitalOcean firewall rule; peers are addresses, droplet tags or the managed LB."""

    protocol: str  # tcp | udp | icmp
    port_range: str | None  # "80", "24007-24008", "1-65535"; None for icmp
    addresses: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    load_balancer: bool = False  # the stack's managed load balancer (its uid is known at deploy)


@dataclass(frozen=True)
class FirewallPlan:
    role: str
    name: str
    tags: tuple[str, ...]
    inbound: tuple[FirewallRule, ...]
    outbound: tuple[FirewallRule, ...]


def port_range_text(r: PortRange) -> str:
    return str(r.first) if r.first == r.last else f"{r.first}-{r.last}"


class _RuleSet:
    """Rules keyed by (protocol, ports): one rule per port range, sources unioned (OR)."""

    def __init__(self) -> None:
        self._rules: dict[tuple[str, str | None], dict] = {}

    def add(self, protocol: str, ports: tuple[PortRange, ...], *, addresses=(), tags=(), load_balancer=False) -> None:
        ranges = [port_range_text(r) for r in merge_ranges(ports)] if protocol != "icmp" else [None]
        for text in ranges:
            rule = self._rules.setdefault((protocol, text), {"addresses": [], "tags": [], "lb": False})
            rule["addresses"] += [a for a in addresses if a not in rule["addresses"]]
            rule["tags"] += [t for t in tags if t not in rule["tags"]]
            rule["lb"] = rule["lb"] or load_balancer

    def rules(self) -> tuple[FirewallRule, ...]:
        return tuple(
            FirewallRule(proto, ports, tuple(r["addresses"]), tuple(r["tags"]), r["lb"])
            for (proto, ports), r in self._rules.items()
        )


def _peer(stack: Stack, source: Source) -> dict:
    lb = managed_lb_role(stack)
    if lb is not None and source.label == managed_lb_label(lb):
        return {"load_balancer": True}  # narrower than the VPC range the host rules admit
    if source.role is None:
        return {"addresses": source.networks}
    return {"tags": (role_tag(stack, source.role),)}


def _inbound(stack: Stack, role: str) -> tuple[FirewallRule, ...]:
    rules = _RuleSet()
    for flow in stack.flows_to(role):
        rules.add(flow.proto, flow.ports, **_peer(stack, flow.source))
    spec = stack.role(role)
    if spec.nat is not None:
        for pf in spec.nat.port_forwards:  # DNAT: arrives at the gateway's public side
            rules.add(pf.proto, pf.ports, addresses=pf.source.networks)
        routed = tuple(role_tag(stack, r.name) for r in stack.roles if r.private_only)
        if routed:  # private-only hosts send everything through the gateway (FORWARD chain)
            for proto in ("tcp", "udp"):
                rules.add(proto, (PortRange(1, 65535),), tags=routed)
            rules.add("icmp", (), tags=routed)
    return rules.rules()


def _outbound(stack: Stack, role: str) -> tuple[FirewallRule, ...]:
    spec = stack.role(role)
    rules = _RuleSet()
    if spec.egress == "accept":
        for proto in ("tcp", "udp"):
            rules.add(proto, (PortRange(1, 65535),), addresses=ANYWHERE)
        rules.add("icmp", (), addresses=ANYWHERE)
        return rules.rules()
    flow: Flow
    for flow in stack.flows_from(role):
        rules.add(flow.proto, flow.ports, **({"load_balancer": True} if flow.to == managed_lb_role(stack) else {"tags": (role_tag(stack, flow.to),)}))
    for rule in spec.egress_allow:
        rules.add(rule.proto, rule.ports or (PortRange(1, 65535),), addresses=(rule.to,))
    return rules.rules()


def plan_cloud_firewalls(stack: Stack) -> tuple[FirewallPlan, ...]:
    """One firewall per droplet role, attached by the role's tag, mirroring the flows.

    DigitalOcean cannot tell interfaces apart or match ICMP types: a flow's rule admits its
    protocol and ports from its peers on any interface, and ICMP of every type. The host's
    iptables rules stay the precise layer; this is the coarser second one (decision 6).
    """
    virtual = managed_lb_role(stack)
    plans, problems = [], []
    for role in stack.roles:
        if role.name == virtual:
            continue
        plan = FirewallPlan(role.name, role_tag(stack, role.name), (role_tag(stack, role.name),),
                            _inbound(stack, role.name), _outbound(stack, role.name))
        if len(plan.tags) > MAX_TAGS_PER_FIREWALL:
            problems.append(Problem(f"enclave:roles.{role.name}", f"a cloud firewall takes at most {MAX_TAGS_PER_FIREWALL} tags"))
        total = len(plan.inbound) + len(plan.outbound)
        if total > MAX_RULES_PER_FIREWALL:
            problems.append(Problem("enclave:flows", f"role '{role.name}' needs {total} cloud firewall rules; DigitalOcean allows {MAX_RULES_PER_FIREWALL} (merge port ranges)"))
        plans.append(plan)
    if problems:
        raise ConfigError(problems)
    return tuple(plans)


# --- managed load balancer ---------------------------------------------------------------------

ENTRY_PROTOCOLS = {80: "http"}  # port -> protocol; other ports are passed through as tcp
MAX_FORWARDED_RANGE = 16  # a forwarding rule is one port; wider ranges are not expanded


@dataclass(frozen=True)
class ForwardingRule:
    entry_port: int
    entry_protocol: str
    target_port: int
    target_protocol: str


@dataclass(frozen=True)
class ManagedLbPlan:
    """DigitalOcean's load balancer in the VPC, standing for role `role`, in front of `backend`."""

    name: str
    role: str
    backend: str
    backend_tag: str
    rules: tuple[ForwardingRule, ...]
    healthcheck_port: int
    allow: tuple[str, ...]  # LB firewall `cidr:` allows; empty when the internet may connect
    unforwarded: tuple[int, ...]  # entry ports with no backend port to send them to


def _ports(flows: tuple[Flow, ...]) -> list[int]:
    out: list[int] = []
    for flow in flows:
        for r in flow.ports:
            if flow.proto == "tcp" and r.width <= MAX_FORWARDED_RANGE:
                out += [p for p in range(r.first, r.last + 1) if p not in out]
    return out


def plan_managed_lb(stack: Stack) -> ManagedLbPlan | None:
    """Forwarding rules: each public tcp port of the LB role goes to the same port of the backend.

    An entry port the backend flow does not admit (443 when `lb -> wordpress` is port 80) is not
    forwarded: passing TLS to a plain HTTP port would be wrong, and terminating TLS needs a
    certificate the stack does not name. Such ports are listed in `unforwarded`.
    """
    role = managed_lb_role(stack)
    if role is None:
        return None
    entry_flows = tuple(f for f in stack.flows_to(role) if f.source.kind == "networks" and not f.origin.startswith("ssh"))
    backend_flows = stack.flows_from_load_balancer(role)
    backends = sorted({f.to for f in backend_flows})
    problems = []
    if stack.role(role).count != 1:
        problems.append(Problem(f"enclave:roles.{role}.count", "managed mode makes one DigitalOcean load balancer: count must be 1"))
    if len(backends) != 1:
        problems.append(Problem("enclave:load_balancer", f"managed mode forwards to one role; flows from '{role}' go to {', '.join(backends) or 'no role'}"))
    entry = _ports(entry_flows)
    if not entry:
        problems.append(Problem("enclave:load_balancer", f"managed mode needs a tcp flow from the internet (or a CIDR) to '{role}'"))
    if problems:
        raise ConfigError(problems)
    targets = _ports(backend_flows)
    rules = []
    for port in entry:
        if port in targets:
            proto = ENTRY_PROTOCOLS.get(port, "tcp")
            rules.append(ForwardingRule(port, proto, port, proto))
    if not rules:
        raise ConfigError([Problem("enclave:load_balancer", f"no entry port of '{role}' ({', '.join(map(str, entry))}) is a port the flow to '{backends[0]}' admits")])
    networks = [n for f in entry_flows for n in f.source.networks]
    allow = () if any(f.source.label == "internet" for f in entry_flows) else tuple(f"cidr:{n}" for n in dict.fromkeys(networks))
    return ManagedLbPlan(
        name=resource_name(stack, role),
        role=role,
        backend=backends[0],
        backend_tag=role_tag(stack, backends[0]),
        rules=tuple(rules),
        healthcheck_port=rules[0].target_port,
        allow=allow,
        unforwarded=tuple(p for p in entry if p not in targets),
    )
