"""Netfilter verdicts for packets, computed from a parsed ruleset (no kernel needed).

`compile_ruleset(ruleset, ipsets)` turns every rule into a tuple of predicate closures once;
`Evaluator.verdict(packet, "INPUT")` then walks the chains exactly as netfilter does: first match
wins, LOG continues, RETURN pops, `-j` calls, `-g` replaces the frame, policy at the end of a
built-in chain. A predicate answers True, False or None (cannot tell: not understood, or the packet
lacks the field); a rule that may match and could change the outcome is explored both ways, and
the verdict is UNKNOWN only if the two ways disagree.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from firewall.ipsets import IpSet, membership
from firewall.packet import Packet
from firewall.ruleset import Match, NotUnderstood, Rule, RuleRef, Ruleset

ACCEPT, DROP, REJECT, UNKNOWN = "ACCEPT", "DROP", "REJECT", "UNKNOWN"
Predicate = Callable[[Packet], "bool | None"]
_MAX_FORKS = 256
_MAX_DEPTH = 64

# actions of compiled rules
_VERDICT, _CONTINUE, _RETURN, _JUMP, _GOTO, _UNSURE = range(6)


@dataclass(frozen=True)
class Verdict:
    """The answer: verdict, deciding rule (None = policy), human reason, matched rules on the way."""

    verdict: str
    rule: RuleRef | None
    reason: str
    trace: tuple[RuleRef, ...] = ()
    unknown: tuple[NotUnderstood | str, ...] = ()
    reject_with: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def accepted(self) -> bool:
        return self.verdict == ACCEPT

    def as_dict(self) -> dict:
        return {"verdict": self.verdict, "rule": self.rule.as_dict() if self.rule else None,
                "reason": self.reason, "reject_with": self.reject_with,
                "trace": [ref.as_dict() for ref in self.trace],
                "not_understood": [str(item) for item in self.unknown], "notes": list(self.notes)}


class _Compiled:
    __slots__ = ("preds", "matches", "action", "arg", "ref", "rule")

    def __init__(self, preds, matches, action, arg, rule: Rule):
        self.preds = preds
        self.matches = matches
        self.action = action
        self.arg = arg
        self.rule = rule
        self.ref = rule.ref


class Evaluator:
    """Compiled chains of one table; `verdict(packet, chain)` is the fast entry point."""

    def __init__(self, ruleset: Ruleset, table: str, chains: dict[str, tuple[_Compiled, ...]],
                 policies: dict[str, str | None]):
        self.ruleset = ruleset
        self.table = table
        self._chains = chains
        self._policies = policies

    def verdict(self, packet: Packet, chain: str = "INPUT") -> Verdict:
        """The table's verdict for `packet` entering built-in `chain`."""
        if self._policies.get(chain) is None:
            known = ", ".join(name for name, policy in self._policies.items() if policy)
            raise ValueError(f"{chain} is not a built-in chain of table {self.table} (has: {known})")
        family = packet.family
        if family is not None and family != self.ruleset.family:
            raise ValueError(f"packet is {family} but the ruleset is {self.ruleset.family}")
        return self._walk(packet, chain, [], self._chains[chain], 0, [], [], [0], False)

    def _walk(self, packet, base, frames, rules, index, trace, notes, forks, force) -> Verdict:
        while True:
            if index >= len(rules):
                if not frames:
                    return self._policy(base, trace, notes)
                rules, index = frames.pop()
                continue
            compiled = rules[index]
            index += 1
            if force:
                force = False
            else:
                matched = True
                for pred in compiled.preds:
                    answer = pred(packet)
                    if answer is not True:
                        if answer is False:
                            matched = False
                            break
                        matched = None
                if matched is False:
                    continue
                if matched is None:
                    if compiled.action == _CONTINUE:
                        continue
                    return self._fork(packet, base, frames, rules, index, trace, notes, forks,
                                      compiled)
            action = compiled.action
            trace.append(compiled.ref)
            if action == _VERDICT:
                verdict, reject_with = compiled.arg
                return Verdict(verdict, compiled.ref, str(compiled.ref), tuple(trace), (),
                               reject_with, tuple(notes))
            if action == _CONTINUE:
                if compiled.arg:
                    notes.append(f"{compiled.ref}: {compiled.arg}")
                continue
            if action == _RETURN:
                if not frames:
                    return self._policy(base, trace, notes)
                rules, index = frames.pop()
                continue
            if action == _JUMP:
                if len(frames) >= _MAX_DEPTH:
                    raise ValueError(f"chain calls nest deeper than {_MAX_DEPTH} at {compiled.ref}")
                frames.append((rules, index))
                rules, index = self._chains[compiled.arg], 0
                continue
            if action == _GOTO:
                rules, index = self._chains[compiled.arg], 0
                continue
            items = compiled.rule.not_understood()
            return Verdict(UNKNOWN, compiled.ref, f"{compiled.ref} matches but its target is not "
                           f"understood ({items[-1].reason})", tuple(trace), items, None, tuple(notes))

    def _fork(self, packet, base, frames, rules, index, trace, notes, forks, compiled) -> Verdict:
        """The rule may or may not match: follow both ways, agree or answer UNKNOWN."""
        doubts = _doubts(compiled, packet)
        doubt_text = "; ".join(str(d) if isinstance(d, str) else f"{d.text}: {d.reason}" for d in doubts)
        forks[0] += 1
        if forks[0] > _MAX_FORKS:
            return Verdict(UNKNOWN, compiled.ref, f"{compiled.ref} may match ({doubt_text}); too many "
                           "undecidable rules to explore", tuple(trace), tuple(doubts), None, tuple(notes))
        taken = self._walk(packet, base, list(frames), rules, index - 1, list(trace), list(notes),
                           forks, True)
        skipped = self._walk(packet, base, list(frames), rules, index, list(trace), list(notes),
                             forks, False)
        if taken.verdict == skipped.verdict != UNKNOWN and taken.reject_with == skipped.reject_with:
            note = f"{compiled.ref} may match ({doubt_text}) but the verdict is the same either way"
            return Verdict(skipped.verdict, skipped.rule, skipped.reason, skipped.trace,
                           skipped.unknown, skipped.reject_with, skipped.notes + (note,))
        unknown = tuple(dict.fromkeys(tuple(doubts) + taken.unknown + skipped.unknown))
        reason = (f"{compiled.ref} may match (cannot tell: {doubt_text}); "
                  f"{_outcome(taken)} if it does, {_outcome(skipped)} if not")
        return Verdict(UNKNOWN, compiled.ref, reason, tuple(trace), unknown, None, tuple(notes))

    def _policy(self, chain: str, trace, notes) -> Verdict:
        policy = self._policies[chain]
        return Verdict(policy, None, f"policy {policy} of {chain}", tuple(trace), (), None, tuple(notes))


