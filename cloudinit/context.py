"""What a host's templates may know, computed from the model (pure): its addresses and its peers.

Phase 1 (cloud-init) knows no private address but the tunnel's, so peer lists are empty and
daemons bind to loopback; phase 2 (peer sync) knows every address. Templates only read fields.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Mapping

from firewall.compile import shared_compiler
from topology.catalog import PROFILES
from topology.model import Host, Stack


@dataclass(frozen=True)
class Peer:
    """Another host as a template sees it: name, private address (phase 2) and a port."""

    name: str
    address: str
    port: int = 0


@dataclass(frozen=True)
class HostView:
    stack: str
    name: str
    role: str
    profile: str
    index: int
    phase: int
    private_ip: str  # the host's own private address; "" in phase 1
    bind_address: str  # where private-side daemons listen: loopback until peer sync
    vpc_network: str  # e.g. 10.10.10.0
    vpc_netmask: str  # e.g. 255.255.255.0
    vpc_cidr: str
    is_tunnel: bool
    backends: tuple[Peer, ...]  # roles this host sends traffic to over tcp (haproxy)
    clients: tuple[Peer, ...]  # hosts of other roles allowed in on the profile's first port
    client_roles: tuple[str, ...]
    servers: Mapping[str, tuple[Peer, ...]]  # profile -> hosts of roles this role talks to
    pair: tuple[Peer, ...]  # the other hosts of this role (replication)


def _others(peers: tuple[Peer, ...], name: str) -> tuple[Peer, ...]:
    """`peers` without `name` (the host itself), without scanning when it is not there."""
    for i, p in enumerate(peers):
        if p.name == name:
            return peers[:i] + peers[i + 1:]
    return peers


def _first_port(profile: str) -> int:
    listens = PROFILES[profile].listens
    return listens[0][1] if listens else 0


def host_view(stack: Stack, host: Host, private_ips: Mapping[str, str] | None, phase: int) -> HostView:
    """The template context of `host`; `private_ips` (real addresses) override the plan in phase 2."""
    compiler = shared_compiler(stack, private_ips, phase)
    addresses = compiler.all_addresses
    role = stack.role(host.role)
    known = phase == 2
    memo = compiler.memo.setdefault("peers", {})  # shared by every host of the stack

    def peers(role_name: str, port: int = 0) -> tuple[Peer, ...]:
        if not known:
            return ()
        if (role_name, port) not in memo:
            memo[role_name, port] = tuple(Peer(h.name, addresses[h.name], port) for h in stack.hosts_of(role_name))
        return memo[role_name, port]

    backends: list[Peer] = []
    servers: dict[str, list[Peer]] = {}
    for flow in stack.flows_from(host.role):
        if flow.to == host.role:
            continue
        target = stack.role(flow.to)
        if flow.proto == "tcp" and flow.ports:
            backends += [p for p in peers(flow.to, flow.ports[0].first) if p not in backends]
        servers.setdefault(target.profile, [])
        servers[target.profile] += [p for p in peers(flow.to) if p not in servers[target.profile]]

    port = _first_port(role.profile)
    client_roles: list[str] = []
    for flow in stack.flows_to(host.role):
        source = flow.source.role
        if source and source not in (host.role, stack.tunnel_role) and source not in client_roles:
            if not port or any(port in r for r in flow.ports):
                client_roles.append(source)
    clients = tuple(p for r in client_roles for p in peers(r))

    net = ipaddress.ip_network(stack.vpc_cidr)
    own = addresses[host.name] if known else ""
    return HostView(
        stack=stack.name,
        name=host.name,
        role=host.role,
        profile=role.profile,
        index=host.index,
        phase=phase,
        private_ip=own,
        bind_address=own or "127.0.0.1",
        vpc_network=str(net.network_address),
        vpc_netmask=str(net.netmask),
        vpc_cidr=stack.vpc_cidr,
        is_tunnel=host.role == stack.tunnel_role,
        backends=tuple(backends),
        clients=clients,
        client_roles=tuple(client_roles),
        servers={k: tuple(v) for k, v in servers.items()},
        pair=_others(peers(host.role), host.name),
    )
