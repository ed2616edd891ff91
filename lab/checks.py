"""Checks beyond the matrix, each from a registry (pure plans; lab.probe's agent runs them):

- end to end through the load balancer: an HTTP request from the internet to each haproxy host
  must be answered by a backend web server (haproxy -> nginx), not by haproxy alone;
- conntrack helpers: for amanda, the tape server's request to a client's amandad (udp 10080) is
  answered with a CONNECT line; the helper must then admit the tape server's TCP connection to
  the announced port as RELATED, which no flow admits (a control attempt before is blocked).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from topology.model import Stack

AMANDA_BASE = 50005  # the client stand-in announces DATA, MESG, INDEX ports from here
AMANDA_SLOTS = 8  # each run uses fresh ports: a helper expectation outlives a run (and would clash)
# the stand-in amandad answers a REQ ending in "PORTS d m i" with this, formatted with those words
AMANDA_REPLY = {"when": "Amanda", "text": "Amanda 2.6 REP HANDLE 000-00000000 SEQ 1\nOPTIONS features=ffffffff;\n"
                                          "CONNECT DATA {1} MESG {2} INDEX {3}\n"}


def amanda_ports(slot: int) -> tuple[int, int, int]:
    first = AMANDA_BASE + 3 * (slot % AMANDA_SLOTS)
    return first, first + 1, first + 2


@dataclass(frozen=True)
class Check:
    """A sequence of attempts from `source_ns`, judged by `expect` (one outcome per step)."""

    name: str
    source_actor: str  # actor whose namespace runs it
    steps: tuple[dict, ...]
    expect: tuple[str, ...]  # per step: "blocked", "reached" or "http-backend"
    listeners: tuple[tuple[str, str, int], ...] = ()  # (host, proto, port) that must listen
    udp_replies: tuple[tuple[str, int, dict], ...] = ()  # (host, port, reply rule for the agent)


def _http_checks(stack: Stack) -> list[Check]:
    out = []
    for role in stack.roles:
        if role.profile != "haproxy":
            continue
        for host in stack.hosts_of(role.name):
            if not host.public_ip:
                continue
            request = f"GET / HTTP/1.0\r\nHost: {host.name}.lab\r\nUser-Agent: enclave-lab\r\n\r\n"
            step = {"proto": "tcp", "src": "192.0.2.66", "dst": host.public_ip, "port": 80, "send": request,
                    "timeout": 5}
            out.append(Check(f"internet -> {host.name} http/80 -> backend web server (end to end)", "internet",
                             (step,), ("http-backend",)))
    return out


def _amanda_checks(stack: Stack) -> list[Check]:
    out = []
    ports = amanda_ports(int(time.time()))
    for flow in stack.flows:
        if flow.proto != "udp" or flow.source.kind != "role" or not any(10080 in r for r in flow.ports):
            continue
        if "amanda" not in stack.role(flow.to).helpers:
            continue
        server = stack.hosts_of(flow.source.label)[0]
        client = stack.hosts_of(flow.to)[0]
        tcp = {"proto": "tcp", "src": server.private_ip, "dst": client.private_ip, "port": ports[0]}
        udp = {"proto": "udp", "src": server.private_ip, "dst": client.private_ip, "port": 10080,
               "send": "Amanda 2.6 REQ HANDLE 000-00000000 SEQ 1\nSERVICE sendbackup\nPORTS %d %d %d\n" % ports}
        out.append(Check(
            f"amanda helper: {server.name} -> {client.name} tcp/{ports[0]} RELATED after udp/10080 CONNECT",
            server.name, (tcp, udp, tcp), ("blocked", "reached", "reached"),
            listeners=tuple((client.name, "tcp", p) for s in range(AMANDA_SLOTS) for p in amanda_ports(s)),
            udp_replies=((client.name, 10080, AMANDA_REPLY),),
        ))
    return out


CHECKS = {"http": _http_checks, "amanda": _amanda_checks}


def lab_checks(stack: Stack) -> list[Check]:
    return [c for build in CHECKS.values() for c in build(stack)]


def judge(check: Check, answers: list[dict]) -> tuple[bool, str]:
    """(passed, what was seen) for one check's step answers."""
    seen = []
    ok = True
    for want, answer in zip(check.expect, answers):
        outcome = answer.get("outcome")
        if want == "blocked":
            good = outcome in ("dropped", "rejected")
            seen.append(outcome)
        elif want == "reached":
            good = outcome == "reached"
            seen.append(outcome)
        else:  # http-backend: a real HTTP answer that a backend's web server produced
            data = answer.get("data", "")
            status = data.split("\r\n", 1)[0]
            server = next((line for line in data.split("\r\n") if line.lower().startswith("server:")), "")
            backend = next((line.split(":", 1)[1].strip() for line in data.split("\r\n")
                            if line.lower().startswith("x-enclave-lab-backend:")), "")
            if backend:
                server += f", backend {backend}"
            good = outcome == "reached" and status.startswith("HTTP/") and "nginx" in server.lower()
            seen.append(f"{outcome}: {status or 'no HTTP answer'}{' (' + server + ')' if server else ''}")
        ok = ok and good
    return ok, "; ".join(seen)