def compile_ruleset(ruleset: Ruleset, ipsets: Mapping[str, IpSet] | None = None, *,
                    table: str = "filter") -> Evaluator:
    """Pre-compile every rule of `table` into predicates; ValueError on chain loops."""
    ipsets = ipsets or {}
    source = ruleset.table(table)
    tests = {}
    compiled_chains: dict[str, tuple[_Compiled, ...]] = {}
    for chain in source.chains:
        compiled = []
        for rule in chain.rules:
            preds, kept = [], []
            for match in sorted((_check_set(m, ipsets, ruleset.family) for m in rule.matches),
                                key=_cost):
                pred = _predicate(match, ipsets, tests, ruleset.family)
                if pred is not None:
                    preds.append(pred)
                    kept.append(match)
            action, arg = _action(rule, table)
            compiled.append(_Compiled(tuple(preds), tuple(kept), action, arg, rule))
        compiled_chains[chain.name] = tuple(compiled)
    _check_loops(compiled_chains)
    policies = {chain.name: chain.policy for chain in source.chains}
    return Evaluator(ruleset, table, compiled_chains, policies)


def evaluate(ruleset: Ruleset, packet: Packet, chain: str = "INPUT",
             ipsets: Mapping[str, IpSet] | None = None, table: str = "filter") -> Verdict:
    """One-off convenience: compile and evaluate (compile once for many packets instead)."""
    return compile_ruleset(ruleset, ipsets, table=table).verdict(packet, chain)


