"""Parser of `ipset save` / `ipset restore` text, and fast membership tests for hash:ip and hash:net.

Only hash:ip and hash:net sets are understood; other types are kept (understood=False) so that a
rule matching on them evaluates to UNKNOWN. Members are ipaddress networks (a host is a /32 or /128).
"""
from __future__ import annotations

import ipaddress
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from firewall.ruleset import IPV4, IPV6, ParseError

UNDERSTOOD_TYPES = frozenset({"hash:ip", "hash:net"})
_FAMILIES = {"inet": IPV4, "ipv4": IPV4, "inet6": IPV6, "ipv6": IPV6}
_MEMBER_FLAGS = frozenset({"nomatch", "-exist", "-!"})
_MEMBER_OPTIONS = frozenset({"timeout", "comment", "packets", "bytes", "skbmark", "skbprio",
                             "skbqueue"})
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class IpSet:
    """One set: name, type (hash:ip...), family (ipv4/ipv6), members and nomatch members."""

    name: str
    type: str
    family: str
    members: tuple[Network, ...] = ()
    nomatch: tuple[Network, ...] = ()
    netmask: int | None = None

    @property
    def understood(self) -> bool:
        return self.type in UNDERSTOOD_TYPES

    def contains(self, address: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        """Membership of one address, as the kernel's set match decides it (slow path)."""
        return membership(self)(int(ipaddress.ip_address(address)))


def parse_ipsets(text: str, *, source: str = "<ipsets>") -> Mapping[str, IpSet]:
    """Parse ipset save/restore text into a read-only {name: IpSet}; ParseError lists bad lines."""
    sets: dict[str, dict] = {}
    problems: list[tuple[int, str]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            _command(shlex.split(line), sets)
        except ValueError as error:
            problems.append((number, str(error)))
    if problems:
        raise ParseError(source, problems)
    return MappingProxyType({name: IpSet(name, spec["type"], spec["family"], tuple(spec["members"]),
                                         tuple(spec["nomatch"]), spec["netmask"])
                             for name, spec in sets.items()})


def _command(tokens: list[str], sets: dict[str, dict]) -> None:
    tokens = [t for t in tokens if t not in ("-exist", "-!")]
    if not tokens:
        return
    command, args = tokens[0], tokens[1:]
    if command in ("create", "-N", "-C", "n"):
        if len(args) < 2:
            raise ValueError("create needs a name and a type")
        name, kind = args[0], args[1]
        options = dict(zip(args[2::2], args[3::2]))
        family = _FAMILIES.get(options.get("family", "inet"))
        if family is None:
            raise ValueError(f"unknown family {options['family']!r} for set {name}")
        netmask = options.get("netmask")
        if netmask is not None and not netmask.isdigit():
            raise ValueError(f"bad netmask {netmask!r} for set {name}")
        sets[name] = {"type": kind, "family": family, "members": {}, "nomatch": {},  # ordered sets
                      "netmask": int(netmask) if netmask else None}
    elif command in ("add", "-A", "a", "del", "-D", "d"):
        if len(args) < 2:
            raise ValueError(f"{command} needs a set name and a member")
        spec = sets.get(args[0])
        if spec is None:
            raise ValueError(f"set {args[0]} is not created before {command}")
        flags = set(args[2:])
        bad = [word for word in args[2:] if word not in _MEMBER_FLAGS and word not in _MEMBER_OPTIONS
               and not _is_option_value(args, word)]
        if bad:
            raise ValueError(f"unknown member option {bad[0]!r}")
        if spec["type"] not in UNDERSTOOD_TYPES:
            return
        networks = member_networks(args[1], spec["family"])
        if spec["type"] == "hash:ip" and spec["netmask"] is None:
            networks = _hosts(networks)
        bucket = spec["nomatch"] if "nomatch" in flags else spec["members"]
        if command in ("add", "-A", "a"):
            bucket.update(dict.fromkeys(networks))
        else:
            for network in networks:
                for group in (spec["members"], spec["nomatch"]):
                    group.pop(network, None)
    elif command in ("flush", "-F", "f", "destroy", "-X", "x"):
        names = args[:1] or list(sets)
        for name in names:
            if name not in sets:
                raise ValueError(f"set {name} does not exist")
            if command in ("flush", "-F", "f"):
                sets[name]["members"].clear()
                sets[name]["nomatch"].clear()
            else:
                del sets[name]
    elif command in ("swap", "-W", "w") and len(args) == 2 and all(a in sets for a in args):
        sets[args[0]], sets[args[1]] = sets[args[1]], sets[args[0]]
    elif command == "COMMIT":
        return
    else:
        raise ValueError(f"not ipset save/restore syntax: {' '.join(tokens)[:60]}")


def _is_option_value(args: list[str], word: str) -> bool:
    index = args.index(word)
    return index > 0 and args[index - 1] in _MEMBER_OPTIONS


def member_networks(text: str, family: str) -> tuple[Network, ...]:
    """`10.0.0.1`, `10.0.0.0/24` or `10.0.0.1-10.0.0.9` -> networks of the set's family."""
    try:
        if "-" in text and "/" not in text:
            first, last = (ipaddress.ip_address(part) for part in text.split("-", 1))
            networks = tuple(ipaddress.summarize_address_range(first, last))
        else:
            networks = (ipaddress.ip_network(text, strict=False),)
    except (ValueError, TypeError):
        raise ValueError(f"bad set member {text!r}") from None
    if any((n.version == 4) != (family == IPV4) for n in networks):
        raise ValueError(f"member {text} is not {family}")
    return networks


def _hosts(networks: tuple[Network, ...]) -> tuple[Network, ...]:
    """hash:ip stores single addresses: a CIDR or range adds each one (so `del` can remove one)."""
    if sum(n.num_addresses for n in networks) > 65536:
        return networks  # kept as networks: membership is the same, only `del` inside differs
    return tuple(ipaddress.ip_network(a) for n in networks for a in (n if n.num_addresses > 1 else [n.network_address]))


def membership(ipset: IpSet) -> Callable[[int], bool]:
    """A fast test `address-as-int -> member?`: longest prefix wins, so nomatch carves holes."""
    bits = 32 if ipset.family == IPV4 else 128
    if ipset.netmask is not None:
        ipset = IpSet(ipset.name, ipset.type, ipset.family,
                      tuple(n.supernet(new_prefix=min(n.prefixlen, ipset.netmask)) for n in ipset.members),
                      ipset.nomatch)
    prefixes: dict[int, tuple[set[int], set[int]]] = {}
    for negative, group in ((False, ipset.members), (True, ipset.nomatch)):
        for network in group:
            found = prefixes.setdefault(network.prefixlen, (set(), set()))
            found[1 if negative else 0].add(int(network.network_address) >> (bits - network.prefixlen))
    if not ipset.nomatch and set(prefixes) <= {bits}:
        hosts = frozenset(prefixes.get(bits, (set(), set()))[0])
        return hosts.__contains__
    table = tuple((bits - length, frozenset(yes), frozenset(no))
                  for length, (yes, no) in sorted(prefixes.items(), reverse=True))

    def contains(address: int) -> bool:
        for shift, yes, no in table:
            key = address >> shift
            if key in no:
                return False
            if key in yes:
                return True
        return False

    return contains
