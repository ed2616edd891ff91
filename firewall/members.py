"""ipset files (`ipset restore` format): one set per peer role, plus the admin networks.

Phase 1 (cloud-init, before peers exist) fills only the tunnel's set, so every host is reachable
by SSH from the tunnel and nothing else (fail closed); phase 2 (peer sync) fills them all.
"""
from __future__ import annotations

import ipaddress
from typing import Mapping

from firewall import chains
from firewall.policy import referenced_sets
from topology.model import Stack

CREATE = "create {name} {kind} family {family} hashsize 1024 maxelem 65536\n"


def private_addresses(stack: Stack, private_ips: Mapping[str, str] | None = None) -> dict[str, str]:
    """Host name -> private IPv4: the real ones where given (a deploy), else the plan's."""
    given = private_ips or {}
    return {h.name: given.get(h.name, h.private_ip) for h in stack.hosts}


def set_members(stack: Stack, addresses: Mapping[str, str], phase: int = 2) -> dict[str, tuple[str, ...]]:
    """Set name -> members, for every set any host can reference; `addresses` from private_addresses."""
    members: dict[str, tuple[str, ...]] = {}
    for role in stack.roles:
        hosts = stack.hosts_of(role.name)
        if phase == 1 and role.name != stack.tunnel_role:
            members[chains.role_set(role.name)] = ()
        else:
            members[chains.role_set(role.name)] = tuple(addresses[h.name] for h in hosts)
    members[chains.ADMIN_SET] = tuple(n for n in stack.admin_cidrs if ipaddress.ip_network(n).version == 4)
    members[chains.ADMIN_SET6] = tuple(n for n in stack.admin_cidrs if ipaddress.ip_network(n).version == 6)
    return members


def set_block(name: str, members: tuple[str, ...]) -> str:
    """The `create` line and `add` lines of one set."""
    if name in (chains.ADMIN_SET, chains.ADMIN_SET6):
        head = CREATE.format(name=name, kind="hash:net", family="inet6" if name == chains.ADMIN_SET6 else "inet")
    else:
        head = CREATE.format(name=name, kind="hash:ip", family="inet")
    return head + "".join(f"add {name} {m}\n" for m in members)


class IpsetRenderer:
    """Renders per-host ipset files, each set's block built once per stack (hosts share them)."""

    def __init__(self, stack: Stack, addresses: Mapping[str, str], phase: int = 2):
        self.stack = stack
        self.members = set_members(stack, addresses, phase)
        self._blocks: dict[str, str] = {}

    def for_role(self, role: str) -> str:
        parts = [f"# enclave ipsets for role {role} of stack {self.stack.name}: generated, do not edit\n"]
        for name in referenced_sets(self.stack, role):
            if name not in self._blocks:
                self._blocks[name] = set_block(name, self.members[name])
            parts.append(self._blocks[name])
        return "".join(parts)
