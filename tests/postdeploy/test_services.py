"""sshd keys-only and listening; each profile's services listening where the stack means them to."""
from __future__ import annotations

from tests.postdeploy import fleet as F


def test_sshd_keys_only_and_listening(side, hostname):
    facts = side.facts(hostname)
    problems = F.sshd_problems(hostname, facts["sshd"], F.parse_listeners(facts["listeners"].text))
    assert not problems, "\n".join(problems)


def test_listener(side, listener):
    facts = side.facts(listener.host)
    assert facts["listeners"].rc == 0, f"{listener.host}: ss failed: {facts['listeners'].text[-300:]}"
    problem = F.listener_problem(side.fleet, listener, F.parse_listeners(facts["listeners"].text))
    assert problem is None, problem
