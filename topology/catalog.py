"""Registries the model validates against: service profiles, conntrack helpers, regions.

A profile names what cloud-init installs on a role and which ports its daemons listen on
(the lab starts them, the post-deploy suite checks them). Helpers name a conntrack helper and
the traffic that must be attached to it in the raw table (automatic assignment is off since 4.7).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    listens: tuple[tuple[str, int], ...] = ()  # (proto, port) the role's daemons bind
    forwards: bool = False  # a gateway: ip_forward on, FORWARD chain, nat table


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile("tunnel", "bastion: hardened sshd only"),
        Profile("haproxy", "haproxy load balancer; backends written by peer sync", (("tcp", 80), ("tcp", 443))),
        Profile("wordpress", "nginx + PHP-FPM serving WordPress; GlusterFS peers", (("tcp", 80), ("tcp", 24007), ("tcp", 24008))),
        Profile("mysql", "MariaDB bound to the private address, replication pair", (("tcp", 3306),)),
        Profile("postgresql", "PostgreSQL on the private address, pg_hba from app hosts", (("tcp", 5432),)),
        Profile("evergreen-app", "Evergreen ILS application server (web, Z39.50, SIP)", (("tcp", 80), ("tcp", 443), ("tcp", 210), ("tcp", 6001))),
        Profile("mail", "postfix (smtp, submission) + dovecot (imaps)", (("tcp", 25), ("tcp", 587), ("tcp", 993))),
        Profile("web", "nginx web server", (("tcp", 80), ("tcp", 443))),
        Profile("dns", "bind9 authoritative DNS", (("tcp", 53), ("udp", 53))),
        Profile("amanda-server", "Amanda tape server (amindexd 10082, amidxtaped 10083)", (("tcp", 10082), ("tcp", 10083))),
        Profile("amanda-client", "Amanda client (amandad on udp 10080)", (("udp", 10080),)),
        Profile("gateway", "forwarding/NAT host: ip_forward, FORWARD chain, masquerade", forwards=True),
        Profile("generic", "base system only (sshd)"),
    )
}


@dataclass(frozen=True)
class Helper:
    name: str
    proto: str
    port: int


HELPERS: dict[str, Helper] = {
    h.name: h
    for h in (
        Helper("amanda", "udp", 10080),
        Helper("ftp", "tcp", 21),
        Helper("tftp", "udp", 69),
        Helper("sip", "udp", 5060),
        Helper("irc", "tcp", 6667),
    )
}

# DigitalOcean region slugs that offer VPC networking.
REGIONS = frozenset(
    "nyc1 nyc2 nyc3 sfo1 sfo2 sfo3 ams2 ams3 sgp1 lon1 fra1 tor1 blr1 syd1 atl1".split()
)

# Sources that are not roles or CIDRs.
SPECIAL_SOURCES = ("internet", "admin")
