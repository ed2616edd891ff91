"""The reachability matrix the model intends: who may reach what, with the flow that says so.

One pure function of the model, shared by every verifier: `enclave verify` (the generated rules
through the evaluator), the lab (real packets between namespaces) and the post-deploy suite.
Sources are actors: each host (from its private side), an internet outsider, another tenant on
the private network, an admin address, and each fixed network a flow or port forward names.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Iterable, Literal

from topology import plan
from topology.model import PRIVATE, PUBLIC, Flow, Stack

Side = Literal["private", "public"]
Kind = Literal["input", "dnat", "forward-out"]

# Ports probed on every destination although no flow may declare them.
UNDECLARED_TCP = (22, 23, 25, 80, 443, 3306, 5432, 6379, 8080)
UNDECLARED_UDP = (53, 161, 10080)


@dataclass(frozen=True)
class Actor:
    """A traffic source: a host (on its private side) or an outsider."""

    name: str  # host name, "internet", "tenant", "admin" or "net-<cidr>"
    side: Side
    address: str
    family: int = 4
    host: str | None = None
    role: str | None = None


@dataclass(frozen=True)
class Probe:
    """One connection attempt: source actor to an address and port of a destination."""

    source: Actor
    dest: str  # host name, or "internet" for forward-out probes
    dest_address: str
    interface: str  # the destination host's interface (eth0 public / eth1 private); "" for internet
    proto: Literal["tcp", "udp"]
    port: int
    kind: Kind = "input"
    target: str | None = None  # for dnat: the host the gateway forwards to

    def label(self) -> str:
        to = f"{self.dest}({self.interface})" if self.interface else self.dest
        via = f" via {self.target}" if self.target else ""
        return f"{self.source.name} -> {to} {self.proto}/{self.port}{via}"


@dataclass(frozen=True)
class Expectation:
    probe: Probe
    allowed: bool
    because: str  # the admitting flow's origin, or why nothing admits it


def actors(stack: Stack, representatives: bool = False) -> tuple[Actor, ...]:
    """Every source: hosts (or one per role), outsiders, and the fixed networks flows name."""
    out: list[Actor] = []
    seen_roles: set[str] = set()
    for h in stack.hosts:
        if representatives and h.role in seen_roles:
            continue
        seen_roles.add(h.role)
        out.append(Actor(h.name, "private", h.private_ip, 4, h.name, h.role))
    outside = plan.outsiders(stack.vpc_cidr, stack.admin_cidrs)
    out.append(Actor("internet", "public", outside.internet))
    if stack.ipv6:
        out.append(Actor("internet6", "public", outside.internet6, 6))
    out.append(Actor("tenant", "private", outside.tenant))
    out.append(Actor("admin", "public", outside.admin))
    for net in _named_networks(stack):
        first = ipaddress.ip_network(net)
        address = first.network_address if first.num_addresses == 1 else first.network_address + 1
        side: Side = "private" if first.version == 4 and first.subnet_of(ipaddress.ip_network(stack.vpc_cidr)) else "public"
        out.append(Actor(f"net-{net}", side, str(address), first.version))
    return tuple(out)


def _named_networks(stack: Stack) -> list[str]:
    nets: list[str] = []
    sources = [f.source for f in stack.flows if f.source.kind == "networks" and f.source.label not in ("internet", "admin")]
    for role in stack.roles:
        if role.nat:
            sources += [pf.source for pf in role.nat.port_forwards if pf.source.label not in ("internet", "admin")]
    for s in sources:
        for n in s.networks:
            if n not in nets:
                nets.append(n)
    return nets


def probe_ports(stack: Stack) -> tuple[tuple[str, int], ...]:
    """(proto, port) probed everywhere: every declared port's ends plus a fixed undeclared sample."""
    tcp, udp = set(UNDECLARED_TCP), set(UNDECLARED_UDP)
    flows = list(stack.flows)
    for role in stack.roles:
        if role.nat:
            flows += [Flow(pf.source, pf.to, pf.proto, pf.ports, PUBLIC) for pf in role.nat.port_forwards]
    for f in flows:
        target = tcp if f.proto == "tcp" else udp if f.proto == "udp" else None
        if target is None:
            continue
        for r in f.ports:
            target.update({r.first, r.last})
            if r.last - r.first > 1:
                target.add(r.last + 1 if r.last < 65535 else r.first - 1)  # just outside the range
    return tuple([("tcp", p) for p in sorted(tcp)] + [("udp", p) for p in sorted(udp)])


