"""Parser of iptables-save / ip6tables-save text (iptables 1.4 to 1.8, legacy or nf_tables).

`parse_ruleset(text)` returns a frozen `Ruleset`. Lines that are not iptables-save syntax raise one
`ParseError` listing every bad line with its number. Inside a rule, anything the parser does not
understand (an unknown match module, option, target or a bad value) is KEPT as an `unknown`
match or target with a reason, so that the evaluator answers UNKNOWN instead of guessing.
"""
from __future__ import annotations

import ipaddress
import re
import shlex
import socket

from firewall.ruleset import (
    BUILTIN_CHAINS, CONNTRACK_STATES, CT_VIRTUAL_STATES, IPV4, IPV6, TCP_FLAGS, Chain, Match,
    ParseError, Rule, Ruleset, Table, Target, parse_icmp_type, parse_protocol,
)

_SRC = ("-s", "--source", "--src")
_DST = ("-d", "--destination", "--dst")
_IN = ("-i", "--in-interface")
_OUT = ("-o", "--out-interface")
_PROTO = ("-p", "--protocol")
_MATCH = ("-m", "--match")
_JUMP = ("-j", "--jump")
_GOTO = ("-g", "--goto")
_GENERIC = frozenset(_SRC + _DST + _IN + _OUT + _PROTO + _MATCH + _JUMP + _GOTO + (
    "-f", "--fragment", "-4", "--ipv4", "-6", "--ipv6", "-c", "--set-counters"))

_VERDICT_TARGETS = frozenset({"ACCEPT", "DROP", "REJECT"})
_LOG_TARGETS = frozenset({"LOG", "NFLOG", "ULOG"})
_CT_TARGETS = frozenset({"CT", "NOTRACK"})
_NAT_TARGETS = frozenset({"DNAT", "SNAT", "MASQUERADE", "REDIRECT"})
_FLAG_OPTIONS = frozenset({
    "--notrack", "--log-tcp-sequence", "--log-tcp-options", "--log-ip-options", "--log-uid",
    "--log-macdecode", "--random", "--random-fully", "--persistent"})
_REJECT_WITH = {
    IPV4: frozenset({"icmp-net-unreachable", "icmp-host-unreachable", "icmp-port-unreachable",
                     "icmp-proto-unreachable", "icmp-net-prohibited", "icmp-host-prohibited",
                     "icmp-admin-prohibited", "tcp-reset", "tcp-rst"}),
    IPV6: frozenset({"icmp6-no-route", "no-route", "icmp6-adm-prohibited", "adm-prohibited",
                     "icmp6-addr-unreachable", "addr-unreach", "icmp6-port-unreachable",
                     "port-unreach", "icmp6-policy-fail", "policy-fail", "icmp6-reject-route",
                     "reject-route", "tcp-reset", "tcp-rst"}),
}
DEFAULT_REJECT_WITH = {IPV4: "icmp-port-unreachable", IPV6: "icmp6-port-unreachable"}

# Options each understood match module takes, with how many arguments.
_MODULE_OPTIONS = {
    "tcp": {"--sport": 1, "--source-port": 1, "--dport": 1, "--destination-port": 1, "--syn": 0,
            "--tcp-flags": 2},
    "udp": {"--sport": 1, "--source-port": 1, "--dport": 1, "--destination-port": 1},
    "multiport": {"--sports": 1, "--source-ports": 1, "--dports": 1, "--destination-ports": 1,
                  "--ports": 1},
    "conntrack": {"--ctstate": 1},
    "state": {"--state": 1},
    "set": {"--match-set": 2, "--update-counters": 0, "--update-subcounters": 0},
    "icmp": {"--icmp-type": 1},
    "icmp6": {"--icmpv6-type": 1},
    "limit": {"--limit": 1, "--limit-burst": 1},
    "comment": {"--comment": 1},
}
_MODULE_ALIASES = {"ipv6-icmp": "icmp6", "icmpv6": "icmp6"}
_PROTO_MODULE = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmp6"}
_WELL_KNOWN_PORTS = {"ssh": 22, "http": 80, "https": 443, "smtp": 25, "domain": 53, "ftp": 21,
                     "mysql": 3306, "postgresql": 5432, "ntp": 123, "submission": 587}
_COUNTERS = re.compile(r"^\[\d+:\d+\]\s*")
_SYNTAX_LINE = re.compile(
    r"^\s*(\[\d+:\d+\]\s*)?(\*(filter|nat|raw|mangle|security)\s*$"
    r"|:[\w.-]+\s+(ACCEPT|DROP|-)(\s+\[\d+:\d+\])?\s*$|COMMIT\s*$"
    r"|-[AI]\s+[\w.-]+(\s+\d+)?(\s+!?\s*-.*)?$|-N\s+[\w.-]+\s*$|-P\s+\w+\s+(ACCEPT|DROP)\s*$)")


