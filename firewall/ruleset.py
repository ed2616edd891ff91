"""Parsed iptables rulesets as frozen values, plus the protocol/ICMP/flag name tables.

Everything the parser saw is kept, including what it did not understand: such matches and targets
carry a `reason`, so the evaluator can answer UNKNOWN where they could decide a verdict.
"""
from __future__ import annotations

from dataclasses import dataclass, field

IPV4 = "ipv4"
IPV6 = "ipv6"

BUILTIN_CHAINS = {
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
    "raw": ("PREROUTING", "OUTPUT"),
    "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
    "security": ("INPUT", "FORWARD", "OUTPUT"),
}

PROTOCOLS = {
    "all": 0, "icmp": 1, "igmp": 2, "ipencap": 4, "tcp": 6, "egp": 8, "udp": 17, "ipv6": 41,
    "rsvp": 46, "gre": 47, "esp": 50, "ah": 51, "icmpv6": 58, "ipv6-icmp": 58, "icmp6": 58,
    "ospf": 89, "pim": 103, "vrrp": 112, "l2tp": 115, "dccp": 33, "sctp": 132, "mh": 135,
    "udplite": 136,
}
PROTOCOL_NAMES = {6: "tcp", 17: "udp", 1: "icmp", 58: "ipv6-icmp"}

CONNTRACK_STATES = frozenset({"NEW", "ESTABLISHED", "RELATED", "INVALID", "UNTRACKED"})
CT_VIRTUAL_STATES = frozenset({"SNAT", "DNAT"})

TCP_FLAGS = {"FIN": 1, "SYN": 2, "RST": 4, "PSH": 8, "ACK": 16, "URG": 32, "ECE": 64, "CWR": 128}
TCP_FLAGS["ALL"] = 255
TCP_FLAGS["NONE"] = 0

# name -> (type, lowest code, highest code); type -1 means "any".
ICMP_TYPES = {
    "any": (-1, 0, 255), "echo-reply": (0, 0, 255), "pong": (0, 0, 255),
    "destination-unreachable": (3, 0, 255), "network-unreachable": (3, 0, 0),
    "host-unreachable": (3, 1, 1), "protocol-unreachable": (3, 2, 2), "port-unreachable": (3, 3, 3),
    "fragmentation-needed": (3, 4, 4), "source-route-failed": (3, 5, 5),
    "network-unknown": (3, 6, 6), "host-unknown": (3, 7, 7), "network-prohibited": (3, 9, 9),
    "host-prohibited": (3, 10, 10), "TOS-network-unreachable": (3, 11, 11),
    "TOS-host-unreachable": (3, 12, 12), "communication-prohibited": (3, 13, 13),
    "host-precedence-violation": (3, 14, 14), "precedence-cutoff": (3, 15, 15),
    "source-quench": (4, 0, 255), "redirect": (5, 0, 255), "network-redirect": (5, 0, 0),
    "host-redirect": (5, 1, 1), "TOS-network-redirect": (5, 2, 2), "TOS-host-redirect": (5, 3, 3),
    "echo-request": (8, 0, 255), "ping": (8, 0, 255), "router-advertisement": (9, 0, 255),
    "router-solicitation": (10, 0, 255), "time-exceeded": (11, 0, 255),
    "ttl-exceeded": (11, 0, 255), "ttl-zero-during-transit": (11, 0, 0),
    "ttl-zero-during-reassembly": (11, 1, 1), "parameter-problem": (12, 0, 255),
    "ip-header-bad": (12, 0, 0), "required-option-missing": (12, 1, 1),
    "timestamp-request": (13, 0, 255), "timestamp-reply": (14, 0, 255),
    "address-mask-request": (17, 0, 255), "address-mask-reply": (18, 0, 255),
}
ICMPV6_TYPES = {
    "destination-unreachable": (1, 0, 255), "no-route": (1, 0, 0),
    "communication-prohibited": (1, 1, 1), "beyond-scope": (1, 2, 2),
    "address-unreachable": (1, 3, 3), "port-unreachable": (1, 4, 4), "failed-policy": (1, 5, 5),
    "reject-route": (1, 6, 6), "packet-too-big": (2, 0, 255), "time-exceeded": (3, 0, 255),
    "ttl-exceeded": (3, 0, 255), "ttl-zero-during-transit": (3, 0, 0),
    "ttl-zero-during-reassembly": (3, 1, 1), "parameter-problem": (4, 0, 255),
    "bad-header": (4, 0, 0), "unknown-header-type": (4, 1, 1), "unknown-option": (4, 2, 2),
    "echo-request": (128, 0, 255), "ping": (128, 0, 255), "echo-reply": (129, 0, 255),
    "pong": (129, 0, 255), "mld-listener-query": (130, 0, 255),
    "mld-listener-report": (131, 0, 255), "mld-listener-done": (132, 0, 255),
    "mld-listener-reduction": (132, 0, 255), "router-solicitation": (133, 0, 255),
    "router-advertisement": (134, 0, 255), "neighbour-solicitation": (135, 0, 255),
    "neighbor-solicitation": (135, 0, 255), "neighbour-advertisement": (136, 0, 255),
    "neighbor-advertisement": (136, 0, 255), "redirect": (137, 0, 255),
}


