"""The firewall's bootcmd item: one self-contained `sh -c` script, first in bootcmd.

It writes the phase-1 ipsets and rules (first boot only: later boots keep what peer sync
persisted) and the apply script's guard, then loads them before anything else runs. The guard
(the tunnel's set and its SSH rule, from the compiled rules) is what enclave-apply refuses to lose.
"""
from __future__ import annotations

from firewall import chains
from firewall.compile import HostFirewall
from topology.catalog import HELPERS
from topology.errors import ConfigError, Problem
from topology.model import PRIVATE, PUBLIC, Stack

MARK = "# enclave-firewall"


def guard(stack: Stack, host_name: str, fw: HostFirewall) -> tuple[str, str]:
    """(set name, rule line) that admits SSH from the tunnel (on the tunnel: from the admins)."""
    host = stack.host(host_name)
    name = chains.ADMIN_SET if host.role == stack.tunnel_role else chains.role_set(stack.tunnel_role)
    for line in fw.rules_v4.splitlines():
        if line.startswith(f"-A {chains.INPUT} ") and f"--match-set {name} src" in line and "--dport 22 " in line:
            return name, line
    raise ConfigError([Problem(f"host {host_name}", f"no SSH rule from ipset {name}: the host would be unreachable")])


def fallback_sources(stack: Stack, host_name: str, tunnel_ip: str) -> tuple[str, ...]:
    """iptables matches that keep SSH open if the ruleset cannot be loaded at boot."""
    if stack.host(host_name).role == stack.tunnel_role:
        return tuple(f"-i {PUBLIC} -s {net}" for net in stack.admin_cidrs if ":" not in net)
    return (f"-i {PRIVATE} -s {tunnel_ip}",)


def helper_modules(stack: Stack, host_name: str) -> tuple[str, ...]:
    role = stack.role(stack.host(host_name).role)
    return tuple(f"nf_conntrack_{HELPERS[name].name}" for name in role.helpers)