def parse_ruleset(text: str, *, family: str | None = None, source: str = "<rules>") -> Ruleset:
    """Parse iptables-save text; raise ParseError (all bad lines, with numbers) if not that syntax."""
    family = family or detect_family(text)
    if family not in (IPV4, IPV6):
        raise ValueError(f"family must be {IPV4} or {IPV6}, not {family!r}")
    return _FileParser(family, source).parse(text)


def detect_family(text: str) -> str:
    """ipv6 when the text says ip6tables-save or uses IPv6-only syntax; ipv4 otherwise."""
    if re.search(r"ip6tables|--icmpv6-type|ipv6-icmp|icmp6-|(?:^|\s)-[sd]\s+(?:!\s+)?[0-9a-fA-F]*:[0-9a-fA-F:]*[:/]",
                 text, re.MULTILINE):
        return IPV6
    return IPV4


def extract_rules_text(document: str) -> str:
    """Keep only the iptables-save lines of a prose document (a guide, a web page), blanking the
    rest so that line numbers still point into the document."""
    kept = []
    for line in document.splitlines():
        kept.append(line.strip() if _SYNTAX_LINE.match(line) else "")
    return "\n".join(kept) + "\n"


def strip_comment(line: str) -> str:
    """The line without a trailing unquoted `# comment`, right-stripped."""
    quote = None
    for index, char in enumerate(line):
        if quote:
            if char == quote:
                quote = None
        elif char in "\"'":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1].isspace()):
            line = line[:index]
            break
    return line.rstrip()


class _TableBuilder:
    def __init__(self, name: str, line: int):
        self.name = name
        self.line = line
        self.policies: dict[str, str | None] = {chain: "ACCEPT" for chain in BUILTIN_CHAINS[name]}
        self.rules: dict[str, list[tuple[int, str, list[Match], tuple]]] = {
            chain: [] for chain in self.policies}


class _FileParser:
    def __init__(self, family: str, source: str):
        self.family = family
        self.source = source
        self.problems: list[tuple[int, str]] = []
        self.notes: list[str] = []
        self.tables: dict[str, Table] = {}
        self.current: _TableBuilder | None = None

    def parse(self, text: str) -> Ruleset:
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            try:
                self._line(number, line)
            except ValueError as error:
                self.problems.append((number, str(error)))
        if self.current is not None:
            self.notes.append(f"table {self.current.name} has no COMMIT (accepted as committed)")
            self._commit()
        if self.problems:
            raise ParseError(self.source, self.problems)
        return Ruleset(self.family, tuple(self.tables.values()), self.source, tuple(self.notes))

    def _line(self, number: int, line: str) -> None:
        if line.startswith("*"):
            name = line[1:].strip()
            if name not in BUILTIN_CHAINS:
                raise ValueError(f"unknown table {name[:40]!r}")
            if self.current is not None:
                self.notes.append(f"line {number}: table {self.current.name} not committed")
                self._commit()
            self.current = _TableBuilder(name, number)
            return
        if line == "COMMIT":
            if self.current is None:
                raise ValueError("COMMIT outside a table")
            self._commit()
            return
        if line.startswith(":"):
            self._declare(line)
            return
        counters = _COUNTERS.match(line)
        if counters:
            line = line[counters.end():]
        line = strip_comment(line)
        try:
            tokens = shlex.split(line)
        except ValueError as error:
            raise ValueError(f"cannot split line: {error}") from None
        if not tokens or tokens[0] not in ("-A", "--append", "-I", "--insert", "-N", "--new-chain",
                                           "-P", "--policy"):
            raise ValueError(f"not iptables-save syntax: {line[:60]}")
        if self.current is None:
            self.notes.append(f"line {number}: rules before any *table: assuming *filter")
            self.current = _TableBuilder("filter", number)
        self._command(number, line, tokens)

    def _declare(self, line: str) -> None:
        if self.current is None:
            raise ValueError("chain declared outside a table")
        parts = line[1:].split()
        if len(parts) < 2:
            raise ValueError(f"chain line needs a name and a policy: {line}")
        name, policy = parts[0], parts[1]
        builtin = name in BUILTIN_CHAINS[self.current.name]
        if builtin and policy not in ("ACCEPT", "DROP"):
            raise ValueError(f"policy of built-in chain {name} must be ACCEPT or DROP, not {policy}")
        if not builtin and policy != "-":
            raise ValueError(f"user chain {name} cannot have policy {policy}")
        self.current.policies[name] = policy if builtin else None
        self.current.rules.setdefault(name, [])

    def _command(self, number: int, line: str, tokens: list[str]) -> None:
        table = self.current
        command = tokens[0]
        if len(tokens) < 2:
            raise ValueError(f"{command} needs a chain name")
        chain = tokens[1]
        if command in ("-N", "--new-chain"):
            table.policies.setdefault(chain, None)
            table.rules.setdefault(chain, [])
            return
        if command in ("-P", "--policy"):
            if chain not in BUILTIN_CHAINS[table.name] or len(tokens) != 3 or tokens[2] not in (
                    "ACCEPT", "DROP"):
                raise ValueError(f"bad policy command: {line}")
            table.policies[chain] = tokens[2]
            return
        if chain not in table.rules:
            raise ValueError(f"chain {chain} does not exist in table {table.name}")
        rest = tokens[2:]
        index = len(table.rules[chain])
        if command in ("-I", "--insert"):
            index = 0
            if rest and rest[0].isdigit():
                index = int(rest[0]) - 1
                rest = rest[1:]
        parsed = _RuleParser(rest, self.family).parse()
        if parsed is None:  # -4 rule in an ip6tables file or the reverse: iptables skips it
            return
        matches, target = parsed
        table.rules[chain].insert(index, (number, line, matches, target))

    def _commit(self) -> None:
        table = self.current
        self.current = None
        chains = []
        for name, policy in table.policies.items():
            rules = []
            for position, (number, text, matches, raw_target) in enumerate(table.rules[name], 1):
                target = _resolve_target(raw_target, table, self.family)
                rules.append(Rule(table.name, name, position, number, text, tuple(matches), target))
                if target.kind in ("jump", "goto") and target.name not in table.rules:
                    self.problems.append((number, f"chain {target.name} does not exist"))
            chains.append(Chain(name, policy, tuple(rules)))
        self.tables[table.name] = Table(table.name, tuple(chains))