def _admits(flow: Flow, actor: Actor, interface: str, proto: str, port: int) -> bool:
    if flow.interface != interface or flow.proto != proto:
        return False
    if not any(port in r for r in flow.ports):
        return False
    if flow.source.kind == "role":
        return actor.role == flow.source.label and actor.side == "private"
    address = ipaddress.ip_address(actor.address)
    return any(address in ipaddress.ip_network(n) for n in flow.source.networks if ipaddress.ip_network(n).version == address.version)


def decide(stack: Stack, actor: Actor, role: str, interface: str, proto: str, port: int) -> tuple[bool, str]:
    """Whether a flow admits `actor` to hosts of `role` on `interface`, and which (or why not)."""
    return _decide(stack, actor, role, interface, proto, port)


def _decide(stack: Stack, actor: Actor, role: str, interface: str, proto: str, port: int) -> tuple[bool, str]:
    for flow in stack.flows_to(role):
        if _admits(flow, actor, interface, proto, port):
            return True, f"{flow.origin}: {flow.describe()}"
    return False, "no flow admits it"


def _input_probes(stack: Stack, sources: Iterable[Actor], ports) -> list[Expectation]:
    out = []
    decided: dict[tuple, list[tuple[bool, str]]] = {}  # hosts of a role share the answer (linear time)
    for dest in stack.hosts:
        for actor in sources:
            if actor.host == dest.name:
                continue  # a host reaching itself uses lo, which is always open
            if actor.side == "private":
                if actor.family != 4:
                    continue
                address, interface = dest.private_ip, PRIVATE
            elif actor.family == 6:
                address, interface = dest.public_ip6, PUBLIC
            else:
                address, interface = dest.public_ip, PUBLIC
            if address is None:
                continue
            key = (actor.name, dest.role, interface)
            if key not in decided:
                decided[key] = [_decide(stack, actor, dest.role, interface, proto, port) for proto, port in ports]
            for (proto, port), (allowed, because) in zip(ports, decided[key]):
                probe = Probe(actor, dest.name, address, interface, proto, port)
                out.append(Expectation(probe, allowed, because))
    return out


def _gateway_probes(stack: Stack, sources: Iterable[Actor], ports) -> list[Expectation]:
    """DNAT through the gateway's public side, and private-only hosts going out through it."""
    gateway = stack.gateway
    if gateway is None:
        return []
    role = stack.role(gateway.role)
    out = []
    for actor in sources:
        if actor.side != "public" or actor.family != 4:
            continue
        for proto, port in ports:
            for pf in role.nat.port_forwards:
                if pf.proto == proto and any(port in r for r in pf.ports):
                    address = ipaddress.ip_address(actor.address)
                    ok = any(address in ipaddress.ip_network(n) for n in pf.source.networks_of(4))
                    probe = Probe(actor, gateway.name, gateway.public_ip, PUBLIC, proto, port, "dnat", pf.to)
                    out.append(Expectation(probe, ok, f"{gateway.role} port forward to {pf.to}" if ok else "source not in the port forward"))
    outside = plan.outsiders(stack.vpc_cidr, stack.admin_cidrs)
    for host in stack.hosts:
        if not stack.role(host.role).private_only:
            continue
        actor = Actor(host.name, "private", host.private_ip, 4, host.name, host.role)
        for proto, port in (("tcp", 80), ("tcp", 443), ("udp", 53)):
            probe = Probe(actor, "internet", outside.internet, "", proto, port, "forward-out")
            ok = role.nat.masquerade
            out.append(Expectation(probe, ok, f"{gateway.name} masquerades the private side" if ok else "the gateway does not masquerade"))
    return out


def intended_matrix(stack: Stack, representatives: bool = False) -> tuple[Expectation, ...]:
    """Every probe with its intended outcome, in a deterministic order.

    With `representatives`, one host per role stands for its role as a source (hosts of a role
    are interchangeable in the rules, which name roles through ipsets): the matrix then grows
    linearly with the number of hosts.
    """
    sources = actors(stack, representatives)
    ports = probe_ports(stack)
    return tuple(_input_probes(stack, sources, ports) + _gateway_probes(stack, sources, ports))
