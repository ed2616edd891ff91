"""Static verification: the generated rules, parsed back, against the matrix the model intends.

Every Expectation of `firewall.intent.intended_matrix` becomes the packet(s) it means and is
evaluated on the destination's phase-2 rules as `parse_ruleset` reads the compiler's text (so
what is checked is what a host loads). A difference carries its counterexample: source,
destination, interface, proto/port, the intent (and the flow behind it) and the deciding rule.
Anti-lockout is proven for phase 1 (cloud-init, only the tunnel in the sets) and phase 2, and
shadowed/redundant rules are reported as findings.

Speed: hosts with identical rules and sets (every host of a role) share one parsed ruleset and one
compiled evaluator per family and table; verdicts are memoised per group when no rule of the table
looks at the destination address, so the cost per probe is a dictionary lookup.
"""
from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from firewall.compile import Compiler, HostFirewall
from firewall.evaluate import ACCEPT, UNKNOWN, Evaluator, Verdict, compile_ruleset
from firewall.intent import Expectation, Probe, intended_matrix
from firewall.ipsets import IpSet, parse_ipsets
from firewall.members import private_addresses
from firewall.packet import Packet
from firewall.parse import parse_ruleset
from firewall.ruleset import IPV4, IPV6, Ruleset
from firewall.shadow import Finding, find_shadowed
from topology.model import PRIVATE, PUBLIC, Stack

SPORT = 40000  # the ephemeral source port of every probe
REPRESENTATIVES_ABOVE = 60  # hosts; beyond this one host per role stands for its role as a source
NO_DNAT, NO_SNAT = "NO-DNAT", "NO-SNAT"
PROTO_NUMBERS = {"tcp": 6, "udp": 17}
_VERBS = {ACCEPT: "accepts", "DROP": "drops", "REJECT": "rejects", UNKNOWN: "may or may not accept"}
_FORWARD_VERBS = {ACCEPT: "forwards", "DROP": "drops", "REJECT": "rejects", NO_DNAT: "does not DNAT",
                  NO_SNAT: "forwards without masquerading", UNKNOWN: "may or may not forward"}


@dataclass(frozen=True)
class HostRules:
    """What a host loads, parsed: v4 and v6 rulesets (v6 None when not given) and its ipsets."""

    label: str
    v4: Ruleset
    v6: Ruleset | None
    ipsets: Mapping[str, IpSet]

    def family(self, family: str) -> Ruleset | None:
        return self.v4 if family == IPV4 else self.v6


def parse_host_rules(label: str, rules_v4: str, rules_v6: str | None, ipsets: str | None,
                     sources: tuple[str, str, str] = ("rules.v4", "rules.v6", "ipsets")) -> HostRules:
    """Parse a host's texts (ParseError names the source and lines)."""
    return HostRules(label, parse_ruleset(rules_v4, family=IPV4, source=sources[0]),
                     None if rules_v6 is None else parse_ruleset(rules_v6, family=IPV6, source=sources[1]),
                     parse_ipsets(ipsets, source=sources[2]) if ipsets is not None else {})


@dataclass(frozen=True)
class Step:
    """One hop of a probe: which host's table/chain saw which packet, and the verdict."""

    host: str
    table: str
    chain: str
    packet: Packet
    verdict: Verdict

    def decided_by(self) -> str:
        v = self.verdict
        if v.verdict == UNKNOWN:
            return v.reason
        if v.rule is None:
            return v.reason  # "policy DROP of INPUT" or "no filter table"
        return f"{v.rule.chain} rule {v.rule.position} ({v.rule.text})"

    def as_dict(self) -> dict:
        v = self.verdict
        return {"host": self.host, "table": self.table, "chain": self.chain, "packet": str(self.packet),
                "verdict": v.verdict, "rule": v.rule.as_dict() if v.rule else None, "reason": v.reason}


@dataclass(frozen=True)
class Outcome:
    """What the rules do with a probe: ACCEPT when it passes every step, else the stopping verdict
    (NO-DNAT: the gateway does not forward it; NO-SNAT: it leaves unmasqueraded)."""

    verdict: str
    steps: tuple[Step, ...]
    reached: str | None = None  # dnat: the host (or address) the gateway forwards to

    @property
    def accepted(self) -> bool:
        return self.verdict == ACCEPT

    def decided_by(self) -> str:
        if len(self.steps) == 1:
            return self.steps[0].decided_by()
        return "; then ".join(f"{s.host} {s.table}/{s.chain}: {s.decided_by()}" for s in self.steps)


