"""What each host of a deployed stack should be, and how live facts compare with it (pure: no SSH).

The expectations come from the stack model and the inventory's real addresses: the phase-2
rules and ipsets (`firewall.compile.Compiler`), the intended matrix (`firewall.intent`), the
profiles' listeners (`topology.catalog`) and the rendered service files (`cloudinit`). The
comparisons run through the evaluator (`firewall.evaluate`): iptables-save prints rules
normalised, so rules are compared by the verdicts they give, never by their text.
"""
from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

from cloudinit.profiles import spec_parts
from cloudinit.render import peer_sync_payload
from cloudinit.secrets import Secrets
from firewall.compile import Compiler, HostFirewall
from firewall.evaluate import REJECT, Evaluator, Verdict, compile_ruleset
from firewall.intent import Probe, intended_matrix, probe_ports
from firewall.ipsets import IpSet, parse_ipsets
from firewall.packet import Packet
from firewall.parse import parse_ruleset
from firewall.ruleset import Ruleset
from topology.catalog import PROFILES
from topology.load import load_stack
from topology.model import PRIVATE, PUBLIC, Stack

PROTO_NUMBERS = {"tcp": 6, "udp": 17}
SOURCE_PORT = 40000
REACH_TIMEOUT = 2.0
LOOPBACK = {"127.0.0.1", "::1"}
WILDCARD = {"0.0.0.0", "::", "*"}


class FleetError(ValueError):
    """The inventory does not match the stack model."""


# --------------------------------------------------------------------------- the fleet


@dataclass
class Fleet:
    """The stack model with the inventory's real addresses."""

    stack: Stack
    inventory: dict
    lab_services: dict | None = None  # the lab's lab.json "services" when run against the lab

    @cached_property
    def hosts(self) -> dict[str, dict]:
        return {h["name"]: h for h in self.inventory["hosts"]}

    @cached_property
    def private_ips(self) -> dict[str, str]:
        return {name: h["private_ip"] for name, h in self.hosts.items()}

    @cached_property
    def owner(self) -> dict[str, str]:
        """Address -> host name (private and public addresses)."""
        out = {}
        for name, h in self.hosts.items():
            for key in ("private_ip", "public_ip"):
                if h.get(key):
                    out[h[key]] = name
        return out

    @cached_property
    def compiler(self) -> Compiler:
        return Compiler(self.stack, private_ips=self.private_ips, phase=2)

    def generated(self, host: str) -> HostFirewall:
        return self.compiler.host(host)

    @cached_property
    def matrix(self):
        return intended_matrix(self.stack)

    def role_of(self, host: str) -> str:
        return self.hosts[host]["role"]

    def profile_of(self, host: str) -> str:
        return self.stack.role(self.role_of(host)).profile

    def real_address(self, probe: Probe) -> tuple[str, str] | None:
        """(source, destination) with real addresses; None when an outsider's planned address is
        a real host's (a real deploy's addresses differ from the plan's)."""
        actor = probe.source
        if actor.host:
            source = self.private_ips[actor.host]
        elif actor.address in self.owner:
            return None
        else:
            source = actor.address
        dest = self.hosts[probe.dest]
        if probe.interface == PRIVATE:
            target = dest["private_ip"]
        elif actor.family == 6:
            target = probe.dest_address  # the inventory has no IPv6 address; rules never name it
        else:
            target = dest["public_ip"]
        return (source, target) if target else None

    def packet(self, probe: Probe) -> Packet | None:
        addresses = self.real_address(probe)
        if addresses is None:
            return None
        return Packet(proto=PROTO_NUMBERS[probe.proto], src=addresses[0], dst=addresses[1], sport=SOURCE_PORT,
                      dport=probe.port, in_iface=probe.interface)


