"""Audit of a live host: the semantic difference between its dumped rules and the intended policy.

The host's slice of the intended matrix (probes whose destination, DNAT hop or forwarding hop is
the host) is evaluated on the live rules, the other hosts keeping their generated rules. Because
the matrix samples ports, probes are also derived from the rules themselves (live and generated):
every port boundary and every source network or set member they mention, on each of the host's
interfaces, also with each source port a rule tests. So an extra opening is found even where the
matrix's sample would have missed it. Each difference carries an example packet in the
`enclave evaluate --packet` syntax and the live rule that decided it.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from firewall.evaluate import UNKNOWN
from firewall.intent import Actor, Expectation, Probe, actors, decide, intended_matrix
from firewall.packet import Packet
from firewall.ruleset import IPV4, IPV6
from firewall.verify import (
    PROTO_NUMBERS, REPRESENTATIVES_ABOVE, SPORT, Difference, HostRules, Outcome, RuleBook, Step, compare,
)
from topology.model import PRIVATE, PUBLIC, Stack

ALLOWS, DENIES = "allows", "denies"


@dataclass(frozen=True)
class AuditReport:
    """Differences between a host's live rules and the intent, and what was (not) looked at."""

    stack: str
    host: str
    matrix_probes: int
    derived_probes: int
    differences: tuple[Difference, ...]
    notes: tuple[str, ...] = ()

    @property
    def allows(self) -> tuple[Difference, ...]:
        """Packets the live rules let through but the policy does not (or to the wrong host)."""
        return tuple(d for d in self.differences if d.kind in (ALLOWS, "wrong-target"))

    @property
    def denies(self) -> tuple[Difference, ...]:
        """Packets the policy admits but the live rules stop."""
        return tuple(d for d in self.differences if d.kind == DENIES)

    @property
    def unknown(self) -> tuple[Difference, ...]:
        return tuple(d for d in self.differences if d.kind == "unknown")

    @property
    def same(self) -> bool:
        return not self.differences

    def as_dict(self) -> dict:
        return {"stack": self.stack, "host": self.host, "same": self.same,
                "probes": {"matrix": self.matrix_probes, "derived": self.derived_probes},
                "allows_but_should_not": [_audit_dict(d, self.host) for d in self.allows],
                "should_allow_but_does_not": [_audit_dict(d, self.host) for d in self.denies],
                "unknown": [_audit_dict(d, self.host) for d in self.unknown],
                "notes": list(self.notes)}


def host_step(difference: Difference, host: str) -> Step:
    """The audited host's step to look at: the first of its steps that stopped the probe, else its
    first step (where a DNAT sends the probe elsewhere, or the opening begins)."""
    mine = [s for s in difference.outcome.steps if s.host == host] or list(difference.outcome.steps)
    for step in mine:
        if not step.verdict.accepted:
            return step
    return mine[0]


def audit_message(difference: Difference) -> str:
    """The difference's message, with the source port when it is not the default one."""
    text = difference.message()
    if difference.packet.sport != SPORT:
        head, sep, rest = text.partition(": ")
        text = f"{head} (source port {difference.packet.sport}){sep}{rest}"
    return text


def _audit_dict(difference: Difference, host: str) -> dict:
    step = host_step(difference, host)
    return {**difference.as_dict(), "message": audit_message(difference),
            "example": {"table": step.table, "chain": step.chain, "packet": str(step.packet)}}


