"""Per-host iptables-restore text (IPv4, IPv6) from the model, as DESIGN.md decision 5 shapes it.

Order in enclave-input: lo, ESTABLISHED/RELATED, INVALID, SSH, declared flows, log-then-deny.
Peers are named through ipsets, so the rule count depends on the roles, never on how many
hosts they have. Only the gateway's DNAT names an address (its single target host).
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Mapping

from firewall import chains
from firewall.members import IpsetRenderer, private_addresses
from firewall.policy import inbound, outbound
from topology.catalog import HELPERS
from topology.model import PRIVATE, PUBLIC, Flow, PortRange, Role, Stack

MULTIPORT_MAX = 15  # multiport takes 15 ports; a range counts as two
ICMPV6_NEIGHBOUR = ("133", "134", "135", "136")  # router sol./adv., neighbour sol./adv.


@dataclass(frozen=True)
class HostFirewall:
    """What one host loads: iptables-restore text for each family and its ipset file."""

    host: str
    rules_v4: str
    rules_v6: str
    ipsets: str


def _port_groups(ports: tuple[PortRange, ...]) -> list[tuple[PortRange, ...]]:
    """Ports split into groups that fit one multiport match."""
    groups: list[list[PortRange]] = [[]]
    used = 0
    for r in ports:
        cost = 1 if r.first == r.last else 2
        if used + cost > MULTIPORT_MAX:
            groups.append([])
            used = 0
        groups[-1].append(r)
        used += cost
    return [tuple(g) for g in groups if g]


def _port_match(proto: str, ports: tuple[PortRange, ...], direction: str = "d") -> str:
    if len(ports) == 1:
        return f"-m {proto} --{direction}port {ports[0].iptables()}"
    return f"-m multiport --{direction}ports {','.join(p.iptables() for p in ports)}"


def _flow_rules(chain: str, flow: Flow, family: int, out: bool = False) -> list[str]:
    """Rules admitting `flow` in `chain` (inbound: source matched; outbound: destination)."""
    iface = f"-o {flow.interface}" if out else f"-i {flow.interface}"
    peers: list[str] = []
    if flow.source.kind == "role" or out:
        if family == 6:
            return []  # the VPC is IPv4-only: role peers have no IPv6 addresses
        target = flow.to if out else flow.source.label
        direction = "dst" if out else "src"
        peers.append(f"-m set --match-set {chains.role_set(target)} {direction}")
    elif flow.source.label == "admin":
        peers.append(f"-m set --match-set {chains.ADMIN_SET if family == 4 else chains.ADMIN_SET6} src")
    elif flow.source.label == "internet":
        peers.append("")  # any source
    else:
        nets = flow.source.networks_of(family)
        if not nets:
            return []
        peers = [f"-s {ipaddress.ip_network(n)}" for n in nets]
    proto = flow.proto if family == 4 or flow.proto != "icmp" else "ipv6-icmp"
    rules = []
    for peer in peers:
        before, after = (peer, "") if peer.startswith("-s") else ("", peer)
        head = " ".join(x for x in (f"-A {chain}", before, iface, f"-p {proto}", after) if x)
        if flow.proto == "icmp":
            if flow.icmp_type:
                match = f"-m icmp --icmp-type {flow.icmp_type}" if family == 4 else f"-m icmp6 --icmpv6-type {flow.icmp_type}"
                rules.append(f"{head} {match} -j ACCEPT")
            else:
                rules.append(f"{head} -j ACCEPT")
            continue
        for group in _port_groups(flow.ports):
            rules.append(f"{head} {_port_match(flow.proto, group)} -j ACCEPT")
    return rules


def _deny_rules(stack: Stack, role: Role, family: int) -> list[str]:
    rules = []
    if stack.drop_log is not None:
        log = stack.drop_log
        rules.append(
            f'-A {chains.DENY} -m limit --limit {log.rate} --limit-burst {log.burst} '
            f'-j LOG --log-prefix "{log.prefix}"'
        )
    if role.final_action == "reject":
        why = "icmp-host-prohibited" if family == 4 else "icmp6-adm-prohibited"
        rules.append(f"-A {chains.DENY} -j REJECT --reject-with {why}")
    else:
        rules.append(f"-A {chains.DENY} -j DROP")
    return rules


def _stateful_head(chain: str, loopback: str) -> list[str]:
    return [
        f"-A {chain} {loopback} lo -j ACCEPT",
        f"-A {chain} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        f"-A {chain} -m conntrack --ctstate INVALID -j DROP",
    ]


def _filter_table(stack: Stack, role: Role, family: int) -> list[str]:
    forwards = role.forwards
    egress_drop = role.egress == "drop"
    lines = [
        "*filter",
        ":INPUT DROP [0:0]",
        ":FORWARD DROP [0:0]",
        f":OUTPUT {'DROP' if egress_drop else 'ACCEPT'} [0:0]",
        f":{chains.INPUT} - [0:0]",
    ]
    if forwards:
        lines.append(f":{chains.FORWARD} - [0:0]")
    if egress_drop:
        lines.append(f":{chains.OUTPUT} - [0:0]")
    lines.append(f":{chains.DENY} - [0:0]")
    lines.append(f"-A INPUT -j {chains.INPUT}")
    if forwards:
        lines.append(f"-A FORWARD -j {chains.FORWARD}")
    if egress_drop:
        lines.append(f"-A OUTPUT -j {chains.OUTPUT}")

    lines += _stateful_head(chains.INPUT, "-i")
    if family == 6:
        lines += [f"-A {chains.INPUT} -p ipv6-icmp -m icmp6 --icmpv6-type {t} -j ACCEPT" for t in ICMPV6_NEIGHBOUR]
    for flow in inbound(stack, role.name):
        if family == 6 and flow.interface == PUBLIC and role.private_only:
            continue
        lines += _flow_rules(chains.INPUT, flow, family)
    lines.append(f"-A {chains.INPUT} -j {chains.DENY}")

    if forwards:
        lines += _forward_rules(stack, role, family)
    if egress_drop:
        lines += _stateful_head(chains.OUTPUT, "-o")
        if family == 6:
            lines += [f"-A {chains.OUTPUT} -p ipv6-icmp -m icmp6 --icmpv6-type {t} -j ACCEPT" for t in ICMPV6_NEIGHBOUR]
        for flow in outbound(stack, role.name):
            lines += _flow_rules(chains.OUTPUT, flow, family, out=True)
        for rule in role.egress_allow:
            if ipaddress.ip_network(rule.to).version != family:
                continue
            proto = rule.proto if family == 4 or rule.proto != "icmp" else "ipv6-icmp"
            head = f"-A {chains.OUTPUT} -d {rule.to} -p {proto}"
            if not rule.ports:
                lines.append(f"{head} -j ACCEPT")
            for group in _port_groups(rule.ports):
                lines.append(f"{head} {_port_match(rule.proto, group)} -j ACCEPT")
        lines.append(f"-A {chains.OUTPUT} -j {chains.DENY}")
    lines += _deny_rules(stack, role, family)
    lines.append("COMMIT")
    return lines


def _forward_rules(stack: Stack, role: Role, family: int) -> list[str]:
    """The gateway's FORWARD chain: replies, private side out, DNATed forwards, then deny."""
    lines = _stateful_head(chains.FORWARD, "-i")[1:]  # no loopback rule in FORWARD
    if family == 4 and role.nat is not None:
        if role.nat.masquerade:
            lines.append(f"-A {chains.FORWARD} -s {stack.vpc_cidr} -i {PRIVATE} -o {PUBLIC} -m conntrack --ctstate NEW -j ACCEPT")
        for _, match in _forward_matches(role):
            lines.append(f"-A {chains.FORWARD} {match.replace(f'-i {PUBLIC} ', f'-i {PUBLIC} -o {PRIVATE} ')} -m conntrack --ctstate DNAT -j ACCEPT")
    lines.append(f"-A {chains.FORWARD} -j {chains.DENY}")
    return lines