def load_fleet(inventory_path: Path, stack_name: str | None = None) -> Fleet:
    inventory = json.loads(Path(inventory_path).read_text())
    stack = load_stack(stack_name or inventory["stack"])
    problems = []
    planned = {h.name: h.role for h in stack.hosts}
    given = {h["name"]: h["role"] for h in inventory["hosts"]}
    for name in sorted(planned.keys() - given.keys()):
        problems.append(f"{name}: in stack {stack.name} but not in the inventory")
    for name in sorted(given.keys() - planned.keys()):
        problems.append(f"{name}: in the inventory but not in stack {stack.name}")
    for name in sorted(planned.keys() & given.keys()):
        if planned[name] != given[name]:
            problems.append(f"{name}: role {given[name]} in the inventory, {planned[name]} in the stack")
    if problems:
        raise FleetError("inventory does not match the stack:\n  " + "\n  ".join(problems))
    lab = Path(inventory_path).parent / "lab.json"
    services = None
    if lab.is_file():
        state = json.loads(lab.read_text())
        if state.get("stack") == stack.name:
            services = state.get("services", {})
    return Fleet(stack, inventory, services)


# --------------------------------------------------------------------------- live facts

SECTIONS = {
    "iptables": "iptables-save",
    "ip6tables": "ip6tables-save",
    "ipset": "ipset save",
    "listeners": "ss -H -ltnu",
    "sshd": "sshd -T",
    "rules.v4": "cat /etc/iptables/rules.v4",
    "rules.v6": "cat /etc/iptables/rules.v6",
    "ipsets": "cat /etc/iptables/ipsets",
}
MARK = "@@enclave-postdeploy@@"


def gather_command() -> str:
    """One shell command printing every fact, each section framed by a marker and its exit code."""
    parts = [f"echo '{MARK} {name}'; {cmd} 2>&1; echo \"{MARK} rc $?\"" for name, cmd in SECTIONS.items()]
    return "PATH=/usr/sbin:/sbin:$PATH; " + "; ".join(parts)


@dataclass(frozen=True)
class Section:
    rc: int
    text: str


def parse_gather(output: str) -> dict[str, Section]:
    out: dict[str, Section] = {}
    name, lines = None, []
    for line in output.splitlines():
        if line.startswith(MARK):
            word = line[len(MARK):].split()
            if word and word[0] == "rc" and name:
                out[name] = Section(int(word[1]), "\n".join(lines) + "\n")
                name, lines = None, []
            elif word:
                name, lines = word[0], []
            continue
        if name:
            lines.append(line)
    missing = [n for n in SECTIONS if n not in out]
    if missing:
        raise ValueError(f"facts incomplete (missing {', '.join(missing)}): {output[-300:]!r}")
    return out


@dataclass
class Rules:
    """One host's rules of both families plus its ipsets, compiled for the evaluator."""

    v4: Ruleset
    v6: Ruleset
    sets: dict[str, IpSet]
    label: str  # "live", "generated", "persisted"
    _ev: dict = field(default_factory=dict)

    @classmethod
    def parse(cls, v4: str, v6: str, ipsets: str, label: str, host: str) -> "Rules":
        return cls(parse_ruleset(v4, family="ipv4", source=f"{host} {label} rules.v4"),
                   parse_ruleset(v6, family="ipv6", source=f"{host} {label} rules.v6"),
                   dict(parse_ipsets(ipsets, source=f"{host} {label} ipsets")), label)

    def evaluator(self, family: int) -> Evaluator:
        if family not in self._ev:
            self._ev[family] = compile_ruleset(self.v4 if family == 4 else self.v6, self.sets)
        return self._ev[family]

    def verdict(self, packet: Packet, chain: str = "INPUT") -> Verdict:
        return self.evaluator(packet.src.version if packet.src else packet.dst.version).verdict(packet, chain)

    def policy(self, family: int, chain: str) -> str | None:
        ruleset = self.v4 if family == 4 else self.v6
        if not ruleset.has_table("filter") or not ruleset.table("filter").has_chain(chain):
            return None
        return ruleset.table("filter").chain(chain).policy

    def rules_using_set(self, name: str) -> list[str]:
        out = []
        for ruleset in (self.v4, self.v6):
            for table in ruleset.tables:
                for chain in table.chains:
                    for rule in chain.rules:
                        if any(m.kind == "set" and m.value[0] == name for m in rule.matches):
                            out.append(str(rule.ref))
        return out


def decided_by(verdict: Verdict) -> str:
    """`DROP by enclave-deny rule 2: -A enclave-deny -j DROP` or `DROP by policy DROP of INPUT`."""
    where = str(verdict.rule) if verdict.rule else verdict.reason
    return f"{verdict.verdict} by {where}"


# --------------------------------------------------------------------------- firewall comparison


