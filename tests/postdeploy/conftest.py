"""Post-deploy suite: options, hosts over testinfra's ssh:// backend, facts gathered once per host.

    pytest tests/postdeploy --inventory inventory.json --ssh-config ssh_config [--stack S] [--real-deploy]

Parameters come from the inventory and the stack model (`pytest_generate_tests`). Each host is
asked once for its facts (iptables-save, ip6tables-save, ipset save, ss, sshd -T, the files in
/etc/iptables) and once for its reachability attempts, all hosts in parallel; the `ssh://` backend
runs the real `ssh -F <ssh_config>`, so ProxyJump through the tunnel works (paramiko ignores it).
"""
from __future__ import annotations

import json
import shlex
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import testinfra

from tests.postdeploy import fleet as F


def pytest_addoption(parser):
    group = parser.getgroup("enclave post-deploy")
    group.addoption("--inventory", metavar="FILE", help="inventory.json (`pulumi stack output inventory --json`, or the lab's)")
    # --ssh-config is testinfra's own option (its plugin registers it); this suite requires it.
    group.addoption("--stack", metavar="NAME", help="stack file under stacks/ (default: the inventory's stack)")
    group.addoption("--real-deploy", action="store_true", help="also run the realdeploy checks (systemd units, packages)")


def _fleet(config) -> F.Fleet:
    cached = getattr(config, "_enclave_fleet", None)
    if cached is not None:
        return cached
    inventory, ssh_config = config.getoption("inventory", None), config.getoption("ssh_config", None)
    if not inventory or not ssh_config:
        raise pytest.UsageError("tests/postdeploy needs --inventory FILE and --ssh-config FILE (see docs/postdeploy.md)")
    for path in (inventory, ssh_config):
        if not Path(path).is_file():
            raise pytest.UsageError(f"{path}: no such file")
    try:
        fleet = F.load_fleet(Path(inventory), config.getoption("stack", None))
    except (F.FleetError, OSError, KeyError, json.JSONDecodeError) as error:
        raise pytest.UsageError(f"{inventory}: {error}") from None
    config._enclave_fleet = fleet
    return fleet


def pytest_report_header(config):
    if not config.getoption("inventory", None):
        return None
    fleet = _fleet(config)
    where = "the lab (lab.json next to the inventory: stand-ins are named there)" if fleet.lab_services is not None else "a deploy"
    return [f"enclave stack {fleet.stack.name}: {len(fleet.hosts)} hosts, against {where}",
            f"realdeploy checks: {'on' if config.getoption('real_deploy') else 'off (--real-deploy)'}"]


def pytest_generate_tests(metafunc):
    names = metafunc.fixturenames
    if not any(n in names for n in ("hostname", "policy", "host_set", "listener", "attempt")):
        return
    fleet = _fleet(metafunc.config)
    hosts = list(fleet.hosts)
    if "hostname" in names:
        metafunc.parametrize("hostname", hosts, ids=hosts)
    if "policy" in names:
        cases = [(h, fam, chain) for h in hosts for fam in (4, 6) for chain in ("INPUT", "FORWARD")]
        metafunc.parametrize("policy", cases, ids=[f"{h}:ipv{fam}:{chain}" for h, fam, chain in cases])
    if "host_set" in names:
        cases = [(h, s) for h in hosts for s in F.parse_ipsets(fleet.generated(h).ipsets)]
        metafunc.parametrize("host_set", cases, ids=[f"{h}:{s}" for h, s in cases])
    if "listener" in names:
        cases = F.listeners(fleet)
        metafunc.parametrize("listener", cases, ids=[c.id for c in cases])
    if "attempt" in names:
        cases = F.attempts(fleet)
        metafunc.parametrize("attempt", cases, ids=[c.id for c in cases])