def _forward_matches(role: Role):
    """(port forward, match text) for every source network and port group a gateway forwards."""
    for pf in role.nat.port_forwards:
        for net in pf.source.networks_of(4) or ("0.0.0.0/0",):
            src = "" if net == "0.0.0.0/0" else f"-s {net} "
            for group in _port_groups(pf.ports):
                yield pf, f"{src}-i {PUBLIC} -p {pf.proto} {_port_match(pf.proto, group)}"


def _raw_table(role: Role) -> list[str]:
    if not role.helpers:
        return []
    lines = ["*raw", ":PREROUTING ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]", f":{chains.HELPERS} - [0:0]"]
    lines += [f"-A PREROUTING -j {chains.HELPERS}", f"-A OUTPUT -j {chains.HELPERS}"]
    for name in role.helpers:
        helper = HELPERS[name]
        lines.append(f"-A {chains.HELPERS} -p {helper.proto} -m {helper.proto} --dport {helper.port} -j CT --helper {name}")
    lines.append("COMMIT")
    return lines


def _nat_table(stack: Stack, role: Role, addresses: Mapping[str, str] | None) -> list[str]:
    """Gateway NAT; DNAT targets are known only in phase 2 (addresses given), so phase 1 omits them."""
    if role.nat is None:
        return []
    lines = [
        "*nat",
        ":PREROUTING ACCEPT [0:0]",
        ":INPUT ACCEPT [0:0]",
        ":OUTPUT ACCEPT [0:0]",
        ":POSTROUTING ACCEPT [0:0]",
        f":{chains.PREROUTING} - [0:0]",
        f":{chains.POSTROUTING} - [0:0]",
        f"-A PREROUTING -j {chains.PREROUTING}",
        f"-A POSTROUTING -j {chains.POSTROUTING}",
    ]
    if addresses is not None:
        for pf, match in _forward_matches(role):
            target = addresses[stack.hosts_of(pf.to)[0].name]
            lines.append(f"-A {chains.PREROUTING} {match} -j DNAT --to-destination {target}")
    if role.nat.masquerade:
        lines.append(f"-A {chains.POSTROUTING} -s {stack.vpc_cidr} -o {PUBLIC} -j MASQUERADE")
    if role.nat.port_forwards:
        # replies to forwarded connections must come back through the gateway
        lines.append(f"-A {chains.POSTROUTING} -o {PRIVATE} -m conntrack --ctstate DNAT -j MASQUERADE")
    lines.append("COMMIT")
    return lines