def rule_ports(rules: Rules) -> set[tuple[str, int]]:
    """(proto, port) that a filter rule names: each range's ends and the ports just outside it."""
    out: set[tuple[str, int]] = set()
    for ruleset in (rules.v4, rules.v6):
        if not ruleset.has_table("filter"):
            continue
        for chain in ruleset.table("filter").chains:
            for rule in chain.rules:
                protos = [p for m in rule.matches if m.kind == "proto" for p in m.value]
                for m in rule.matches:
                    if m.kind not in ("dport", "ports"):
                        continue
                    proto = m.value[0] or (protos[0] if protos else None)
                    names = [n for n, num in PROTO_NUMBERS.items() if proto in (None, num)]
                    for first, last in m.value[1]:
                        for port in (first - 1, first, last, last + 1):
                            if 0 < port <= 65535:
                                out.update((n, port) for n in names)
    return out


@dataclass(frozen=True)
class Difference:
    probe: Probe
    left: Verdict
    right: Verdict
    because: str

    def describe(self, host: str, left: str, right: str) -> str:
        return (f"{host}: flow {self.probe.label()} [{self.because}]: {left} {decided_by(self.left)}; "
                f"{right} {decided_by(self.right)}")


def comparison_probes(fleet: Fleet, host: str, ports: set[tuple[str, int]]) -> list[tuple[Probe, str]]:
    """The intended matrix's input probes to `host`, plus, from each of their sources, every port
    in `ports` the matrix does not probe (ports the rules name): (probe, why it is there)."""
    out, sources = [], {}
    for e in fleet.matrix:
        if e.probe.dest == host and e.probe.kind == "input":
            out.append((e.probe, e.because))
            sources.setdefault((e.probe.source, e.probe.interface), e.probe)
    extra = sorted(set(ports) - set(probe_ports(fleet.stack)))
    for probe in sources.values():
        out += [(replace(probe, proto=proto, port=port), "a port a rule names") for proto, port in extra]
    return out


def compare(fleet: Fleet, host: str, left: Rules, right: Rules) -> tuple[int, list[Difference]]:
    """Verdicts of `left` and `right` for every comparison probe: (probes compared, differences)."""
    diffs, count = [], 0
    for probe, because in comparison_probes(fleet, host, rule_ports(left) | rule_ports(right)):
        packet = fleet.packet(probe)
        if packet is None:
            continue
        count += 1
        a, b = left.verdict(packet), right.verdict(packet)
        if a.verdict != b.verdict:
            diffs.append(Difference(probe, a, b, because))
    return count, diffs


def set_problems(fleet: Fleet, host: str, name: str, expected: IpSet, live: Rules, live_label: str = "live") -> list[str]:
    """Members of ipset `name` on `host`: those the stack wants vs those `live` holds."""
    uses = "; ".join(live.rules_using_set(name)) or "no rule uses it"
    got = live.sets.get(name)
    if got is None:
        return [f"{host}: {live_label} ipset {name} does not exist (rules: {uses})"]
    want, have = set(expected.members), set(got.members)
    out = []
    for member in sorted(want - have, key=str):
        peer = _peer(fleet, member)
        out.append(f"{host}: {live_label} ipset {name} lacks {_show(member)}{peer}: flows from it to {host} are dropped "
                   f"(rules: {uses})")
    for member in sorted(have - want, key=str):
        peer = _peer(fleet, member)
        out.append(f"{host}: {live_label} ipset {name} holds {_show(member)}{peer}, not a peer the stack names: it is "
                   f"admitted by {uses}")
    return out


def _show(member) -> str:
    return str(member.network_address) if member.num_addresses == 1 else str(member)


def _peer(fleet: Fleet, member) -> str:
    address = str(member.network_address) if member.num_addresses == 1 else None
    name = fleet.owner.get(address) if address else None
    return f" ({name})" if name else ""


# --------------------------------------------------------------------------- services


@dataclass(frozen=True)
class Socket:
    proto: str
    address: str
    port: int


def parse_listeners(text: str) -> list[Socket]:
    """`ss -H -ltnu` lines -> sockets (address without brackets or %interface; `*` kept)."""
    out = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 5 or fields[0] not in ("tcp", "udp"):
            continue
        address, _, port = fields[4].rpartition(":")
        address = address.strip("[]").split("%")[0]
        if address.startswith("::ffff:"):
            address = address[7:]
        if port.isdigit():
            out.append(Socket(fields[0], address, int(port)))
    return out


