"""The validated, frozen model of a stack: roles, hosts, flows and the address plan.

Everything downstream (firewall, cloudinit, components, lab, verification) reads only these
types. Values are normalised on construction, so equal intent compares equal.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Literal

Proto = Literal["tcp", "udp", "icmp"]
Interface = Literal["eth0", "eth1"]  # DigitalOcean naming: eth0 public, eth1 private (VPC)
PUBLIC: Interface = "eth0"
PRIVATE: Interface = "eth1"


@dataclass(frozen=True, order=True)
class PortRange:
    """An inclusive port range; a single port has first == last."""

    first: int
    last: int

    def __post_init__(self) -> None:
        if not (1 <= self.first <= self.last <= 65535):
            raise ValueError(f"bad port range {self.first}-{self.last}")

    @property
    def width(self) -> int:
        return self.last - self.first + 1

    def iptables(self) -> str:
        """`80` or `24007:24008`, as iptables and ipset write ranges."""
        return str(self.first) if self.first == self.last else f"{self.first}:{self.last}"

    def __contains__(self, port: int) -> bool:
        return self.first <= port <= self.last

    def __str__(self) -> str:
        return str(self.first) if self.first == self.last else f"{self.first}-{self.last}"


def merge_ranges(ranges: tuple[PortRange, ...] | list[PortRange]) -> tuple[PortRange, ...]:
    """Sorted, with overlapping and adjacent ranges merged."""
    merged: list[PortRange] = []
    for r in sorted(ranges):
        if merged and r.first <= merged[-1].last + 1:
            merged[-1] = PortRange(merged[-1].first, max(merged[-1].last, r.last))
        else:
            merged.append(r)
    return tuple(merged)


@dataclass(frozen=True)
class Source:
    """Where a flow comes from: all hosts of a role, or fixed networks (internet, admin, CIDRs)."""

    kind: Literal["role", "networks"]
    label: str  # role name, "internet", "admin" or the CIDR text as written
    networks: tuple[str, ...] = ()  # normalised CIDRs for kind == "networks"

    @property
    def role(self) -> str | None:
        return self.label if self.kind == "role" else None

    def networks_of(self, family: int) -> tuple[str, ...]:
        return tuple(n for n in self.networks if ipaddress.ip_network(n).version == family)


def managed_lb_label(role: str) -> str:
    """The source label of flows sent by DigitalOcean's managed load balancer standing for `role`."""
    return f"{role} (managed load balancer)"


@dataclass(frozen=True)
class Flow:
    """Traffic the policy admits: from a source to every host of `to`, on one interface."""

    source: Source
    to: str
    proto: Proto
    ports: tuple[PortRange, ...]  # empty for icmp
    interface: Interface
    icmp_type: str | None = None
    origin: str = ""  # config path that declared it, e.g. "flows[3]" or "ssh"

    def describe(self) -> str:
        what = self.proto if not self.ports else f"{self.proto}/{','.join(map(str, self.ports))}"
        return f"{self.source.label} -> {self.to} {what} via {self.interface}"


@dataclass(frozen=True)
class PortForward:
    """DNAT on a gateway: traffic from `source` on the public side to the single host of `to`."""

    source: Source
    proto: Literal["tcp", "udp"]
    ports: tuple[PortRange, ...]
    to: str


@dataclass(frozen=True)
class Nat:
    masquerade: bool
    port_forwards: tuple[PortForward, ...] = ()


@dataclass(frozen=True)
class EgressRule:
    """An outbound destination allowed when a role's egress policy is drop."""

    to: str  # CIDR
    proto: Proto
    ports: tuple[PortRange, ...]


@dataclass(frozen=True)
class Role:
    name: str
    count: int
    profile: str
    size: str
    egress: Literal["accept", "drop"] = "accept"
    egress_allow: tuple[EgressRule, ...] = ()
    helpers: tuple[str, ...] = ()
    nat: Nat | None = None
    private_only: bool = False  # no public side; default route through the gateway
    final_action: Literal["drop", "reject"] = "drop"
    managed: bool = False  # DigitalOcean's managed load balancer stands for it: no droplets

    @property
    def forwards(self) -> bool:
        return self.nat is not None


@dataclass(frozen=True)
class Host:
    """One droplet: `<role>-<n>` with its planned addresses."""

    name: str
    role: str
    index: int  # 1-based within the role
    private_ip: str
    public_ip: str | None
    public_ip6: str | None


@dataclass(frozen=True)
class DropLog:
    rate: str = "5/min"
    burst: int = 10
    prefix: str = "enclave-drop: "


@dataclass(frozen=True)
class Stack:
    name: str
    region: str
    vpc_cidr: str
    admin_cidrs: tuple[str, ...]
    ssh_public_keys: tuple[str, ...]
    image: str
    load_balancer: Literal["haproxy", "managed"]
    drop_log: DropLog | None
    roles: tuple[Role, ...]
    flows: tuple[Flow, ...]  # implicit SSH flows first, then declared and derived ones
    hosts: tuple[Host, ...]
    tunnel_role: str = "tunnel"
    ipv6: bool = True
    _index: dict = field(default=None, compare=False, repr=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        # lookups by name stay O(1) for stacks of thousands of hosts
        by_role: dict[str, list[Host]] = {r.name: [] for r in self.roles}
        for h in self.hosts:
            by_role[h.role].append(h)
        object.__setattr__(self, "_index", {
            "roles": {r.name: r for r in self.roles},
            "hosts": {h.name: h for h in self.hosts},
            "by_role": {k: tuple(v) for k, v in by_role.items()},
        })

    def role(self, name: str) -> Role:
        return self._index["roles"][name]

    def hosts_of(self, role: str) -> tuple[Host, ...]:
        return self._index["by_role"][role]

    def host(self, name: str) -> Host:
        return self._index["hosts"][name]

    @property
    def tunnel(self) -> Host:
        return self.hosts_of(self.tunnel_role)[0]

    def flows_to(self, role: str) -> tuple[Flow, ...]:
        return tuple(f for f in self.flows if f.to == role)

    def flows_from(self, role: str) -> tuple[Flow, ...]:
        return tuple(f for f in self.flows if f.source.role == role)

    def flows_from_load_balancer(self, role: str) -> tuple[Flow, ...]:
        """Flows a load balancer role sends to its backends, in either mode (managed ones come
        from the VPC range, labelled by `managed_lb_label`)."""
        label = managed_lb_label(role)
        return tuple(f for f in self.flows if f.source.role == role or f.source.label == label)

    def public_services(self, role: str) -> tuple[Flow, ...]:
        """Flows open to the whole internet on the public interface."""
        return tuple(f for f in self.flows_to(role) if f.source.label == "internet")

    @property
    def gateway(self) -> Host | None:
        for r in self.roles:
            if r.forwards:
                return self.hosts_of(r.name)[0]
        return None
