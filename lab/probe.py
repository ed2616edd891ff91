"""Probing: every intended probe becomes a real connection attempt from its source's namespace;
the observed outcome is compared with the intended matrix (firewall.intent), flow by flow.

One agent process per source namespace runs its probes concurrently. A probe intended to pass
that was not answered is tried again with a longer timeout before it counts (a busy machine
is not a firewall). DNAT probes read the banner, which must name the forward's target; an input
probe of the same packet is "forwarded" (not accepted by the gateway itself) when the target answers.
"""
from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from firewall.intent import Expectation
from lab.plan import LabPlan

AGENT = str(Path(__file__).with_name("agent.py"))
TIMEOUT = 0.6
RETRY_TIMEOUT = 2.5


@dataclass(frozen=True)
class Observation:
    expectation: Expectation
    observed: str  # reached | refused | rejected | dropped | error
    detail: str

    @property
    def ok(self) -> bool:
        if self.expectation.allowed:
            return self.observed == "reached"
        return self.observed in ("rejected", "dropped", "forwarded")

    def why(self) -> str:
        e = self.expectation
        if self.ok:
            return ""
        if e.allowed:
            return f"intended open ({e.because}) but {self.observed}: {self.detail}"
        return f"intended closed ({e.because}) but {self.observed}: {self.detail}"


def run_agent(ns: str, job: dict, timeout: float) -> dict:
    argv = ["ip", "netns", "exec", ns, sys.executable, "-I", AGENT, "probe"]
    done = subprocess.run(argv, input=json.dumps(job), capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"probe agent in {ns} failed: {done.stderr.strip()[-500:]}")
    return json.loads(done.stdout)


def run_jobs(jobs: dict[str, dict], workers: int = 16) -> dict[str, dict]:
    """ns -> job, all agents at once; ns -> agent answer."""
    def one(item):
        ns, job = item
        rounds = max(1, len(job.get("probes", [])) // int(job.get("concurrency", 256)) + 1)
        return ns, run_agent(ns, job, 30 + rounds * float(job.get("timeout", TIMEOUT)) * 2)

    with ThreadPoolExecutor(max(1, min(workers, len(jobs)))) as pool:
        return dict(pool.map(one, jobs.items()))


def _packet(p) -> tuple:
    return (p.source.address, p.dest_address, p.proto, p.port)


def dnat_packets(matrix: tuple[Expectation, ...]) -> set[tuple]:
    """Packets a gateway forwards: an input probe of the same packet reads the banner too."""
    return {_packet(e.probe) for e in matrix if e.probe.kind == "dnat"}


def _probe_of(index: int, e: Expectation, forwarded: set[tuple]) -> dict:
    p = e.probe
    return {"id": str(index), "proto": p.proto, "src": p.source.address, "dst": p.dest_address, "port": p.port,
            "read": p.kind == "dnat" or (p.proto == "tcp" and _packet(p) in forwarded)}


def _judge(e: Expectation, answer: dict, forwarded: set[tuple]) -> tuple[str, str]:
    observed, detail = answer["outcome"], answer.get("detail", "")
    if e.probe.kind == "input" and observed == "reached" and _packet(e.probe) in forwarded:
        banner = answer.get("data", "")
        if f" {e.probe.dest} " not in banner:  # answered by the DNAT target, not the host itself
            return "forwarded", f"not accepted by {e.probe.dest} itself: DNAT to {banner.strip() or '?'}"
    if e.probe.kind == "dnat" and observed == "reached":
        banner = answer.get("data", "")
        if e.probe.target and f" {e.probe.target}-" not in banner:
            return "reached-wrong-host", f"answered by {banner.strip() or 'an unknown listener'}, not {e.probe.target}"
        detail = banner.strip()
    return observed, detail


def probe_matrix(plan: LabPlan, matrix: tuple[Expectation, ...], timeout: float = TIMEOUT,
                 concurrency: int = 256) -> list[Observation]:
    forwarded = dnat_packets(matrix)
    by_ns: dict[str, list[int]] = defaultdict(list)
    for i, e in enumerate(matrix):
        by_ns[plan.ns_of_actor(e.probe.source.name)].append(i)
    jobs = {ns: {"timeout": timeout, "concurrency": concurrency, "probes": [_probe_of(i, matrix[i], forwarded) for i in ids]}
            for ns, ids in by_ns.items()}
    answers: dict[int, dict] = {}
    for ns, answer in run_jobs(jobs).items():
        answers.update({int(k): v for k, v in answer["results"].items()})
    retry = [i for i, e in enumerate(matrix) if e.allowed and answers[i]["outcome"] != "reached"]
    if retry:
        again: dict[str, list[int]] = defaultdict(list)
        for i in retry:
            again[plan.ns_of_actor(matrix[i].probe.source.name)].append(i)
        jobs = {ns: {"timeout": RETRY_TIMEOUT, "concurrency": 64, "probes": [_probe_of(i, matrix[i], forwarded) for i in ids]}
                for ns, ids in again.items()}
        for ns, answer in run_jobs(jobs).items():
            answers.update({int(k): v for k, v in answer["results"].items()})
    out = []
    for i, e in enumerate(matrix):
        observed, detail = _judge(e, answers[i], forwarded)
        out.append(Observation(e, observed, detail))
    return out
