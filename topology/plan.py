"""The deterministic address plan shared by render, verify and the lab.

Private addresses come from the VPC range, public ones from a documentation (or benchmark)
range, in role order: host i (0-based over the whole stack) gets VPC network + 2 + i and
public network + 12 + i. Real droplets get their addresses from DigitalOcean; the plan only
stands in for them where no droplet exists (render, verify, lab).
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from topology.model import Host

PRIVATE_OFFSET = 2  # .0 network, .1 reserved for the VPC gateway
PUBLIC_OFFSET = 12

# Ranges never routed on the internet: the lab may use them freely inside its namespaces.
SAFE_PUBLIC_RANGES = tuple(
    ipaddress.ip_network(n)
    for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "198.18.0.0/15", "2001:db8::/32")
)


@dataclass(frozen=True)
class Outsiders:
    """Addresses of the sources that are not hosts of the stack."""

    internet: str  # an attacker on the internet
    internet6: str
    tenant: str  # another tenant on the private network (an unassigned VPC address)
    admin: str  # an address inside the first admin CIDR


def capacity(vpc: ipaddress.IPv4Network) -> int:
    """Hosts the plan can place in `vpc`: minus network, VPC gateway, tenant probe, broadcast."""
    return vpc.num_addresses - PRIVATE_OFFSET - 2


def plan_hosts(
    roles: list[tuple[str, int, bool]],
    vpc_cidr: str,
    public_cidr: str,
    public6_cidr: str | None,
) -> tuple[Host, ...]:
    """Hosts `<role>-<n>` for (role, count, private_only) in order, with planned addresses."""
    vpc = ipaddress.ip_network(vpc_cidr)
    public = ipaddress.ip_network(public_cidr)
    public6 = ipaddress.ip_network(public6_cidr) if public6_cidr else None
    hosts = []
    i = 0
    for role, count, private_only in roles:
        for n in range(1, count + 1):
            hosts.append(
                Host(
                    name=f"{role}-{n}",
                    role=role,
                    index=n,
                    private_ip=str(vpc.network_address + PRIVATE_OFFSET + i),
                    public_ip=None if private_only else str(public.network_address + PUBLIC_OFFSET + i),
                    public_ip6=None
                    if private_only or public6 is None
                    else str(public6.network_address + PUBLIC_OFFSET + i),
                )
            )
            i += 1
    return tuple(hosts)


def outsiders(vpc_cidr: str, admin_cidrs: tuple[str, ...]) -> Outsiders:
    vpc = ipaddress.ip_network(vpc_cidr)
    admin = ipaddress.ip_network(admin_cidrs[0])
    admin_ip = admin.network_address if admin.num_addresses == 1 else admin.network_address + min(10, admin.num_addresses - 2)
    return Outsiders(
        internet="192.0.2.66",
        internet6="2001:db8:ffff::66",
        tenant=str(vpc.broadcast_address - 1),
        admin=str(admin_ip),
    )
