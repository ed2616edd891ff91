"""What listens on each lab host (pure): real daemons by profile, stand-ins for the rest.

A registry maps each service profile to the real daemons the lab can run for it; every other
port the profile declares (topology.catalog) gets a clearly named stand-in listener, and every
other probed port a plain probe listener, so a blocked probe is always the firewall's doing.
"""
from __future__ import annotations

from dataclasses import dataclass

from topology.catalog import PROFILES
from topology.model import Stack


@dataclass(frozen=True)
class Daemon:
    """A real daemon the lab can start: `kind` names its launcher (lab.daemons)."""

    kind: str
    ports: tuple[tuple[str, int], ...]
    binary: str  # what must be installed for it to run for real


SSHD = Daemon("sshd", (("tcp", 22),), "/usr/sbin/sshd")
HAPROXY = Daemon("haproxy", (("tcp", 80), ("tcp", 443)), "/usr/sbin/haproxy")
NGINX = Daemon("nginx", (("tcp", 80),), "/usr/sbin/nginx")
NGINX_TLS = Daemon("nginx", (("tcp", 80), ("tcp", 443)), "/usr/sbin/nginx")
POSTGRES = Daemon("postgres", (("tcp", 5432),), "postgres")  # any /usr/lib/postgresql/*/bin/postgres
MARIADB = Daemon("mariadb", (("tcp", 3306),), "/usr/sbin/mariadbd")

# profile -> real daemons besides sshd (which every host runs)
PROFILE_DAEMONS: dict[str, tuple[Daemon, ...]] = {
    "haproxy": (HAPROXY,),
    "wordpress": (NGINX,),
    "web": (NGINX_TLS,),
    "postgresql": (POSTGRES,),
    "mysql": (MARIADB,),
}


@dataclass(frozen=True)
class HostServices:
    host: str
    daemons: tuple[Daemon, ...]  # real daemons to start
    stand_ins: tuple[tuple[str, int], ...]  # declared ports served by a stand-in listener
    missing: tuple[str, ...]  # daemons the profile wants but the machine lacks (-> stand-ins)

    @property
    def real_ports(self) -> set[tuple[str, int]]:
        return {p for d in self.daemons for p in d.ports}


def host_services(stack: Stack, host: str, installed: frozenset[str]) -> HostServices:
    """Real daemons for `host` where `installed` holds their kind, stand-ins for the rest."""
    role = stack.role(stack.host(host).role)
    wanted = (SSHD,) + PROFILE_DAEMONS.get(role.profile, ())
    daemons = tuple(d for d in wanted if d.kind in installed)
    missing = tuple(d.kind for d in wanted if d.kind not in installed)
    served = {p for d in daemons for p in d.ports}
    declared = PROFILES[role.profile].listens
    stand_ins = tuple(p for p in declared if p not in served)
    return HostServices(host, daemons, stand_ins, missing)


def listener_ports(stack: Stack, host: str, services: HostServices, probed: tuple[tuple[str, int], ...],
                   extra: tuple[tuple[str, int], ...] = ()) -> dict[str, list[int]]:
    """Ports the host's agent listens on: probed, declared and extra ones no real daemon holds."""
    wanted = set(probed) | set(services.stand_ins) | set(extra)
    free = sorted(p for p in wanted if p not in services.real_ports)
    return {"tcp": [p for proto, p in free if proto == "tcp"], "udp": [p for proto, p in free if proto == "udp"]}