def _resolve_target(raw: tuple, table: _TableBuilder, family: str) -> Target:
    """(flag, name, options, text) -> Target, knowing the table's chains."""
    flag, name, options, text = raw
    options = tuple(options)
    if flag is None:
        return Target("", "none")
    if flag == "bad":
        return Target(name, "unknown", options, text, options[0][1])
    if flag == "goto":
        if name in table.rules and table.policies.get(name) is None:
            return Target(name, "goto", options, text)
        return Target(name, "unknown", options, text, f"goto to {name}, which is not a user chain")
    if name in _VERDICT_TARGETS:
        if name == "REJECT":
            reject_with = dict(options).get("--reject-with", DEFAULT_REJECT_WITH[family])
            if reject_with not in _REJECT_WITH[family]:
                return Target(name, "unknown", options, text, f"unknown --reject-with {reject_with}")
            options = tuple((k, v) for k, v in options if k != "--reject-with")
            options += (("--reject-with", reject_with),)
        return Target(name, "verdict", options, text)
    if name == "RETURN":
        return Target(name, "return", options, text)
    if name in _LOG_TARGETS:
        return Target(name, "log", options, text)
    if name in _CT_TARGETS:
        return Target(name, "ct", options, text)
    if name in _NAT_TARGETS:
        return Target(name, "nat", options, text)
    if name in table.rules and table.policies.get(name) is None:
        return Target(name, "jump", options, text)
    if name in table.rules:
        return Target(name, "unknown", options, text, f"cannot jump to built-in chain {name}")
    if not name.isupper():
        return Target(name, "unknown", options, text, f"no chain or target named {name}")
    return Target(name, "unknown", options, text, f"target {name} not understood")