def pytest_collection_modifyitems(config, items):
    if config.getoption("real_deploy", False):
        return
    kept, dropped = [], []
    for item in items:
        (dropped if item.get_closest_marker("realdeploy") else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


# Concurrent SSH sessions through the tunnel: below sshd's default MaxStartups (10), beyond which
# the tunnel starts refusing new unauthenticated connections at random.
SSH_PARALLEL = 8
SSH_ATTEMPTS = 3


class Fleetside:
    """Per-session access to the hosts: testinfra hosts, facts and reachability, each fetched once
    for every host in parallel on first use."""

    def __init__(self, fleet: F.Fleet, ssh_config: str):
        self.fleet = fleet
        self.hosts = {name: testinfra.get_host(f"ssh://{name}", ssh_config=ssh_config, controlpersist=0)
                      for name in fleet.hosts}
        self._lock = threading.Lock()
        self._facts: dict[str, dict | Exception] | None = None
        self._reach: dict[str, list | Exception] | None = None
        self._rules: dict[tuple[str, str], F.Rules] = {}

    def _all(self, job) -> dict:
        with ThreadPoolExecutor(max_workers=min(SSH_PARALLEL, len(self.hosts))) as pool:
            futures = {name: pool.submit(job, name) for name in self.hosts}
        out = {}
        for name, future in futures.items():
            try:
                out[name] = future.result()
            except Exception as error:  # reported by every test of that host
                out[name] = error
        return out

    def _run(self, name: str, command: str):
        """Run on the host; an SSH-level failure (exit 255: the connection, not the command) is
        retried, since a busy tunnel's sshd drops some new connections (MaxStartups)."""
        for attempt in range(SSH_ATTEMPTS):
            result = self.hosts[name].run(command)
            if result.exit_status != 255:
                break
            time.sleep(0.5 * (attempt + 1))
        return result

    def _gather(self, name: str) -> dict:
        result = self._run(name, F.gather_command())
        return F.parse_gather(result.stdout)

    def facts(self, name: str) -> dict[str, F.Section]:
        with self._lock:
            if self._facts is None:
                self._facts = self._all(self._gather)
        got = self._facts[name]
        if isinstance(got, Exception):
            pytest.fail(f"{name}: could not gather facts over SSH: {got}", pytrace=False)
        return got

    def rules(self, name: str, label: str) -> F.Rules:
        """`live` (the kernel's), `persisted` (/etc/iptables) or `generated` (from the stack)."""
        key = (name, label)
        if key not in self._rules:
            if label == "generated":
                fw = self.fleet.generated(name)
                texts = (fw.rules_v4, fw.rules_v6, fw.ipsets)
            else:
                facts = self.facts(name)
                sections = ("iptables", "ip6tables", "ipset") if label == "live" else ("rules.v4", "rules.v6", "ipsets")
                for section in sections:
                    if facts[section].rc != 0:
                        pytest.fail(f"{name}: {F.SECTIONS[section]} failed (exit {facts[section].rc}): "
                                    f"{facts[section].text.strip()[-300:]}", pytrace=False)
                texts = tuple(facts[s].text for s in sections)
            self._rules[key] = F.Rules.parse(*texts, label, name)
        return self._rules[key]

    def _attempt_all(self, name: str) -> list:
        mine = [a for a in self.attempts if a.probe.source.host == name]
        if not mine:
            return []
        targets = json.dumps([[a.dest_ip, a.probe.port] for a in mine])
        command = " ".join(shlex.quote(w) for w in ("python3", "-c", F.REACH_SCRIPT, targets, str(F.REACH_TIMEOUT)))
        result = self._run(name, command)
        if result.rc != 0:
            raise RuntimeError(f"reachability script exited {result.rc}: {result.stderr.strip()[-300:]}")
        return list(zip(mine, json.loads(result.stdout)))

    def outcome(self, attempt: F.Attempt) -> str:
        with self._lock:
            if self._reach is None:
                self.attempts = F.attempts(self.fleet)
                self._reach = self._all(self._attempt_all)
        got = self._reach[attempt.probe.source.host]
        if isinstance(got, Exception):
            pytest.fail(f"{attempt.probe.source.host}: could not run the reachability attempts: {got}", pytrace=False)
        for a, outcome in got:
            if a == attempt:
                return outcome
        raise KeyError(attempt.id)

    def live_or_none(self, name: str) -> F.Rules | None:
        try:
            return self.rules(name, "live")
        except (pytest.fail.Exception, ValueError):
            return None


@pytest.fixture(scope="session")
def fleet(request) -> F.Fleet:
    return _fleet(request.config)


@pytest.fixture(scope="session")
def side(request, fleet) -> Fleetside:
    return Fleetside(fleet, request.config.getoption("ssh_config"))