@dataclass(frozen=True)
class Listener:
    """A profile port on one host and where its daemon is meant to listen."""

    host: str
    proto: str
    port: int
    where: str  # "private": its own private address only; "public": reachable publicly; "private-side"
    why: str

    @property
    def id(self) -> str:
        return f"{self.host}:{self.proto}/{self.port}"


def binds_private(fleet: Fleet, host: str) -> str | None:
    """The rendered service file that binds a daemon to the host's own private address, if any."""
    payload = peer_sync_payload(fleet.stack, host, private_ips=fleet.private_ips, secrets=Secrets.placeholders())
    own = re.compile(rf"(?<![\d.]){re.escape(fleet.private_ips[host])}(?![\d])")
    for path, text in payload.items():
        if path.startswith("files/") and own.search(text):
            return path[len("files"):]
    return None


def listeners(fleet: Fleet) -> list[Listener]:
    out = []
    for host in fleet.hosts:
        role = fleet.role_of(host)
        bound = None
        for proto, port in PROFILES[fleet.profile_of(host)].listens:
            public = [f for f in fleet.stack.flows_to(role)
                      if f.interface == PUBLIC and f.proto == proto and any(port in r for r in f.ports)]
            if public:
                out.append(Listener(host, proto, port, "public", f"{public[0].origin}: {public[0].describe()}"))
                continue
            if bound is None:
                bound = binds_private(fleet, host) or ""
            if bound:
                out.append(Listener(host, proto, port, "private",
                                    f"{bound} binds it to {fleet.private_ips[host]}; no public flow admits {proto}/{port}"))
            else:
                out.append(Listener(host, proto, port, "private-side", f"no public flow admits {proto}/{port}"))
    return out


def stand_in(fleet: Fleet, listener: Listener) -> bool:
    """True when the lab serves this port with a stand-in listener (lab.json says which)."""
    if fleet.lab_services is None:
        return False
    entry = fleet.lab_services.get(listener.host, {})
    return f"{listener.proto}/{listener.port}" in entry.get("stand_ins", [])


def listener_problem(fleet: Fleet, listener: Listener, sockets: list[Socket]) -> str | None:
    host = fleet.hosts[listener.host]
    private, public = host["private_ip"], host.get("public_ip")
    mine = sorted({s.address for s in sockets if s.proto == listener.proto and s.port == listener.port})
    head = f"{listener.host} {listener.proto}/{listener.port}"
    if not mine:
        return f"{head}: nothing listens ({listener.why})"
    shown = ", ".join("* (every address)" if a in WILDCARD else a for a in mine)
    if stand_in(fleet, listener):
        return None  # the lab's stand-in binds everywhere; a real daemon's address is checked on a deploy
    if listener.where == "private":
        wrong = [a for a in mine if a not in LOOPBACK and a != private]
        if wrong or private not in mine:
            return f"{head}: listens on {shown}; intended on its private address {private} only ({listener.why})"
        return None
    if listener.where == "public":
        if not any(a in WILDCARD or a == public for a in mine):
            return f"{head}: listens on {shown}, not on the public address {public} ({listener.why})"
        return None
    if public and public in mine:
        return f"{head}: listens on the public address {public} ({shown}); intended on the private side ({listener.why})"
    if not any(a in WILDCARD or a == private for a in mine):
        return f"{head}: listens on {shown}, not on the private address {private} ({listener.why})"
    return None


SSHD_KEYS_ONLY = {
    "passwordauthentication": {"no"},
    "kbdinteractiveauthentication": {"no"},
    "permitemptypasswords": {"no"},
    "hostbasedauthentication": {"no"},
    "pubkeyauthentication": {"yes"},
    "authenticationmethods": {"publickey"},
    "permitrootlogin": {"no", "without-password", "prohibit-password"},
}