@dataclass(frozen=True)
class Difference:
    """A probe whose outcome differs from the intent (or cannot be decided), with its counterexample."""

    expectation: Expectation
    outcome: Outcome
    packet: Packet  # the first packet of the probe, as `enclave evaluate --packet` takes it

    @property
    def kind(self) -> str:
        """allows (should not), denies (should allow), unknown, or wrong-target (dnat elsewhere)."""
        if self.outcome.verdict == UNKNOWN:
            return "unknown"
        if self.outcome.accepted and self.expectation.allowed:
            return "wrong-target"
        return "allows" if self.outcome.accepted else "denies"

    def message(self) -> str:
        e, o = self.expectation, self.outcome
        p = e.probe
        if p.kind == "input":
            head = f"{p.dest} {_VERBS.get(o.verdict, o.verdict)} {p.proto}/{p.port} from {p.source.name} on {p.interface}"
        elif p.kind == "dnat" and o.reached and len(o.steps) > 2:  # forwarded; the receiver decided
            head = (f"{p.dest} forwards {p.proto}/{p.port} from {p.source.name} on {p.interface} to "
                    f"{o.reached} (port forward to {p.target})")
            if not o.accepted:
                head += f", which {_VERBS.get(o.verdict, o.verdict).replace('accept', 'take')} it"
        elif p.kind == "dnat":
            head = (f"{p.dest} {_FORWARD_VERBS.get(o.verdict, o.verdict)} {p.proto}/{p.port} from "
                    f"{p.source.name} on {p.interface} (port forward to {p.target})")
        else:
            head = f"{_gateway_label(p)} {_FORWARD_VERBS.get(o.verdict, o.verdict)} {p.proto}/{p.port} from {p.source.name} to the internet"
        if e.allowed:
            flow, _, what = e.because.partition(": ")
            head += f", intended by {flow}" + (f" ({what})" if what else "")
        elif o.verdict == UNKNOWN:
            head += f", intended closed ({e.because})"
        return f"{head}: {o.decided_by()}"

    def as_dict(self) -> dict:
        e, p = self.expectation, self.expectation.probe
        return {"kind": self.kind, "message": self.message(), "source": p.source.name,
                "source_address": p.source.address, "dest": p.dest, "dest_address": p.dest_address,
                "interface": p.interface, "proto": p.proto, "port": p.port, "probe": p.kind,
                "target": p.target, "intended": "allow" if e.allowed else "deny", "because": e.because,
                "actual": self.outcome.verdict, "reached": self.outcome.reached,
                "packet": str(self.packet), "steps": [s.as_dict() for s in self.outcome.steps]}


def _gateway_label(probe: Probe) -> str:
    return probe.target or "the gateway"


