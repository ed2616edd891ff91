"""Shadowed and redundant rules: a rule that an earlier terminating rule of its chain fully covers.

Reasoning is on the parsed matches, not on sample packets: rule j is covered by an earlier rule i
when every condition of i is implied by the conditions of j (interfaces, protocol, addresses and
set members, ports, conntrack states). j never decides anything then: it is *redundant* when it
would have done the same as i, *shadowed* when it meant something else. Conditions we cannot
reason about (unknown matches, limits) never cover anything, so findings are never guesses.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

from firewall.ipsets import IpSet
from firewall.ruleset import CONNTRACK_STATES, Match, Rule, RuleRef, Ruleset

SHADOWED, REDUNDANT = "shadowed", "redundant"


@dataclass(frozen=True)
class Finding:
    """Rule `rule` never decides: `by` (earlier in the same chain) takes every packet it matches."""

    kind: str  # shadowed | redundant
    family: str
    rule: RuleRef
    by: RuleRef

    def describe(self) -> str:
        what = "never reached with a different verdict" if self.kind == SHADOWED else "has no effect"
        return (f"{self.rule.table}/{self.rule.chain} rule {self.rule.position} ({self.rule.text}) is "
                f"{self.kind} ({what}): covered by rule {self.by.position} ({self.by.text})")

    def as_dict(self) -> dict:
        return {"kind": self.kind, "family": self.family, "rule": self.rule.as_dict(),
                "covered_by": self.by.as_dict()}


def find_shadowed(ruleset: Ruleset, ipsets: Mapping[str, IpSet] | None = None) -> tuple[Finding, ...]:
    """Every shadowed or redundant rule of every table and chain of `ruleset`."""
    ipsets = ipsets or {}
    found: list[Finding] = []
    for table in ruleset.tables:
        for chain in table.chains:
            stoppers: list[Rule] = []
            for rule in chain.rules:
                for earlier in stoppers:
                    if covers(earlier, rule, ipsets):
                        kind = REDUNDANT if _same_effect(earlier, rule) else SHADOWED
                        found.append(Finding(kind, ruleset.family, rule.ref, earlier.ref))
                        break
                if _terminates(rule):
                    stoppers.append(rule)
    return tuple(found)


def _terminates(rule: Rule) -> bool:
    """A matching packet never reaches the next rule of the chain."""
    kind = rule.target.kind
    return kind in ("verdict", "return", "goto") or (kind == "nat" and rule.table == "nat")


def _same_effect(a: Rule, b: Rule) -> bool:
    return (a.target.kind, a.target.name, a.target.option("--reject-with"), a.target.options) == \
        (b.target.kind, b.target.name, b.target.option("--reject-with"), b.target.options)


def covers(earlier: Rule, later: Rule, ipsets: Mapping[str, IpSet]) -> bool:
    """True when every packet matching `later` also matches `earlier` (provably)."""
    if later.target.kind == "unknown" and not _terminates(earlier):
        return False
    return all(_implied(match, later.matches, ipsets) for match in earlier.matches)


def _implied(m: Match, js: tuple[Match, ...], ipsets: Mapping[str, IpSet]) -> bool:
    """Is condition `m` true of every packet satisfying all of `js`?"""
    if m.kind == "comment":
        return True
    if m.kind in ("limit", "unknown"):
        return False
    if any(j.kind == m.kind and j.negated == m.negated and j.value == m.value for j in js):
        return True
    positive = [j for j in js if not j.negated]
    if m.kind == "proto":
        if not m.negated:
            return m.value[0] == 0
        return any(j.kind == "proto" and j.value[0] not in (0, m.value[0]) for j in positive)
    if m.kind in ("in", "out"):
        names = [j.value[0] for j in positive if j.kind == m.kind]
        if m.negated:
            return any(not n.endswith("+") and not _iface_matches(m.value[0], n) for n in names)
        return any(_iface_within(n, m.value[0]) for n in names)
    if m.kind in ("src", "dst"):
        nets = _address_constraints(m.kind, positive, ipsets)
        if m.negated:
            return any(all(not n.overlaps(x) for x in m.value for n in group) for group in nets)
        return any(all(any(n.subnet_of(x) for x in m.value if x.version == n.version) for n in group)
                   for group in nets)
    if m.kind == "set":
        members = _set_members(m.value[0], ipsets)
        if m.negated or members is None or len(m.value[1]) != 1:
            return False
        kind = m.value[1][0]
        for group in _address_constraints(kind, positive, ipsets):
            if all(any(n.version == x.version and n.subnet_of(x) for x in members) for n in group):
                return True
        return False
    if m.kind in ("sport", "dport"):
        proto, ranges = m.value[0], m.value[1]
        for j in positive:
            if j.kind == m.kind and j.value[0] == proto:
                inside = all(any(lo <= a and b <= hi for lo, hi in ranges) for a, b in j.value[1])
                disjoint = all(b < lo or a > hi for a, b in j.value[1] for lo, hi in ranges)
                if (inside and not m.negated) or (disjoint and m.negated):
                    return True
        return False
    if m.kind in ("state", "ctstate"):
        if m.negated:
            return False
        wanted = set(m.value)
        if CONNTRACK_STATES <= wanted:
            return True
        for j in positive:
            if j.kind in ("state", "ctstate") and set(j.value) <= wanted and (
                    m.kind == "ctstate" or set(j.value) <= CONNTRACK_STATES):
                return True
        return False
    return False


def _iface_matches(pattern: str, name: str) -> bool:
    return name.startswith(pattern[:-1]) if pattern.endswith("+") else name == pattern


def _iface_within(name: str, pattern: str) -> bool:
    """Every interface `name` (maybe a wildcard) matches is matched by `pattern`."""
    if name.endswith("+"):
        return pattern.endswith("+") and name[:-1].startswith(pattern[:-1])
    return _iface_matches(pattern, name)


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _address_constraints(kind: str, matches: list[Match], ipsets) -> list[tuple[Network, ...]]:
    """Each positive condition on the `kind` (src/dst) address, as the networks it allows."""
    groups: list[tuple[Network, ...]] = []
    for j in matches:
        if j.kind == kind:
            groups.append(tuple(j.value))
        elif j.kind == "set" and j.value[1] == (kind,):
            members = _set_members(j.value[0], ipsets)
            if members:  # an empty set matches nothing: no claim about coverage
                groups.append(members)
    return groups


def _set_members(name: str, ipsets: Mapping[str, IpSet]) -> tuple[Network, ...] | None:
    """Networks a set surely contains (None when we cannot tell: unknown set or type, nomatch)."""
    ipset = ipsets.get(name)
    if ipset is None or not ipset.understood or ipset.nomatch or ipset.netmask is not None:
        return None
    return ipset.members
