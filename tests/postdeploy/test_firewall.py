"""The firewall on each host: policies, live rules vs the generated ones, ipset members, persisted files."""
from __future__ import annotations

import pytest

from tests.postdeploy import fleet as F


def test_policy_drop(side, policy):
    host, family, chain = policy
    live = side.rules(host, "live")
    got = live.policy(family, chain)
    tool = "iptables" if family == 4 else "ip6tables"
    if got != "DROP":
        pytest.fail(f"{host}: {tool} filter {chain} policy is {got or 'missing'}, must be DROP", pytrace=False)


def test_live_rules_equal_generated(side, hostname):
    """Every intended-matrix probe to the host (and every port a rule names) gets the same verdict
    from the live rules and sets as from the generated phase-2 ones."""
    count, diffs = F.compare(side.fleet, hostname, side.rules(hostname, "live"), side.rules(hostname, "generated"))
    assert count > 0, f"{hostname}: no probe to compare"
    if diffs:
        lines = [d.describe(hostname, "live", "generated") for d in diffs]
        pytest.fail(f"{hostname}: live rules differ from the generated ones on {len(diffs)} of {count} probes:\n  "
                    + "\n  ".join(lines), pytrace=False)


def test_ipset_members(side, host_set):
    host, name = host_set
    expected = F.parse_ipsets(side.fleet.generated(host).ipsets)[name]
    problems = F.set_problems(side.fleet, host, name, expected, side.rules(host, "live"))
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def test_persisted_rules_equal_live(side, hostname):
    """/etc/iptables/rules.v4, rules.v6 and ipsets give the verdicts the kernel gives (a reboot
    restores what runs now)."""
    persisted, live = side.rules(hostname, "persisted"), side.rules(hostname, "live")
    count, diffs = F.compare(side.fleet, hostname, live, persisted)
    problems = [d.describe(hostname, "live", "/etc/iptables") for d in diffs]
    for name, expected in persisted.sets.items():
        problems += F.set_problems(side.fleet, hostname, name, expected, live)
    for name in live.sets.keys() - persisted.sets.keys():
        if name.startswith("enclave-"):
            problems.append(f"{hostname}: live ipset {name} is not in /etc/iptables/ipsets")
    if problems:
        pytest.fail(f"{hostname}: /etc/iptables differs from the live rules ({count} probes compared):\n  "
                    + "\n  ".join(problems), pytrace=False)