def audit_host(stack: Stack, host: str, live: HostRules) -> AuditReport:
    """Audit `live` (the host's dumped rules) against the intended policy of `stack`."""
    target = stack.host(host)  # KeyError: unknown host
    book = RuleBook.generated(stack, phase=2)
    generated = book.rules(host)
    book.replace(host, live)
    gateway = stack.gateway
    notes = []
    if live.v6 is None:
        notes.append("IPv6 not audited: no ip6tables dump given")

    def involves(e: Expectation) -> bool:
        p = e.probe
        if p.kind == "input":
            return p.dest == host
        if p.kind == "dnat":
            return p.dest == host or p.target == target.role
        return gateway is not None and gateway.name == host

    matrix = intended_matrix(stack, len(stack.hosts) > REPRESENTATIVES_ABOVE)
    differences, evaluated = compare(book, matrix, involves)
    seen = {(e.probe.source.address, e.probe.interface, e.probe.proto, e.probe.port)
            for e in matrix if e.probe.kind == "input" and e.probe.dest == host}
    derived = 0
    for expectation, sport in derived_probes(stack, host, (live, generated)):
        probe = expectation.probe
        if sport == SPORT and (probe.source.address, probe.interface, probe.proto, probe.port) in seen:
            continue
        family = IPV4 if probe.source.family == 4 else IPV6
        if not book.has_family(host, family):
            continue
        packet = Packet(PROTO_NUMBERS[probe.proto], book.ip(probe.source.address), book.ip(probe.dest_address),
                        sport, probe.port, probe.interface)
        verdict = book.verdict(host, "filter", "INPUT", packet)
        derived += 1
        outcome = Outcome(verdict.verdict, (Step(host, "filter", "INPUT", packet, verdict),))
        if verdict.verdict == UNKNOWN or verdict.accepted != expectation.allowed:
            differences.append(Difference(expectation, outcome, packet))
    return AuditReport(stack.name, host, evaluated, derived, tuple(differences), tuple(notes))


def derived_probes(stack: Stack, host: str, rule_sets: tuple[HostRules, ...]):
    """(Expectation, source port) for every address x interface x port x source port the rules mention."""
    dest = stack.host(host)
    by_address = {ipaddress.ip_address(h.private_ip): h for h in stack.hosts}
    vpc = ipaddress.ip_network(stack.vpc_cidr)
    for family, version in ((IPV4, 4), (IPV6, 6)):
        addresses: dict = {ipaddress.ip_address(a.address): a for a in actors(stack, True) if a.family == version}
        ports: dict[str, set[int]] = {"tcp": set(), "udp": set()}
        sports = {SPORT}
        for rules in rule_sets:
            ruleset = rules.family(family)
            if ruleset is None or not ruleset.has_table("filter"):
                continue
            for chain in ruleset.table("filter").chains:
                for rule in chain.rules:
                    for match in rule.matches:
                        _collect(match, rules, version, addresses, ports, sports)
        interfaces = []
        if version == 4:
            interfaces.append((PRIVATE, dest.private_ip))
        public = dest.public_ip if version == 4 else dest.public_ip6
        if public is not None:
            interfaces.append((PUBLIC, public))
        for proto in ports:
            ports[proto] |= {22, 80, 443} if proto == "tcp" else {53}
        for address, actor in addresses.items():
            actor = actor or _actor(address, by_address, vpc)
            if actor.host == host:
                continue
            for interface, dest_address in interfaces:
                for proto, numbers in ports.items():
                    for port in sorted(numbers):
                        allowed, because = decide(stack, actor, dest.role, interface, proto, port)
                        probe = Probe(actor, host, dest_address, interface, proto, port)
                        for sport in sorted(sports):
                            yield Expectation(probe, allowed, because), sport


def _collect(match, rules: HostRules, version: int, addresses: dict, ports: dict, sports: set) -> None:
    kind = match.kind
    if kind == "src":
        for network in match.value:
            addresses.setdefault(_inside(network), None)
            if network.num_addresses > 2:
                addresses.setdefault(network.broadcast_address - 1, None)
    elif kind == "set" and "src" in match.value[1]:
        ipset = rules.ipsets.get(match.value[0])
        if ipset is not None and ipset.understood and ipset.family == (IPV4 if version == 4 else IPV6):
            for network in ipset.members + ipset.nomatch:
                addresses.setdefault(_inside(network), None)
    elif kind in ("dport", "ports", "sport") and match.value[0] in (6, 17):
        proto = "tcp" if match.value[0] == 6 else "udp"
        for low, high in match.value[1]:
            if kind == "sport":
                sports.update({low, high})
                continue
            ports[proto].update(p for p in (low - 1, low, high, high + 1) if 1 <= p <= 65535)


def _inside(network):
    return network.network_address if network.num_addresses == 1 else network.network_address + 1


def _actor(address, by_address, vpc) -> Actor:
    """Who sends from `address`: a host of the stack, another tenant of the VPC, or an outsider."""
    host = by_address.get(address)
    if host is not None:
        return Actor(host.name, "private", str(address), 4, host.name, host.role)
    if address.version == 4 and address in vpc:
        return Actor(f"vpc:{address}", "private", str(address), 4)
    return Actor(f"net:{address}", "public", str(address), address.version)