def _action(rule: Rule, table: str) -> tuple[int, object]:
    target = rule.target
    if target.kind == "verdict":
        return _VERDICT, (target.name, target.option("--reject-with"))
    if target.kind == "return":
        return _RETURN, None
    if target.kind == "jump":
        return _JUMP, target.name
    if target.kind == "goto":
        return _GOTO, target.name
    if target.kind == "nat":
        if table == "nat":
            return _VERDICT, (ACCEPT, None)
        return _CONTINUE, f"{target.name} has no effect in the {table} table"
    if target.kind == "ct" and table != "raw":
        return _CONTINUE, f"{target.name} has no effect in the {table} table"
    if target.kind in ("log", "ct", "none"):
        return _CONTINUE, None
    return _UNSURE, None


def _check_set(match: Match, ipsets: Mapping[str, IpSet], family: str) -> Match:
    """A set match on a set we cannot test becomes a not-understood match, with the reason."""
    if match.kind != "set":
        return match
    ipset = ipsets.get(match.value[0])
    if ipset is None:
        reason = f"set {match.value[0]} is not defined in the ipsets given" if ipsets else \
            f"set {match.value[0]}: no ipsets given"
    elif not ipset.understood:
        reason = f"set type {ipset.type} not understood"
    elif ipset.family != family:
        reason = f"set {ipset.name} is {ipset.family}, the ruleset {family}"
    else:
        return match
    return Match("unknown", False, (reason,), match.text)


def _outcome(verdict: Verdict) -> str:
    if verdict.verdict == UNKNOWN:
        return "UNKNOWN"
    return f"{verdict.verdict} by {verdict.rule.chain} rule {verdict.rule.position}" if verdict.rule \
        else f"{verdict.verdict} by policy"


def _check_loops(chains: dict[str, tuple[_Compiled, ...]]) -> None:
    calls = {name: {c.arg for c in rules if c.action in (_JUMP, _GOTO)} for name, rules in chains.items()}
    state: dict[str, int] = {}

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            raise ValueError("chain loop: " + " -> ".join(path[path.index(name):] + [name]))
        state[name] = 1
        for callee in calls[name]:
            visit(callee, path + [name])
        state[name] = 2

    for name in chains:
        visit(name, [])


def _doubts(compiled: _Compiled, packet: Packet) -> list[NotUnderstood | str]:
    found: list[NotUnderstood | str] = []
    rule = compiled.rule
    for pred, match in zip(compiled.preds, compiled.matches):
        if pred(packet) is None:
            if match.understood:
                found.append(f"the packet lacks the field that `{match.text}` tests")
            else:
                found.append(NotUnderstood(rule.table, rule.chain, rule.position, match.text,
                                           match.value[0], rule.line))
    return found


_COSTS = {"proto": 0, "dport": 1, "in": 2, "sport": 3, "out": 3, "icmp": 3, "tcpflags": 4,
          "src": 5, "dst": 5, "state": 6, "ctstate": 6, "ports": 6, "set": 7, "unknown": 9}


def _cost(match) -> int:
    return _COSTS.get(match.kind, 8)


def _predicate(match, ipsets, tests, family) -> Predicate | None:
    """One match -> closure answering True/False/None; None when the match never matters."""
    kind, negated, value = match.kind, match.negated, match.value
    if kind in ("limit", "comment"):
        return None
    if kind == "unknown":
        return _never_sure
    if kind in ("src", "dst"):
        ranges = tuple((int(n.network_address), int(n.broadcast_address)) for n in value)
        return _address_pred(kind + "_int", ranges, negated)
    if kind in ("in", "out"):
        return _iface_pred("in_iface" if kind == "in" else "out_iface", value[0], negated)
    if kind == "proto":
        return _proto_pred(value[0], negated)
    if kind in ("sport", "dport", "ports"):
        return _port_pred(kind, value[0], value[1], negated)
    if kind in ("state", "ctstate"):
        return _state_pred(frozenset(value), kind == "ctstate", negated)
    if kind == "icmp":
        return _icmp_pred(*value, negated)
    if kind == "tcpflags":
        return _flags_pred(value[0], value[1], negated)
    if kind == "set":
        key = value[0]
        if key not in tests:
            tests[key] = membership(ipsets[key])
        return _set_pred(tests[key], "src_int" if value[1][0] == "src" else "dst_int", negated)
    return _never_sure