def sshd_problems(host: str, section: Section, sockets: list[Socket]) -> list[str]:
    if section.rc != 0:
        return [f"{host}: sshd -T failed (exit {section.rc}): {section.text.strip()[-300:]}"]
    values = {}
    for line in section.text.splitlines():
        key, _, value = line.strip().partition(" ")
        values.setdefault(key.lower(), value.strip().lower())
    out = [f"{host}: sshd {key} is {values.get(key, 'unset')!r}, keys-only needs {' or '.join(sorted(ok))}"
           for key, ok in SSHD_KEYS_ONLY.items() if values.get(key) not in ok]
    if not any(s.proto == "tcp" and s.port == 22 for s in sockets):
        out.append(f"{host}: nothing listens on tcp/22")
    return out


# --------------------------------------------------------------------------- reachability


@dataclass(frozen=True)
class Attempt:
    """A TCP connection attempt from one host to another's private address (the intended matrix)."""

    probe: Probe
    allowed: bool
    because: str
    source_ip: str
    dest_ip: str

    @property
    def id(self) -> str:
        return f"{self.probe.source.name}->{self.probe.dest}:{self.probe.proto}/{self.probe.port}"


def attempts(fleet: Fleet) -> list[Attempt]:
    """Every host-to-host TCP probe of the intended matrix: the declared peer ports (intended
    open) and the matrix's undeclared sample (intended closed). UDP is left out: a silent UDP
    port looks the same as a dropped one."""
    out = []
    for e in fleet.matrix:
        p = e.probe
        if p.kind != "input" or p.proto != "tcp" or not p.source.host or p.interface != PRIVATE:
            continue
        out.append(Attempt(p, e.allowed, e.because, fleet.private_ips[p.source.host], fleet.private_ips[p.dest]))
    return out


REACH_SCRIPT = r"""
import concurrent.futures, json, socket, sys
targets, timeout = json.loads(sys.argv[1]), float(sys.argv[2])
def attempt(target):
    address, port = target
    s = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect((address, port))
        return "reached"
    except ConnectionRefusedError:
        return "refused"
    except (socket.timeout, TimeoutError):
        return "dropped"
    except OSError as error:
        return "rejected (%s)" % (error.strerror or error.errno)
    finally:
        s.close()
with concurrent.futures.ThreadPoolExecutor(max(1, min(128, len(targets)))) as pool:
    print(json.dumps(list(pool.map(attempt, [tuple(t) for t in targets]))))
"""


def reach_verdict(attempt: Attempt, outcome: str, dest_live: Rules | None, source_live: Rules | None) -> str | None:
    """None when the outcome is what the stack intends, else the failure message."""
    packet = Packet(proto=6, src=attempt.source_ip, dst=attempt.dest_ip, sport=SOURCE_PORT,
                    dport=attempt.probe.port, in_iface=PRIVATE)
    dest_verdict = dest_live.verdict(packet) if dest_live else None
    through = outcome in ("reached", "refused")
    if outcome == "refused" and dest_verdict is not None and dest_verdict.verdict == REJECT:
        through = False  # a REJECT with tcp-reset looks like a closed port
    if through == attempt.allowed:
        return None
    p = attempt.probe
    intended = "open" if attempt.allowed else "closed"
    text = (f"{p.source.name} -> {p.dest}: flow {p.label()} intended {intended} [{attempt.because}] "
            f"but {outcome}")
    if dest_verdict is not None:
        text += f"; {p.dest}'s live INPUT: {decided_by(dest_verdict)}"
    if source_live is not None:
        out = Packet(proto=6, src=attempt.source_ip, dst=attempt.dest_ip, sport=SOURCE_PORT,
                     dport=p.port, out_iface=PRIVATE)
        verdict = source_live.verdict(out, "OUTPUT")
        if verdict.verdict != "ACCEPT":
            text += f"; {p.source.name}'s live OUTPUT: {decided_by(verdict)}"
    return text


# --------------------------------------------------------------------------- real deploys


def packages(fleet: Fleet, host: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(p for part in spec_parts(fleet.profile_of(host)) for p in part.packages))


def units(fleet: Fleet, host: str) -> tuple[str, ...]:
    """systemd units the profile's files reload, plus netfilter-persistent (rules at boot)."""
    named = [f.service for part in spec_parts(fleet.profile_of(host)) for f in part.files if f.service != "-"]
    return tuple(dict.fromkeys(["netfilter-persistent"] + named))


def ipv(address: str) -> int:
    return ipaddress.ip_address(address).version