class RuleBook:
    """Host name -> its parsed rules; one evaluator per (group of identical hosts, family, table).

    Not a value: it caches compiled evaluators and verdicts while a verification runs.
    """

    def __init__(self, stack: Stack, groups: list[HostRules], group_of: dict[str, int],
                 addresses: Mapping[str, str]):
        self.stack = stack
        self.groups = groups
        self.group_of = group_of
        self.addresses = dict(addresses)
        self.host_at = {ipaddress.ip_address(a): h for h, a in self.addresses.items()}
        self._evaluators: dict[tuple[int, str, str], Evaluator | None] = {}
        self._uses_dst: dict[tuple[int, str, str], bool] = {}
        self._memo: dict[tuple, object] = {}
        self._ips: dict[str, ipaddress.IPv4Address | ipaddress.IPv6Address] = {}

    @classmethod
    def generated(cls, stack: Stack, phase: int = 2, private_ips: Mapping[str, str] | None = None) -> "RuleBook":
        """Every host's rules as the compiler writes them for `phase`, grouped by identical text."""
        compiler = Compiler(stack, private_ips, phase)
        groups: list[HostRules] = []
        index: dict[tuple[str, str, str], int] = {}
        group_of: dict[str, int] = {}
        for host in stack.hosts:
            fw = compiler.host(host.name)
            key = (_body(fw.rules_v4), _body(fw.rules_v6), fw.ipsets)
            if key not in index:
                index[key] = len(groups)
                groups.append(_parse_generated(fw, host.role, phase))
            group_of[host.name] = index[key]
        return cls(stack, groups, group_of, private_addresses(stack, private_ips))

    def replace(self, host: str, rules: HostRules) -> None:
        """Give `host` its own rules (audit: the live dump), leaving the others as they are."""
        self.groups.append(rules)
        self.group_of[host] = len(self.groups) - 1

    def rules(self, host: str) -> HostRules:
        return self.groups[self.group_of[host]]

    def hosts_of_group(self, group: int) -> list[str]:
        return [h for h, g in self.group_of.items() if g == group]

    def ip(self, text: str):
        found = self._ips.get(text)
        if found is None:
            found = self._ips[text] = ipaddress.ip_address(text)
        return found

    def evaluator(self, group: int, family: str, table: str) -> Evaluator | None:
        """The compiled table (None: the family's ruleset or the table is absent)."""
        key = (group, family, table)
        if key not in self._evaluators:
            ruleset = self.groups[group].family(family)
            if ruleset is None or not ruleset.has_table(table):
                self._evaluators[key] = None
                self._uses_dst[key] = True
            else:
                self._evaluators[key] = compile_ruleset(ruleset, self.groups[group].ipsets, table=table)
                self._uses_dst[key] = _uses_dst(ruleset, table)
        return self._evaluators[key]

    def has_family(self, host: str, family: str) -> bool:
        return self.rules(host).family(family) is not None

    def verdict(self, host: str, table: str, chain: str, packet: Packet) -> Verdict:
        """The verdict of `host`'s `table`/`chain` for `packet` (memoised per group)."""
        group = self.group_of[host]
        family = packet.family
        evaluator = self.evaluator(group, family, table)
        if evaluator is None:
            if self.groups[group].family(family) is None:
                return Verdict(UNKNOWN, None, f"no {family} rules given for {host}")
            return Verdict(ACCEPT, None, f"no {table} table: the kernel's built-in chains accept")
        key = (group, family, table, chain, packet.proto, packet.src_int,
               packet.dst_int if self._uses_dst[(group, family, table)] else None, packet.sport,
               packet.dport, packet.in_iface, packet.out_iface, packet.state, packet.nat,
               packet.icmp_type, packet.icmp_code, packet.tcp_flags)
        found = self._memo.get(key)
        if found is None:
            found = self._memo[key] = evaluator.verdict(packet, chain)
        return found  # type: ignore[return-value]

    # --- probes -------------------------------------------------------------------------------

    def first_packet(self, probe: Probe) -> Packet:
        """The packet a probe starts with, as it arrives at its first hop."""
        proto = PROTO_NUMBERS[probe.proto]
        src = self.ip(probe.source.address)
        if probe.kind == "input":
            return Packet(proto, src, self.ip(probe.dest_address), SPORT, probe.port, probe.interface)
        if probe.kind == "dnat":
            return Packet(proto, src, self.ip(probe.dest_address), SPORT, probe.port, PUBLIC)
        return Packet(proto, src, self.ip(probe.dest_address), SPORT, probe.port, PRIVATE, PUBLIC)

    def outcome(self, probe: Probe) -> Outcome | None:
        """What the rules do with `probe` (None: the rules of its family were not given)."""
        if probe.kind == "input":
            return self.input_outcome(probe)
        if probe.kind == "dnat":
            return self.dnat_outcome(probe)
        return self.forward_out_outcome(probe)

    def input_outcome(self, probe: Probe) -> Outcome | None:
        group = self.group_of[probe.dest]
        family = IPV4 if probe.source.family == 4 else IPV6
        if self.groups[group].family(family) is None:
            return None
        if (group, family, "filter") not in self._uses_dst:
            self.evaluator(group, family, "filter")
        key = (group, family, probe.source.address, probe.interface, probe.proto, probe.port,
               probe.dest_address if self._uses_dst[(group, family, "filter")] else None)
        found = self._memo.get(key)
        if found is None:
            packet = self.first_packet(probe)
            verdict = self.verdict(probe.dest, "filter", "INPUT", packet)
            found = self._memo[key] = Outcome(verdict.verdict, (Step(probe.dest, "filter", "INPUT", packet, verdict),))
        return found  # type: ignore[return-value]

    def dnat_outcome(self, probe: Probe) -> Outcome | None:
        gateway = probe.dest
        if not self.has_family(gateway, IPV4):
            return None
        first = self.first_packet(probe)
        verdict = self.verdict(gateway, "nat", "PREROUTING", first)
        steps = [Step(gateway, "nat", "PREROUTING", first, verdict)]
        if verdict.verdict == UNKNOWN:
            return Outcome(UNKNOWN, tuple(steps))
        try:
            target = self._nat_address(gateway, verdict, "DNAT", "--to-destination")
        except ValueError as error:
            return Outcome(UNKNOWN, tuple(steps[:-1]) + (_unknown_step(steps[-1], str(error)),))
        if target is None:
            return Outcome(NO_DNAT, tuple(steps))
        address, port = target
        forwarded = Packet(first.proto, first.src, address, SPORT, port or first.dport, PUBLIC, PRIVATE,
                           nat=frozenset({"DNAT"}))
        verdict = self.verdict(gateway, "filter", "FORWARD", forwarded)
        steps.append(Step(gateway, "filter", "FORWARD", forwarded, verdict))
        reached = self.host_at.get(address)
        if not verdict.accepted:
            return Outcome(verdict.verdict, tuple(steps), reached)
        post = self.verdict(gateway, "nat", "POSTROUTING", forwarded)
        if post.verdict == UNKNOWN:
            return Outcome(UNKNOWN, tuple(steps) + (Step(gateway, "nat", "POSTROUTING", forwarded, post),), reached)
        source = first.src
        if post.rule is not None:
            rule = _rule_at(self.rules(gateway).v4, post)
            if rule.target.name == "MASQUERADE":
                source = self.ip(self.addresses[gateway])
            elif rule.target.name == "SNAT":
                source = self.ip(rule.target.option("--to-source", "").split(":")[0].split("-")[0])
        if reached is None:
            return Outcome(ACCEPT, tuple(steps), str(address))
        arriving = Packet(first.proto, source, address, SPORT, port or first.dport, PRIVATE)
        verdict = self.verdict(reached, "filter", "INPUT", arriving)
        steps.append(Step(reached, "filter", "INPUT", arriving, verdict))
        return Outcome(verdict.verdict, tuple(steps), reached)

    def forward_out_outcome(self, probe: Probe) -> Outcome | None:
        gateway = self.stack.gateway.name  # forward-out probes exist only with a gateway
        if not self.has_family(gateway, IPV4):
            return None
        packet = self.first_packet(probe)
        verdict = self.verdict(gateway, "filter", "FORWARD", packet)
        steps = [Step(gateway, "filter", "FORWARD", packet, verdict)]
        if not verdict.accepted:
            return Outcome(verdict.verdict, tuple(steps))
        post = self.verdict(gateway, "nat", "POSTROUTING", packet)
        steps.append(Step(gateway, "nat", "POSTROUTING", packet, post))
        if post.verdict == UNKNOWN:
            return Outcome(UNKNOWN, tuple(steps))
        rule = _rule_at(self.rules(gateway).v4, post) if post.rule else None
        if rule is None or rule.target.name not in ("MASQUERADE", "SNAT"):
            return Outcome(NO_SNAT, tuple(steps))
        return Outcome(ACCEPT, tuple(steps))

    def _nat_address(self, host: str, verdict: Verdict, target: str, option: str):
        """(address, port or None) a nat verdict rewrites to; None when the rule is not `target`."""
        if verdict.rule is None:
            return None
        rule = _rule_at(self.rules(host).v4, verdict)
        if rule.target.name != target:
            return None
        text = rule.target.option(option) or ""
        address, _, ports = text.partition(":")
        try:
            return self.ip(address.split("-")[0]), int(ports.split("-")[0]) if ports else None
        except ValueError:
            raise ValueError(f"{rule.ref}: cannot read {option} {text!r}") from None