def _never_sure(packet: Packet) -> None:
    return None


def _address_pred(attr: str, ranges: tuple[tuple[int, int], ...], negated: bool) -> Predicate:
    if len(ranges) == 1:
        low, high = ranges[0]

        def one(packet: Packet) -> bool | None:
            address = getattr(packet, attr)
            if address is None:
                return None
            return (low <= address <= high) != negated
        return one

    def many(packet: Packet) -> bool | None:
        address = getattr(packet, attr)
        if address is None:
            return None
        return any(low <= address <= high for low, high in ranges) != negated
    return many


def _iface_pred(attr: str, name: str, negated: bool) -> Predicate:
    prefix = name[:-1] if name.endswith("+") else None

    def iface(packet: Packet) -> bool | None:
        value = getattr(packet, attr)
        if value is None:
            return None
        found = value.startswith(prefix) if prefix is not None else value == name
        return found != negated
    return iface


def _proto_pred(number: int, negated: bool) -> Predicate:
    if number == 0:
        return (lambda packet: False) if negated else (lambda packet: True)

    def proto(packet: Packet) -> bool | None:
        if packet.proto is None:
            return None
        return (packet.proto == number) != negated
    return proto


def _port_pred(kind: str, proto: int, ranges, negated: bool) -> Predicate:
    span = sum(high - low + 1 for low, high in ranges)
    if span <= 4096:
        ports = frozenset(p for low, high in ranges for p in range(low, high + 1))
        inside = ports.__contains__
    else:
        def inside(port: int) -> bool:
            return any(low <= port <= high for low, high in ranges)
    attrs = ("sport", "dport") if kind == "ports" else (kind,)

    def port(packet: Packet) -> bool | None:
        if packet.proto != proto:
            return None if packet.proto is None else False
        values = [getattr(packet, attr) for attr in attrs]
        if None in values:
            return None
        return any(inside(v) for v in values) != negated
    return port


def _state_pred(states: frozenset[str], conntrack: bool, negated: bool) -> Predicate:
    if conntrack:
        return lambda packet: (not states.isdisjoint(packet.ctstates)) != negated
    return lambda packet: (packet.state in states) != negated


def _icmp_pred(proto: int, kind: int, low: int, high: int, negated: bool) -> Predicate:
    def icmp(packet: Packet) -> bool | None:
        if packet.proto != proto:
            return None if packet.proto is None else False
        if kind < 0:
            return not negated
        if packet.icmp_type is None:
            return None
        found = packet.icmp_type == kind and (
            (low == 0 and high == 255) or (packet.icmp_code is not None and low <= packet.icmp_code <= high))
        if packet.icmp_code is None and packet.icmp_type == kind and not (low == 0 and high == 255):
            return None
        return found != negated
    return icmp


def _flags_pred(mask: int, compare: int, negated: bool) -> Predicate:
    def flags(packet: Packet) -> bool | None:
        if packet.proto != 6:
            return None if packet.proto is None else False
        if packet.tcp_flags is None:
            return None
        return ((packet.tcp_flags & mask) == compare) != negated
    return flags


def _set_pred(contains: Callable[[int], bool], attr: str, negated: bool) -> Predicate:
    def member(packet: Packet) -> bool | None:
        address = getattr(packet, attr)
        if address is None:
            return None
        return contains(address) != negated
    return member


__all__ = ["ACCEPT", "DROP", "REJECT", "UNKNOWN", "Verdict", "Evaluator", "compile_ruleset",
           "evaluate"]