def parse_icmp_type(text: str, family: str) -> tuple[int, int, int]:
    """`echo-request`, `8`, `3/4` or `any` -> (type, code_lo, code_hi); ValueError if unknown."""
    names = ICMPV6_TYPES if family == IPV6 else ICMP_TYPES
    if text in names:
        return names[text]
    kind, _, code = text.partition("/")
    if not kind.isdigit() or (code and not code.isdigit()):
        raise ValueError(f"unknown ICMP type {text!r}")
    number = int(kind)
    low, high = (int(code), int(code)) if code else (0, 255)
    if number > 255 or high > 255:
        raise ValueError(f"ICMP type/code out of range: {text!r}")
    return number, low, high


def parse_protocol(text: str) -> int:
    """Protocol name or number -> number (0 = all); ValueError if unknown."""
    lowered = text.lower()
    if lowered in PROTOCOLS:
        return PROTOCOLS[lowered]
    if lowered.isdigit() and int(lowered) <= 255:
        return int(lowered)
    raise ValueError(f"unknown protocol {text!r}")


class ParseError(ValueError):
    """Every problem found in one input, as (line number, message) pairs; raised once."""

    def __init__(self, source: str, problems: list[tuple[int, str]] | tuple[tuple[int, str], ...]):
        self.source = source
        self.problems = tuple(problems)
        super().__init__(self.report())

    def report(self) -> str:
        return "\n".join(f"{self.source}:{line}: {message}" for line, message in self.problems)


@dataclass(frozen=True)
class RuleRef:
    """Where a rule lives: table, chain, 1-based position in the chain, and its text."""

    table: str
    chain: str
    position: int
    text: str

    def __str__(self) -> str:
        return f"{self.chain} rule {self.position}: {self.text}"

    def as_dict(self) -> dict:
        return {"table": self.table, "chain": self.chain, "position": self.position, "text": self.text}


@dataclass(frozen=True)
class NotUnderstood:
    """A match or target the parser kept but cannot evaluate, with the reason."""

    table: str
    chain: str
    position: int
    text: str
    reason: str
    line: int = 0

    def __str__(self) -> str:
        return f"{self.table} {self.chain} rule {self.position}: {self.text} ({self.reason})"


@dataclass(frozen=True)
class Match:
    """One condition of a rule.

    kind: src, dst, in, out, proto, sport, dport, ports, ctstate, state, set, icmp, tcpflags,
    limit, comment (the last two never affect a verdict) or unknown (value[0] is the reason).
    value holds the normalised, kind-specific data (see firewall.parse).
    """

    kind: str
    negated: bool
    value: tuple
    text: str

    @property
    def understood(self) -> bool:
        return self.kind != "unknown"


@dataclass(frozen=True)
class Target:
    """What a matching rule does. kind: verdict, log, return, jump, goto, ct, nat, none, unknown."""

    name: str
    kind: str
    options: tuple[tuple[str, str], ...] = ()
    text: str = ""
    reason: str = ""

    def option(self, name: str, default: str | None = None) -> str | None:
        for key, value in self.options:
            if key == name:
                return value
        return default


@dataclass(frozen=True)
class Rule:
    """One `-A` line: its place, source line number, text, matches and target."""

    table: str
    chain: str
    position: int
    line: int
    text: str
    matches: tuple[Match, ...]
    target: Target

    @property
    def ref(self) -> RuleRef:
        return RuleRef(self.table, self.chain, self.position, self.text)

    def not_understood(self) -> tuple[NotUnderstood, ...]:
        found = [NotUnderstood(self.table, self.chain, self.position, m.text, m.value[0], self.line)
                 for m in self.matches if not m.understood]
        if self.target.kind == "unknown":
            found.append(NotUnderstood(self.table, self.chain, self.position, self.target.text,
                                       self.target.reason, self.line))
        return tuple(found)


@dataclass(frozen=True)
class Chain:
    """A chain; policy is ACCEPT/DROP for built-in chains and None for user chains."""

    name: str
    policy: str | None
    rules: tuple[Rule, ...] = ()

    @property
    def builtin(self) -> bool:
        return self.policy is not None


@dataclass(frozen=True)
class Table:
    name: str
    chains: tuple[Chain, ...]

    def chain(self, name: str) -> Chain:
        for chain in self.chains:
            if chain.name == name:
                return chain
        raise KeyError(f"no chain {name!r} in table {self.name}")

    def has_chain(self, name: str) -> bool:
        return any(chain.name == name for chain in self.chains)


@dataclass(frozen=True)
class Ruleset:
    """A parsed iptables-save (family ipv4) or ip6tables-save (ipv6) file."""

    family: str
    tables: tuple[Table, ...]
    source: str = "<rules>"
    notes: tuple[str, ...] = field(default=(), compare=False)

    def table(self, name: str) -> Table:
        for table in self.tables:
            if table.name == name:
                return table
        raise KeyError(f"no table {name!r} in {self.source}")

    def has_table(self, name: str) -> bool:
        return any(table.name == name for table in self.tables)

    @property
    def not_understood(self) -> tuple[NotUnderstood, ...]:
        return tuple(item for table in self.tables for chain in table.chains
                     for rule in chain.rules for item in rule.not_understood())