def _unknown_step(step: Step, reason: str) -> Step:
    return Step(step.host, step.table, step.chain, step.packet, Verdict(UNKNOWN, step.verdict.rule, reason))


def _rule_at(ruleset: Ruleset, verdict: Verdict):
    ref = verdict.rule
    return ruleset.table(ref.table).chain(ref.chain).rules[ref.position - 1]


def _uses_dst(ruleset: Ruleset, table: str) -> bool:
    """Does any rule of `table` look at the destination address? (else verdicts ignore it)"""
    for chain in ruleset.table(table).chains:
        for rule in chain.rules:
            for match in rule.matches:
                if match.kind == "dst" or (match.kind == "set" and "dst" in match.value[1]):
                    return True
    return False


def _body(text: str) -> str:
    """The rules without the per-host header comment (hosts of a role differ only there)."""
    return text.split("\n", 1)[1] if text.startswith("#") else text


def _parse_generated(fw: HostFirewall, role: str, phase: int) -> HostRules:
    where = f"{fw.host} (phase {phase})"
    return parse_host_rules(f"role {role}", fw.rules_v4, fw.rules_v6, fw.ipsets,
                            (f"{where} rules.v4", f"{where} rules.v6", f"{where} ipsets"))


# --- anti-lockout ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class LockoutCheck:
    """One anti-lockout fact in one phase, with the step that proves (or refutes) it."""

    phase: int
    host: str
    what: str
    step: Step

    @property
    def ok(self) -> bool:
        return self.step.verdict.accepted

    def message(self) -> str:
        state = "holds" if self.ok else "FAILS"
        return f"phase {self.phase}: {self.what} {state} on {self.host}: {self.step.decided_by()}"

    def as_dict(self) -> dict:
        return {"phase": self.phase, "host": self.host, "what": self.what, "ok": self.ok,
                "message": self.message(), "step": self.step.as_dict()}


