"""sshd keys-only and listening; each profile's services listening where the stack means them to."""
from __future__ import annotations

import pytest

from tests.postdeploy import fleet as F


def test_sshd_keys_only_and_listening(side, hostname):
    facts = side.facts(hostname)
    problems = F.sshd_problems(hostname, facts["sshd"], F.parse_listeners(facts["listeners"].text))
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def test_listener(side, listener):
    facts = side.facts(listener.host)
    if facts["listeners"].rc != 0:
        pytest.fail(f"{listener.host}: ss failed: {facts['listeners'].text[-300:]}", pytrace=False)
    problem = F.listener_problem(side.fleet, listener, F.parse_listeners(facts["listeners"].text))
    if problem:
        pytest.fail(problem, pytrace=False)