class _RuleParser:
    """Turns the tokens after `-A CHAIN` into matches and a raw target."""

    def __init__(self, tokens: list[str], family: str):
        self.tokens = tokens
        self.family = family
        self.pos = 0
        self.matches: list[Match] = []
        self.target: tuple = (None, "", (), "")
        self.module: str | None = None
        self.proto: int | None = None
        self.skip = False

    def parse(self) -> tuple[list[Match], tuple] | None:
        while self.pos < len(self.tokens):
            self._step()
        for index, match in enumerate(self.matches):
            if match.kind in ("sport", "dport", "ports") and match.value[0] is None:
                if self.proto not in (6, 17):
                    self.matches[index] = _unknown(match.text, "multiport needs -p tcp or -p udp")
                else:
                    self.matches[index] = Match(match.kind, match.negated,
                                                (self.proto,) + match.value[1:], match.text)
        return None if self.skip else (self.matches, self.target)

    def _take(self) -> str | None:
        if self.pos >= len(self.tokens):
            return None
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def _is_boundary(self, index: int) -> bool:
        if index >= len(self.tokens):
            return True
        token = self.tokens[index]
        if token == "!":
            return index + 1 < len(self.tokens) and self.tokens[index + 1] in _GENERIC
        return token in _GENERIC

    def _step(self) -> None:
        negated = False
        token = self._take()
        if token == "!":
            negated = True
            token = self._take()
            if token is None:
                self.matches.append(_unknown("!", "dangling '!' at the end of the rule"))
                return
        if token in _SRC + _DST + _IN + _OUT + _PROTO:
            self._generic(token, negated)
        elif token in _MATCH:
            name = self._take() or ""
            self._start_module(_MODULE_ALIASES.get(name, name), name)
        elif token in _JUMP or token in _GOTO:
            self._target("goto" if token in _GOTO else "jump", token)
        elif token in ("-4", "--ipv4", "-6", "--ipv6"):
            wanted = IPV4 if token in ("-4", "--ipv4") else IPV6
            self.skip = self.skip or wanted != self.family
        elif token in ("-c", "--set-counters"):
            self.pos += 2
        elif token in ("-f", "--fragment"):
            self.matches.append(_unknown(("! " if negated else "") + token,
                                         "fragment matching not understood"))
        elif token.startswith("--"):
            self._module_option(token, negated)
        else:
            self.matches.append(_unknown(token, f"unexpected token {token!r}"))

    def _value(self, option: str) -> tuple[str | None, bool]:
        """The option's argument, honouring the old `-s ! addr` negation form."""
        negated = False
        if self.pos < len(self.tokens) and self.tokens[self.pos] == "!":
            negated = True
            self.pos += 1
        return self._take(), negated

    def _generic(self, option: str, negated: bool) -> None:
        value, old_negation = self._value(option)
        negated = negated or old_negation
        text = f"{'! ' if negated else ''}{option} {value}"
        if value is None:
            self.matches.append(_unknown(option, f"{option} needs a value"))
            return
        try:
            if option in _SRC + _DST:
                networks = tuple(self._network(item) for item in value.split(","))
                if negated and len(networks) > 1:
                    raise ValueError("! not allowed with several addresses")
                self.matches.append(Match("src" if option in _SRC else "dst", negated, networks, text))
            elif option in _IN + _OUT:
                if not re.fullmatch(r"[^\s/]{1,15}", value):
                    raise ValueError(f"bad interface name {value!r}")
                self.matches.append(Match("in" if option in _IN else "out", negated, (value,), text))
            else:
                number = parse_protocol(value)
                if not negated:
                    self.proto = number
                self.matches.append(Match("proto", negated, (number,), text))
        except ValueError as error:
            self.matches.append(_unknown(text, str(error)))

    def _network(self, text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        try:
            network = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise ValueError(f"address {text!r} not understood (not a literal address/mask)") from None
        if (network.version == 4) != (self.family == IPV4):
            raise ValueError(f"address {text} is not {self.family}")
        return network

    def _start_module(self, name: str, written: str) -> None:
        if name in _MODULE_OPTIONS:
            self.module = name
            return
        self.module = None
        start = self.pos
        while not self._is_boundary(self.pos):
            self.pos += 1
        text = " ".join(["-m", written] + [_quote(t) for t in self.tokens[start:self.pos]])
        self.matches.append(_unknown(text, f"match module {written!r} not understood"))

    def _module_option(self, option: str, negated: bool) -> None:
        module = self.module
        if module is None or option not in _MODULE_OPTIONS[module]:
            implicit = _PROTO_MODULE.get(self.proto)
            if implicit and option in _MODULE_OPTIONS[implicit]:
                module = implicit
        if module is None or option not in _MODULE_OPTIONS[module]:
            start = self.pos
            while not self._is_boundary(self.pos) and not self.tokens[self.pos].startswith("--"):
                self.pos += 1
            args = " ".join(_quote(t) for t in self.tokens[start:self.pos])
            where = f"of match {self.module}" if self.module else "(no match module loaded)"
            text = f"{'! ' if negated else ''}{option} {args}".strip()
            self.matches.append(_unknown(text, f"option {option} {where} not understood"))
            return
        arity = _MODULE_OPTIONS[module][option]
        if arity and self.pos < len(self.tokens) and self.tokens[self.pos] == "!":
            negated = True
            self.pos += 1
        args = self.tokens[self.pos:self.pos + arity]
        self.pos += arity
        text = " ".join([f"-m {module}", "!" if negated else "", option] + [_quote(a) for a in args])
        text = " ".join(text.split())
        if len(args) < arity:
            self.matches.append(_unknown(text, f"{option} needs {arity} argument(s)"))
            return
        try:
            match = _module_match(module, option, args, negated, text, self.family)
        except ValueError as error:
            match = _unknown(text, str(error))
        if match is not None:
            self.matches.append(match)

    def _target(self, flag: str, option: str) -> None:
        name = self._take()
        if name is None:
            self.matches.append(_unknown(option, f"{option} needs a target"))
            return
        options: list[tuple[str, str]] = []
        start = self.pos
        while not self._is_boundary(self.pos):
            key = self.tokens[self.pos]
            self.pos += 1
            if key in _FLAG_OPTIONS or self._is_boundary(self.pos) or not key.startswith("--"):
                options.append((key, ""))
            else:
                options.append((key, self.tokens[self.pos]))
                self.pos += 1
        text = " ".join([option, name] + [_quote(t) for t in self.tokens[start:self.pos]])
        if self.target[0] is not None:
            self.target = ("bad", name, (("", "more than one target in a rule"),), text)
            return
        self.target = (flag, name, tuple(options), text)


def _module_match(module: str, option: str, args: list[str], negated: bool, text: str,
                  family: str) -> Match | None:
    """One understood module option -> Match (None for options without effect)."""
    if module in ("tcp", "udp"):
        proto = 6 if module == "tcp" else 17
        if option in ("--sport", "--source-port", "--dport", "--destination-port"):
            kind = "sport" if option in ("--sport", "--source-port") else "dport"
            return Match(kind, negated, (proto, (parse_port_range(args[0]),)), text)
        if option == "--syn":
            return Match("tcpflags", negated, (_flags("FIN,SYN,RST,ACK"), _flags("SYN")), text)
        return Match("tcpflags", negated, (_flags(args[0]), _flags(args[1])), text)
    if module == "multiport":
        ranges = tuple(parse_port_range(item) for item in args[0].split(","))
        if len(ranges) > 15:
            raise ValueError("multiport allows at most 15 ports")
        kind = {"--sports": "sport", "--source-ports": "sport", "--ports": "ports"}.get(option, "dport")
        return Match(kind, negated, (None, ranges), text)
    if module in ("conntrack", "state"):
        states = tuple(sorted(set(args[0].upper().split(","))))
        allowed = CONNTRACK_STATES | (CT_VIRTUAL_STATES if module == "conntrack" else frozenset())
        bad = [state for state in states if state not in allowed]
        if bad:
            raise ValueError(f"unknown state {','.join(bad)}")
        return Match("ctstate" if module == "conntrack" else "state", negated, states, text)
    if module == "set":
        if option != "--match-set":
            return None
        directions = tuple(args[1].split(","))
        if not all(d in ("src", "dst") for d in directions):
            raise ValueError(f"bad set flags {args[1]!r}")
        return Match("set", negated, (args[0], directions), text)
    if module in ("icmp", "icmp6"):
        proto = 1 if module == "icmp" else 58
        kind, low, high = parse_icmp_type(args[0], IPV4 if module == "icmp" else IPV6)
        if (proto == 58) != (family == IPV6):
            raise ValueError(f"match {module} does not apply to {family}")
        return Match("icmp", negated, (proto, kind, low, high), text)
    return Match(module, negated, tuple(args), text)  # limit, comment: no effect on verdicts


def parse_port_range(text: str) -> tuple[int, int]:
    """`22`, `1000:2000`, `:1024`, `1024:` or a service name -> (low, high)."""
    low, sep, high = text.partition(":")
    first = _port(low) if low else 0
    last = (_port(high) if high else 65535) if sep else first
    if first > last:
        raise ValueError(f"invalid port range {text!r} (min > max)")
    return first, last


def _port(text: str) -> int:
    if text.isdigit():
        value = int(text)
        if value > 65535:
            raise ValueError(f"port {text} out of range")
        return value
    if text in _WELL_KNOWN_PORTS:
        return _WELL_KNOWN_PORTS[text]
    try:
        return socket.getservbyname(text)
    except OSError:
        raise ValueError(f"unknown port {text!r}") from None


def _flags(text: str) -> int:
    value = 0
    for name in text.upper().split(","):
        if name not in TCP_FLAGS:
            raise ValueError(f"unknown TCP flag {name!r}")
        value |= TCP_FLAGS[name]
    return value


def _unknown(text: str, reason: str) -> Match:
    return Match("unknown", False, (reason,), text)


def _quote(token: str) -> str:
    return shlex.quote(token) if token and not re.fullmatch(r"[\w@%+=:,./!-]+", token) else token or "''"