def lockout_checks(book: RuleBook, phase: int) -> list[LockoutCheck]:
    """The tunnel reaches SSH on every host (and the session continues); admins reach the tunnel."""
    stack = book.stack
    tunnel = stack.tunnel
    t_ip = book.ip(book.addresses[tunnel.name])
    checks: list[LockoutCheck] = []

    def check(host: str, what: str, table: str, chain: str, packet: Packet) -> None:
        checks.append(LockoutCheck(phase, host, what, Step(host, table, chain, packet,
                                                           book.verdict(host, table, chain, packet))))

    for host in stack.hosts:
        if host.name == tunnel.name:
            continue
        h_ip = book.ip(book.addresses[host.name])
        check(host.name, f"{tunnel.name} reaches tcp/22 on eth1", "filter", "INPUT",
              Packet(6, t_ip, h_ip, SPORT, 22, PRIVATE))
        check(host.name, f"{tunnel.name}'s established SSH session continues", "filter", "INPUT",
              Packet(6, t_ip, h_ip, SPORT, 22, PRIVATE, state="ESTABLISHED"))
        check(host.name, f"SSH replies to {tunnel.name} leave", "filter", "OUTPUT",
              Packet(6, h_ip, t_ip, 22, SPORT, None, PRIVATE, state="ESTABLISHED"))
        check(tunnel.name, f"{tunnel.name} opens SSH to {host.name}", "filter", "OUTPUT",
              Packet(6, t_ip, h_ip, SPORT, 22, None, PRIVATE))
        check(tunnel.name, f"SSH replies from {host.name} come back", "filter", "INPUT",
              Packet(6, h_ip, t_ip, 22, SPORT, PRIVATE, state="ESTABLISHED"))
    for cidr in stack.admin_cidrs:
        net = ipaddress.ip_network(cidr)
        admin = net.network_address if net.num_addresses == 1 else net.network_address + 1
        public = tunnel.public_ip if net.version == 4 else tunnel.public_ip6
        if public is None:
            continue
        family = IPV4 if net.version == 4 else IPV6
        if not book.has_family(tunnel.name, family):
            continue
        p_ip = book.ip(public)
        check(tunnel.name, f"admin {admin} (of {cidr}) reaches tcp/22 on eth0", "filter", "INPUT",
              Packet(6, admin, p_ip, SPORT, 22, PUBLIC))
        check(tunnel.name, f"admin {admin}'s established SSH session continues", "filter", "INPUT",
              Packet(6, admin, p_ip, SPORT, 22, PUBLIC, state="ESTABLISHED"))
        check(tunnel.name, f"SSH replies to admin {admin} leave", "filter", "OUTPUT",
              Packet(6, p_ip, admin, 22, SPORT, None, PUBLIC, state="ESTABLISHED"))
    return checks


