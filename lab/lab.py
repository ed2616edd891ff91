"""The lab's life cycle for one stack: up (network + phase 1), phase 2, check, down.

State folder (printed by `up`; `names.state_dir`): lab.json (pids, phase, timings, services),
inventory.json, ssh_config, known_hosts, the lab client key, agents/<ns>.json (listener specs),
logs/<host>-<daemon>.log, run/<host>/ (daemon pid/temp files), report.json after a check.
"""
from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from firewall.intent import intended_matrix, probe_ports
from lab import artifacts, checks, daemons, etc, names, network, peersync, probe, services
from lab.plan import LabPlan, lab_plan
from lab.ssh import client_key, write_access_files
from lab.system import LabError, kill_pids, listening, run_in
from topology.model import Stack

READY_TIMEOUT = 15.0
PHP_STANDIN = str(Path(__file__).with_name("php_standin.py"))
FORWARD_OUT = (("tcp", 80), ("tcp", 443), ("udp", 53))  # what the internet answers for forward-out probes


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class Lab:
    def __init__(self, stack: Stack, progress=_say, workers: int = 8):
        self.stack = stack
        self.plan: LabPlan = lab_plan(stack)
        self.state: Path = names.state_dir(stack.name)
        self.say = progress
        self.workers = workers
        self.installed = daemons.installed()
        self.services = {h.name: services.host_services(stack, h.name, self.installed) for h in stack.hosts}
        self.checks = checks.lab_checks(stack)
        self.info: dict = {"stack": stack.name, "pids": {}, "phase": 0, "timings": {}}
        self._arts: dict[str, artifacts.HostArtifacts] | None = None

    # ---- state ---------------------------------------------------------------------------

    @property
    def arts(self) -> dict[str, artifacts.HostArtifacts]:
        if self._arts is None:
            self._arts = artifacts.stack_artifacts(self.stack)
        return self._arts

    def save(self) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        (self.state / "lab.json").write_text(json.dumps(self.info, indent=2) + "\n")

    def load(self) -> bool:
        path = self.state / "lab.json"
        if not path.exists():
            return False
        self.info = json.loads(path.read_text())
        return True

    def timed(self, phase: str, seconds: float) -> None:
        self.info["timings"][phase] = round(seconds, 3)

    # ---- up ------------------------------------------------------------------------------

    def clean_leftovers(self) -> None:
        old = self.load()
        pids = list(self.info.get("pids", {}).values()) if old else []
        gone = network.teardown(self.stack.name, pids)
        if gone or old:
            self.say(f"lab: removed leftovers of an earlier run of {self.stack.name} ({len(gone)} namespaces)")
        shutil.rmtree(self.state, ignore_errors=True)
        self.info = {"stack": self.stack.name, "pids": {}, "phase": 0, "timings": {}}

    def up(self) -> None:
        """Network, keys, access files, then phase 1 on every host (firewall, files, daemons)."""
        self.clean_leftovers()
        self.state.mkdir(parents=True, exist_ok=True)
        self.save()
        start = time.monotonic()
        if network.raise_neighbour_limits(self.plan):
            self.say(f"lab: raised the kernel's neighbour table limits to {network.neighbour_entries(self.plan)} "
                     f"entries for this lab (restored by down)")
        network.build(self.plan, self.workers)
        self.timed("network", time.monotonic() - start)
        self.say(f"lab: {len(self.plan.namespaces)} namespaces for {len(self.stack.hosts)} hosts "
                 f"(state folder {self.state})")
        start = time.monotonic()
        self.client_pub = client_key(self.state)
        write_access_files(self.stack, self.state)
        _ = self.arts
        self.timed("render", time.monotonic() - start)
        start = time.monotonic()
        with ThreadPoolExecutor(self.workers) as pool:
            started = list(pool.map(self._phase1_host, self.stack.hosts))
        started.append(self._start_outsiders())
        started.append(self._start_php_standins())
        self._wait_ready(started)
        self.info["phase"] = 1
        self.info["services"] = {h: {"real": [d.kind for d in s.daemons], "stand_ins": [f"{p}/{n}" for p, n in s.stand_ins],
                                     "missing": list(s.missing)} for h, s in self.services.items()}
        self.info["php_standin"] = self.php_sockets()
        self.save()
        self.timed("phase1", time.monotonic() - start)
        self.save()

    def _ctx(self, host: str) -> daemons.HostContext:
        ns = self.plan.ns_of_host(host)
        return daemons.HostContext(self.stack.name, host, ns, etc.host_etc(ns), self.state,
                                   self.state / "id_ed25519.pub")

    def _phase1_host(self, host) -> list:
        """Firewall bootcmd, write_files, sysctls, real daemons, stand-in listeners of one host."""
        art = self.arts[host.name]
        ns = self.plan.ns_of_host(host.name)
        tops = art.etc_tops() + tuple(t for t in ("ssh",) if t not in art.etc_tops())
        etc.prepare(ns, tops)
        etc.write(ns, art.files)
        guard = etc.guard_script(ns, tops)
        for i, script in enumerate(art.bootcmd):
            done = run_in(ns, ["sh", "-c", guard + script], check=False)
            if done.returncode != 0:
                what = "the firewall bootcmd" if i == 0 else f"bootcmd item {i + 1}"
                raise LabError(f"{host.name}: {what} failed ({done.returncode}): {(done.stderr or done.stdout).strip()[-600:]}")
        sysctl_files = [f.path for f in art.files if f.path.startswith("/etc/sysctl.d/")]
        if sysctl_files:
            run_in(ns, ["sh", "-c", guard + "".join(f"sysctl -q -p {p}\n" for p in sysctl_files)])
        started = []
        for d in self.services[host.name].daemons:
            started.append(self._start_daemon(host.name, d))
        started.append(self._start_agent(host.name, ns, self._listeners(host.name)))
        self.say(f"  {host.name}: firewall loaded, {len(art.files)} files written, "
                 f"{', '.join(d.kind for d in self.services[host.name].daemons)} started")
        return started

    def _listeners(self, host: str) -> dict:
        extra = tuple((proto, port) for c in self.checks for (h, proto, port) in c.listeners if h == host)
        ports = services.listener_ports(self.stack, host, self.services[host], probe_ports(self.stack), extra)
        replies = {str(port): text for c in self.checks for (h, port, text) in c.udp_replies if h == host}
        return {"host": host, **ports, "udp_replies": replies}

    def _log(self, name: str) -> Path:
        logs = self.state / "logs"
        logs.mkdir(exist_ok=True)
        return logs / f"{name}.log"

    def _spawn(self, label: str, ns: str, argv: list[str], stdout=None) -> subprocess.Popen:
        log = open(self._log(label), "ab")
        proc = subprocess.Popen(["ip", "netns", "exec", ns, *argv], stdin=subprocess.DEVNULL,
                                stdout=stdout or log, stderr=log, start_new_session=True)
        log.close()
        self.info["pids"][label] = proc.pid
        return proc

    def _start_daemon(self, host: str, daemon: services.Daemon):
        launcher = daemons.LAUNCHERS[daemon.kind]
        ctx = self._ctx(host)
        launcher.prepare(ctx)
        proc = self._spawn(f"{host}-{daemon.kind}", ctx.ns, launcher.argv(ctx))
        return ("daemon", f"{host}-{daemon.kind}", proc, daemon.ports)

    def _start_agent(self, label: str, ns: str, spec: dict):
        agents = self.state / "agents"
        agents.mkdir(exist_ok=True)
        path = agents / f"{ns}.json"
        path.write_text(json.dumps(spec))
        proc = self._spawn(f"{label}-listeners", ns, [sys.executable, "-I", probe.AGENT, "serve", str(path)],
                           stdout=subprocess.PIPE)
        return ("agent", f"{label}-listeners", proc, ())

    def _start_outsiders(self) -> list:
        ns = self.plan.ns_of_actor("internet")
        spec = {"host": "internet", "tcp": [p for proto, p in FORWARD_OUT if proto == "tcp"],
                "udp": [p for proto, p in FORWARD_OUT if proto == "udp"]}
        return [self._start_agent("internet", ns, spec)]

    def php_sockets(self) -> list[str]:
        """Unix sockets the rendered nginx sites pass PHP to (served by the php-fpm stand-in)."""
        found = []
        for host, svc in self.services.items():
            if any(d.kind == "nginx" for d in svc.daemons):
                for f in self.arts[host].files:
                    for m in re.finditer(r"fastcgi_pass\s+unix:([^;\s]+);", f.content):
                        if m.group(1) not in found:
                            found.append(m.group(1))
        return found

    def _start_php_standins(self) -> list:
        started = []
        hosts = {h.private_ip: h.name for h in self.stack.hosts}
        hosts.update({h.public_ip: h.name for h in self.stack.hosts if h.public_ip})
        spec = self.state / "agents" / "php-standin.json"
        spec.parent.mkdir(exist_ok=True)
        spec.write_text(json.dumps(hosts))
        for i, path in enumerate(self.php_sockets()):
            etc.make_dir(Path(path).parent)
            etc.record_file(Path(path))
            proc = self._spawn(f"php-standin-{i}", self.plan.fabric, [sys.executable, "-I", PHP_STANDIN, path, str(spec)],
                               stdout=subprocess.PIPE)
            started.append(("agent", f"php-standin-{i}", proc, ()))
        return started

    def _wait_ready(self, started: list) -> None:
        flat = [item for group in started for item in group]
        deadline = time.monotonic() + READY_TIMEOUT
        for kind, label, proc, ports in flat:
            if kind == "agent":
                line = proc.stdout.readline()
                proc.stdout.close()
                if line.strip() != b"ready":
                    raise LabError(f"{label} did not start: {self._log(label).read_text()[-600:]}")
                continue
            while not all(listening(proc.pid, proto, port) for proto, port in ports):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise LabError(f"{label} did not start listening on {ports}: {self._log(label).read_text()[-600:]}")
                time.sleep(0.02)

    # ---- phase 2 -------------------------------------------------------------------------

    def _watched(self, host: str) -> dict[str, str]:
        """Daemon kind -> hash of the files it reads that peer sync may change."""
        root = etc.host_etc(self.plan.ns_of_host(host))
        out = {}
        for d in self.services[host].daemons:
            digest = hashlib.sha256()
            for path in daemons.LAUNCHERS[d.kind].watch:
                p = root / path.removeprefix("/etc/")
                for f in sorted(p.rglob("*")) if p.is_dir() else [p]:
                    if f.is_file():
                        digest.update(str(f).encode() + f.read_bytes())
            out[d.kind] = digest.hexdigest()
        return out

    def phase2(self) -> None:
        start = time.monotonic()
        before = {h.name: self._watched(h.name) for h in self.stack.hosts}
        payloads = {name: art.payload for name, art in self.arts.items()}
        results = peersync.sync_all(self.plan.operator, self.state, payloads, self.stack.tunnel.name,
                                    progress=self.say)
        restarted = []
        for h in self.stack.hosts:
            after = self._watched(h.name)
            for d in self.services[h.name].daemons:
                if after[d.kind] != before[h.name][d.kind]:
                    restarted.append(self._restart(h.name, d))
        self._wait_ready([restarted])
        for _, label, _, _ in restarted:
            self.say(f"  phase 2: restarted {label} (its files changed; the lab stands in for systemd)")
        (self.state / "peer-sync.log").write_text("".join(f"== {r.host}\n{r.output}\n" for r in results))
        self.info["phase"] = 2
        self.timed("phase2", time.monotonic() - start)
        self.save()

    def _restart(self, host: str, daemon: services.Daemon):
        label = f"{host}-{daemon.kind}"
        pid = self.info["pids"].get(label)
        if pid:
            kill_pids([pid])
        return self._start_daemon(host, daemon)

    # ---- check ---------------------------------------------------------------------------

    def probe(self) -> tuple[list[probe.Observation], list[tuple[checks.Check, bool, str]]]:
        start = time.monotonic()
        matrix = intended_matrix(self.stack)
        observations = probe.probe_matrix(self.plan, matrix)
        self.timed("probe", time.monotonic() - start)
        start = time.monotonic()
        jobs: dict[str, dict] = {}
        for i, c in enumerate(self.checks):
            ns = self.plan.ns_of_actor(c.source_actor)
            jobs.setdefault(ns, {"timeout": 1.0, "sequences": []})["sequences"].append({"id": str(i), "steps": list(c.steps)})
        answers: dict[int, list] = {}
        for ns, answer in probe.run_jobs(jobs).items():
            answers.update({int(k): v for k, v in answer["sequences"].items()})
        results = []
        for i, c in enumerate(self.checks):
            ok, seen = checks.judge(c, answers[i])
            results.append((c, ok, seen))
        self.timed("checks", time.monotonic() - start)
        self.save()
        return observations, results

    # ---- down ----------------------------------------------------------------------------

    def down(self, keep_state: bool = False) -> list[str]:
        self.load()
        gone = network.teardown(self.stack.name, list(self.info.get("pids", {}).values()))
        if not keep_state:
            shutil.rmtree(self.state, ignore_errors=True)
        network.restore_neighbour_limits()
        etc.remove_mount_points()
        return gone
