"""The packet a verdict is asked for, and its `key=value` text form.

`parse_packet("proto=tcp src=10.0.0.2 dst=10.0.0.1 dport=22 in=eth1 state=NEW")`. A field left out
is unknown: a rule that tests it makes the evaluator answer UNKNOWN rather than guess.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from firewall.ruleset import (
    CONNTRACK_STATES, CT_VIRTUAL_STATES, IPV4, IPV6, PROTOCOL_NAMES, TCP_FLAGS, parse_icmp_type,
    parse_protocol,
)

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
KEYS = ("proto", "src", "dst", "sport", "dport", "in", "out", "state", "icmp", "type", "code",
        "flags")


class PacketError(ValueError):
    """A malformed packet description (names the offending key=value)."""


@dataclass(frozen=True)
class Packet:
    """One packet: addresses, protocol, ports, ICMP type/code, interfaces, conntrack state.

    state is the conntrack state (NEW by default); nat holds the virtual ctstates DNAT/SNAT.
    tcp_flags defaults to SYN for NEW and ACK for ESTABLISHED/RELATED tcp packets.
    """

    proto: int | None = None
    src: Address | None = None
    dst: Address | None = None
    sport: int | None = None
    dport: int | None = None
    in_iface: str | None = None
    out_iface: str | None = None
    state: str = "NEW"
    nat: frozenset[str] = frozenset()
    icmp_type: int | None = None
    icmp_code: int | None = None
    tcp_flags: int | None = None
    src_int: int | None = field(init=False, repr=False, compare=False, default=None)
    dst_int: int | None = field(init=False, repr=False, compare=False, default=None)
    ctstates: frozenset[str] = field(init=False, repr=False, compare=False, default=frozenset())

    def __post_init__(self) -> None:
        for name in ("src", "dst"):
            value = getattr(self, name)
            if isinstance(value, str):
                value = _address(value, name)
                object.__setattr__(self, name, value)
            object.__setattr__(self, f"{name}_int", None if value is None else int(value))
        if self.src is not None and self.dst is not None and self.src.version != self.dst.version:
            raise PacketError("src and dst must be of the same family")
        for name in ("sport", "dport"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= 65535:
                raise PacketError(f"{name}={value}: port must be 0-65535")
        if self.proto is not None and not 0 <= self.proto <= 255:
            raise PacketError(f"proto={self.proto}: must be 0-255")
        if self.state not in CONNTRACK_STATES:
            raise PacketError(f"state={self.state}: must be one of {', '.join(sorted(CONNTRACK_STATES))}")
        if not self.nat <= CT_VIRTUAL_STATES:
            raise PacketError(f"nat: only DNAT and SNAT, not {', '.join(sorted(self.nat))}")
        if self.tcp_flags is None and self.proto == 6:
            default = {"NEW": TCP_FLAGS["SYN"], "ESTABLISHED": TCP_FLAGS["ACK"],
                       "RELATED": TCP_FLAGS["ACK"]}.get(self.state)
            object.__setattr__(self, "tcp_flags", default)
        object.__setattr__(self, "ctstates", frozenset({self.state}) | self.nat)

    @property
    def family(self) -> str | None:
        address = self.src or self.dst
        return None if address is None else (IPV4 if address.version == 4 else IPV6)

    def __str__(self) -> str:
        parts = []
        if self.proto is not None:
            parts.append(f"proto={PROTOCOL_NAMES.get(self.proto, self.proto)}")
        for key, value in (("src", self.src), ("dst", self.dst), ("sport", self.sport),
                           ("dport", self.dport), ("in", self.in_iface), ("out", self.out_iface)):
            if value is not None:
                parts.append(f"{key}={value}")
        if self.icmp_type is not None:
            parts.append(f"type={self.icmp_type}")
        if self.icmp_code is not None:
            parts.append(f"code={self.icmp_code}")
        parts.append("state=" + ",".join([self.state] + sorted(self.nat)))
        return " ".join(parts)


def parse_packet(spec: str) -> Packet:
    """`key=value` words -> Packet; PacketError names the bad word. Keys: see KEYS."""
    values: dict[str, str] = {}
    for word in spec.split():
        key, sep, value = word.partition("=")
        key = key.lower()
        if not sep or not value:
            raise PacketError(f"{word!r}: expected key=value")
        if key not in KEYS:
            raise PacketError(f"{word!r}: unknown key {key!r} (known: {', '.join(KEYS)})")
        if key in values:
            raise PacketError(f"{word!r}: {key} given twice")
        values[key] = value
    kwargs: dict = {}
    try:
        if "proto" in values:
            kwargs["proto"] = parse_protocol(values["proto"])
    except ValueError as error:
        raise PacketError(f"proto={values['proto']}: {error}") from None
    for key in ("src", "dst"):
        if key in values:
            kwargs[key] = _address(values[key], key)
    for key in ("sport", "dport"):
        if key in values:
            kwargs[key] = _integer(key, values[key], 65535, "port must be 0-65535")
    if "in" in values:
        kwargs["in_iface"] = values["in"]
    if "out" in values:
        kwargs["out_iface"] = values["out"]
    if "state" in values:
        states = set(values["state"].upper().split(","))
        nat = states & CT_VIRTUAL_STATES
        main = states - nat
        if len(main) > 1 or not main <= CONNTRACK_STATES:
            raise PacketError(f"state={values['state']}: one of {', '.join(sorted(CONNTRACK_STATES))}"
                              " plus optionally DNAT/SNAT")
        kwargs["state"] = main.pop() if main else "NEW"
        kwargs["nat"] = frozenset(nat)
    if "flags" in values:
        flags = 0
        for name in values["flags"].upper().split(","):
            if name not in TCP_FLAGS:
                raise PacketError(f"flags={values['flags']}: unknown TCP flag {name}")
            flags |= TCP_FLAGS[name]
        kwargs["tcp_flags"] = flags
    _icmp(values, kwargs)
    return Packet(**kwargs)


def _icmp(values: dict[str, str], kwargs: dict) -> None:
    if "icmp" in values:
        family = IPV6 if kwargs.get("proto") == 58 else IPV4
        try:
            kind, low, high = parse_icmp_type(values["icmp"], family)
        except ValueError as error:
            raise PacketError(f"icmp={values['icmp']}: {error}") from None
        if kind < 0:
            raise PacketError("icmp=any: a packet has one ICMP type")
        kwargs["icmp_type"] = kind
        if low == high:
            kwargs["icmp_code"] = low
    if "type" in values:
        kwargs["icmp_type"] = _integer("type", values["type"], 255, "ICMP type must be 0-255")
    if "code" in values:
        kwargs["icmp_code"] = _integer("code", values["code"], 255, "ICMP code must be 0-255")
    if kwargs.get("icmp_type") is not None and kwargs.get("icmp_code") is None:
        kwargs["icmp_code"] = 0


def _integer(key: str, text: str, highest: int, message: str) -> int:
    if not text.isdigit() or int(text) > highest:
        raise PacketError(f"{key}={text}: {message}")
    return int(text)


def _address(text: str, key: str) -> Address:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise PacketError(f"{key}={text}: not an IP address") from None