# --- the whole verification -------------------------------------------------------------------


@dataclass(frozen=True)
class GroupFindings:
    """Shadowed/redundant rules of one group of hosts with identical rules."""

    label: str
    hosts: tuple[str, ...]
    findings: tuple[Finding, ...]

    def as_dict(self) -> dict:
        return {"group": self.label, "hosts": len(self.hosts), "example_host": self.hosts[0],
                "findings": [f.as_dict() for f in self.findings]}


@dataclass(frozen=True)
class VerifyReport:
    """Everything `enclave verify` found for one stack."""

    stack: str
    hosts: int
    probes: int
    representatives: bool
    differences: tuple[Difference, ...]
    lockout: tuple[LockoutCheck, ...]
    findings: tuple[GroupFindings, ...]
    seconds: float = field(default=0.0, compare=False)

    @property
    def lockout_failures(self) -> tuple[LockoutCheck, ...]:
        return tuple(c for c in self.lockout if not c.ok)

    @property
    def finding_count(self) -> int:
        return sum(len(g.findings) for g in self.findings)

    def ok(self, strict: bool = False) -> bool:
        return not self.differences and not self.lockout_failures and not (strict and self.finding_count)

    def as_dict(self, strict: bool = False) -> dict:
        return {"stack": self.stack, "ok": self.ok(strict), "hosts": self.hosts, "probes": self.probes,
                "sources": "one host per role" if self.representatives else "every host",
                "seconds": round(self.seconds, 3),
                "differences": [d.as_dict() for d in self.differences],
                "lockout": {"checks": len(self.lockout),
                            "failures": [c.as_dict() for c in self.lockout_failures]},
                "findings": [g.as_dict() for g in self.findings if g.findings]}


def compare(book: RuleBook, matrix, keep: Callable[[Expectation], bool] | None = None) -> tuple[list[Difference], int]:
    """Differences between the book's outcomes and `matrix` (probes with no rules are skipped)."""
    differences: list[Difference] = []
    evaluated = 0
    for expectation in matrix:
        if keep is not None and not keep(expectation):
            continue
        outcome = book.outcome(expectation.probe)
        if outcome is None:
            continue
        evaluated += 1
        accepted = outcome.verdict == ACCEPT
        if outcome.verdict == UNKNOWN or accepted != expectation.allowed or (
                accepted and expectation.probe.kind == "dnat" and not _reaches_target(book.stack, outcome, expectation.probe)):
            differences.append(Difference(expectation, outcome, book.first_packet(expectation.probe)))
    return differences, evaluated


def _reaches_target(stack: Stack, outcome: Outcome, probe: Probe) -> bool:
    """The DNATed probe arrived at a host of the port forward's target role."""
    try:
        return stack.host(outcome.reached).role == probe.target
    except KeyError:
        return False


def verify_stack(stack: Stack, representatives: bool | None = None) -> VerifyReport:
    """Verify `stack`'s generated rules; `representatives` None = automatic (large stacks)."""
    start = time.perf_counter()
    if representatives is None:
        representatives = len(stack.hosts) > REPRESENTATIVES_ABOVE
    book = RuleBook.generated(stack, phase=2)
    matrix = intended_matrix(stack, representatives)
    differences, evaluated = compare(book, matrix)
    lockout = lockout_checks(RuleBook.generated(stack, phase=1), 1) + lockout_checks(book, 2)
    findings = []
    for index, rules in enumerate(book.groups):
        found = find_shadowed(rules.v4, rules.ipsets) + (find_shadowed(rules.v6, rules.ipsets) if rules.v6 else ())
        findings.append(GroupFindings(rules.label, tuple(book.hosts_of_group(index)), found))
    return VerifyReport(stack.name, len(stack.hosts), evaluated, representatives, tuple(differences),
                        tuple(lockout), tuple(findings), time.perf_counter() - start)
