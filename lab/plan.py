"""The lab's network plan, computed purely from a Stack: namespaces, links, addresses, routes.

Topology (all inside lab-owned namespaces; the root namespace is never touched):
- a fabric namespace with two bridges, `brpub` (the public side, router addresses `.1`) and
  `brvpc` (the VPC, no address), forwarding on: it is the internet's router;
- one namespace per host: `eth0` on brpub (public address, default route via the fabric) unless
  private-only, `eth1` on brvpc (private address; private-only hosts route via the gateway);
- outsiders: the operator at the admin address, the internet (v4 + v6 and every public network a
  flow names) on point-to-point veths to the fabric; another tenant on brvpc.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from firewall.intent import Actor, actors
from lab import names
from topology.model import Stack

BR_PUBLIC = "brpub"
BR_VPC = "brvpc"


class LabPlanError(ValueError):
    """The stack cannot be laid out in the lab (names the reason)."""


@dataclass(frozen=True)
class Link:
    """A veth from the fabric (`fabric_dev`, on `bridge` or point-to-point) to `ns` as `dev`."""

    fabric_dev: str
    bridge: str | None
    ns: str
    dev: str
    addresses: tuple[str, ...]  # CIDR notation, in `ns`
    fabric_addresses: tuple[str, ...] = ()  # point-to-point links: the fabric's side


@dataclass(frozen=True)
class Namespace:
    name: str
    kind: str  # fabric | host | operator | outsider
    host: str | None = None
    routes: tuple[tuple[str, ...], ...] = ()  # `ip route add` arguments
    forwarding: bool = False
    actors: tuple[str, ...] = ()  # actor names whose probes leave from here


@dataclass(frozen=True)
class LabPlan:
    stack: str
    prefix: str
    fabric: str
    operator: str
    namespaces: tuple[Namespace, ...]
    bridges: tuple[tuple[str, tuple[str, ...]], ...]  # (bridge, its fabric addresses)
    links: tuple[Link, ...]
    public_net: str | None
    public_net6: str | None
    vpc_prefix: int

    def ns_of_host(self, host: str) -> str:
        return names.host_ns(self.stack, host)

    def ns_of_actor(self, actor: str) -> str:
        for ns in self.namespaces:
            if actor in ns.actors:
                return ns.name
        raise KeyError(actor)

    @property
    def host_namespaces(self) -> tuple[Namespace, ...]:
        return tuple(n for n in self.namespaces if n.kind == "host")


def covering(addresses: list[str], min_prefix: int) -> ipaddress._BaseNetwork:
    """The smallest network of at most `min_prefix` bits holding every address."""
    first = ipaddress.ip_address(addresses[0])
    net = ipaddress.ip_network(f"{first}/{min_prefix}", strict=False)
    while not all(ipaddress.ip_address(a) in net for a in addresses):
        net = net.supernet()
    return net


def _lab_network(address: str) -> ipaddress._BaseNetwork:
    ip = ipaddress.ip_address(address)
    return ipaddress.ip_network(f"{ip}/{24 if ip.version == 4 else 64}", strict=False)


def _free_address(net, taken: set[str]) -> str:
    for candidate in net.hosts():
        if str(candidate) not in taken:
            return str(candidate)
    raise LabPlanError(f"no free router address in {net}")


def _outsider_groups(stack: Stack, outside: list[Actor]) -> list[tuple[str, list[Actor]]]:
    """Public outsiders grouped into namespaces: the operator (admin's network) and the internet."""
    admin = next(a for a in outside if a.name == "admin")
    admin_net = _lab_network(admin.address)
    operator, internet = [], []
    for actor in outside:
        if actor.side != "public":
            continue
        (operator if ipaddress.ip_address(actor.address) in admin_net else internet).append(actor)
    return [("operator", operator), ("internet", internet)]


def _p2p(ns: str, dev_index: int, group: list[Actor], reserved: set[str]) -> tuple[Link, tuple]:
    """A point-to-point link to an outsider namespace: one network per distinct /24 or /64."""
    nets: dict = {}
    for actor in group:
        nets.setdefault(_lab_network(actor.address), []).append(actor.address)
    mine, fabric, routes = [], [], []
    for net, addrs in nets.items():
        for other in reserved:
            if ipaddress.ip_address(other) in net:
                raise LabPlanError(f"outsider network {net} overlaps the hosts' public addresses")
        router = _free_address(net, set(addrs))
        mine += [f"{a}/{net.prefixlen}" for a in dict.fromkeys(addrs)]
        fabric.append(f"{router}/{net.prefixlen}")
        if not any(ipaddress.ip_address(r[2]).version == net.version for r in routes):
            routes.append(("default", "via", router))
    link = Link(names.fabric_dev("o", dev_index), None, ns, "eth0", tuple(mine), tuple(fabric))
    return link, tuple(routes)


def lab_plan(stack: Stack) -> LabPlan:
    """The whole layout; raises LabPlanError when the stack's addresses cannot coexist."""
    s = stack.name
    public4 = [h.public_ip for h in stack.hosts if h.public_ip]
    public6 = [h.public_ip6 for h in stack.hosts if h.public_ip6]
    pub = covering(public4, 24) if public4 else None
    pub6 = covering(public6, 64) if public6 else None
    router4 = _free_address(pub, set(public4)) if pub else None
    router6 = _free_address(pub6, set(public6)) if pub6 else None
    vpc = ipaddress.ip_network(stack.vpc_cidr)
    gateway = stack.gateway
    namespaces = [Namespace(names.fabric_ns(s), "fabric", forwarding=True)]
    links: list[Link] = []
    for i, h in enumerate(stack.hosts):
        ns = names.host_ns(s, h.name)
        role = stack.role(h.role)
        routes: list[tuple[str, ...]] = []
        if h.public_ip:
            addrs = [f"{h.public_ip}/{pub.prefixlen}"] + ([f"{h.public_ip6}/{pub6.prefixlen}"] if h.public_ip6 else [])
            links.append(Link(names.fabric_dev("p", i), BR_PUBLIC, ns, "eth0", tuple(addrs)))
            routes.append(("default", "via", router4, "dev", "eth0"))
            if h.public_ip6:
                routes.append(("default", "via", router6, "dev", "eth0"))
        elif gateway is not None:
            routes.append(("default", "via", gateway.private_ip, "dev", "eth1"))
        links.append(Link(names.fabric_dev("v", i), BR_VPC, ns, "eth1", (f"{h.private_ip}/{vpc.prefixlen}",)))
        namespaces.append(Namespace(ns, "host", h.name, tuple(routes), role.forwards, (h.name,)))
    outside = [a for a in actors(stack) if a.host is None]
    reserved = set(public4 + public6)
    for j, (kind, group) in enumerate(_outsider_groups(stack, outside)):
        if not group:
            continue
        ns = names.operator_ns(s) if kind == "operator" else names.outsider_ns(s, kind)
        link, routes = _p2p(ns, j, group, reserved)
        links.append(link)
        namespaces.append(Namespace(ns, kind if kind == "operator" else "outsider", None, routes, False,
                                    tuple(a.name for a in group)))
    private = [a for a in outside if a.side == "private"]
    if private:
        ns = names.outsider_ns(s, "tenant")
        addrs = tuple(dict.fromkeys(f"{a.address}/{vpc.prefixlen}" for a in private))
        for a in private:
            if ipaddress.ip_address(a.address) not in vpc:
                raise LabPlanError(f"private-side source {a.name} ({a.address}) lies outside the VPC {vpc}")
        links.append(Link(names.fabric_dev("t", 0), BR_VPC, ns, "eth1", addrs))
        namespaces.append(Namespace(ns, "outsider", None, (), False, tuple(a.name for a in private)))
    bridges = [(BR_VPC, ())]
    if pub:
        bridges.insert(0, (BR_PUBLIC, tuple(x for x in (f"{router4}/{pub.prefixlen}", f"{router6}/{pub6.prefixlen}" if pub6 else None) if x)))
    return LabPlan(
        stack=s,
        prefix=names.prefix(s),
        fabric=names.fabric_ns(s),
        operator=names.operator_ns(s),
        namespaces=tuple(namespaces),
        bridges=tuple(bridges),
        links=tuple(links),
        public_net=str(pub) if pub else None,
        public_net6=str(pub6) if pub6 else None,
        vpc_prefix=vpc.prefixlen,
    )