class Compiler:
    """Compiles every host of a stack; rule text is built once per role and shared by its hosts."""

    def __init__(self, stack: Stack, private_ips: Mapping[str, str] | None = None, phase: int = 2):
        if phase not in (1, 2):
            raise ValueError("phase is 1 (cloud-init, peers unknown) or 2 (peer sync)")
        self.stack = stack
        self.phase = phase
        self.all_addresses = private_addresses(stack, private_ips)
        self.addresses = self.all_addresses if phase == 2 else None
        self.ipsets = IpsetRenderer(stack, self.all_addresses, phase)
        self._bodies: dict[str, tuple[str, str, str]] = {}
        self.memo: dict[str, dict] = {}  # derived per-stack data other renderers share

    def _role_bodies(self, role_name: str) -> tuple[str, str, str]:
        if role_name not in self._bodies:
            role = self.stack.role(role_name)
            v4 = _raw_table(role) + _nat_table(self.stack, role, self.addresses) + _filter_table(self.stack, role, 4)
            v6 = _raw_table(role) + _filter_table(self.stack, role, 6)
            self._bodies[role_name] = ("\n".join(v4) + "\n", "\n".join(v6) + "\n", self.ipsets.for_role(role_name))
        return self._bodies[role_name]

    def host(self, name: str) -> HostFirewall:
        host = self.stack.host(name)
        v4, v6, sets = self._role_bodies(host.role)
        header = f"# enclave stack {self.stack.name}, host {host.name} (role {host.role}), phase {self.phase}: generated, do not edit\n"
        return HostFirewall(host.name, header + v4, header + v6, sets)

    def all_hosts(self) -> dict[str, HostFirewall]:
        return {h.name: self.host(h.name) for h in self.stack.hosts}


_SHARED: dict[tuple, tuple[Stack, Compiler]] = {}
_SHARED_MAX = 32


def _addresses_key(private_ips: Mapping[str, str] | None) -> tuple:
    if private_ips is None:
        return ("plan",)
    if len(private_ips) <= 8:
        return ("values", tuple(sorted(private_ips.items())))
    return ("object", id(private_ips))  # large maps are keyed by identity: treat them as immutable


def shared_compiler(stack: Stack, private_ips: Mapping[str, str] | None = None, phase: int = 2) -> Compiler:
    """One Compiler per (stack, addresses, phase), reused by per-host callers (cloud-init, Pulumi
    applies), so each role's rule text is built once per stack and not once per host."""
    key = (id(stack), _addresses_key(private_ips), phase)
    hit = _SHARED.get(key)
    if hit is not None and hit[0] is stack:
        return hit[1]
    if len(_SHARED) >= _SHARED_MAX:
        _SHARED.clear()
    compiler = Compiler(stack, private_ips, phase)
    _SHARED[key] = (stack, compiler)
    return compiler


def compile_host(stack: Stack, host: str, private_ips: Mapping[str, str] | None = None, phase: int = 2) -> HostFirewall:
    return Compiler(stack, private_ips, phase).host(host)


def compile_stack(stack: Stack, private_ips: Mapping[str, str] | None = None, phase: int = 2) -> dict[str, HostFirewall]:
    return Compiler(stack, private_ips, phase).all_hosts()
