"""Checks beyond the matrix, each from a registry (pure plans; lab.probe's agent runs them):

- end to end through the load balancer: an HTTP request from the internet to each haproxy host
  must be answered by a backend web server (haproxy -> nginx), not by haproxy alone;
- conntrack helpers: for amanda, the tape server's request to a client's amandad (udp 10080) is
  answered with a CONNECT line; the helper must then admit the tape server's TCP connection to
  the announced port as RELATED, which no flow admits (a control attempt before is blocked).
"""
from __future__ import annotations

from dataclasses import dataclass

from topology.model import Stack

AMANDA_PORTS = (50005, 50006, 50007)  # DATA, MESG, INDEX announced by the client's stand-in
AMANDA_REPLY = ("Amanda 2.6 REP HANDLE 000-00000000 SEQ 1\nOPTIONS features=ffffffff;\n"
                f"CONNECT DATA {AMANDA_PORTS[0]} MESG {AMANDA_PORTS[1]} INDEX {AMANDA_PORTS[2]}\n")


@dataclass(frozen=True)
class Check:
    """A sequence of attempts from `source_ns`, judged by `expect` (one outcome per step)."""

    name: str
    source_actor: str  # actor whose namespace runs it
    steps: tuple[dict, ...]
    expect: tuple[str, ...]  # per step: "blocked", "reached" or "http-backend"
    listeners: tuple[tuple[str, str, int], ...] = ()  # (host, proto, port) that must listen
    udp_replies: tuple[tuple[str, int, str], ...] = ()  # (host, port, reply)


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
    for flow in stack.flows:
        if flow.proto != "udp" or flow.source.kind != "role" or not any(10080 in r for r in flow.ports):
            continue
        if "amanda" not in stack.role(flow.to).helpers:
            continue
        server = stack.hosts_of(flow.source.label)[0]
        client = stack.hosts_of(flow.to)[0]
        tcp = {"proto": "tcp", "src": server.private_ip, "dst": client.private_ip, "port": AMANDA_PORTS[0]}
        udp = {"proto": "udp", "src": server.private_ip, "dst": client.private_ip, "port": 10080,
               "send": "Amanda 2.6 REQ HANDLE 000-00000000 SEQ 1\nSERVICE sendbackup\n"}
        out.append(Check(
            f"amanda helper: {server.name} -> {client.name} tcp/{AMANDA_PORTS[0]} RELATED after udp/10080 CONNECT",
            server.name, (tcp, udp, tcp), ("blocked", "reached", "reached"),
            listeners=tuple((client.name, "tcp", p) for p in AMANDA_PORTS),
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
            good = outcome == "reached" and status.startswith("HTTP/") and "nginx" in server.lower()
            seen.append(f"{outcome}: {status or 'no HTTP answer'}{' (' + server + ')' if server else ''}")
        ok = ok and good
    return ok, "; ".join(seen)
