"""From each host, a real TCP attempt to every other host's private address: declared peer ports
must get through (connected, or refused by a closed port), the undeclared sample must not.
UDP is left out: without an answering service, a UDP port that is open looks dropped."""
from __future__ import annotations

import pytest

from tests.postdeploy import fleet as F


def test_reachability(side, attempt):
    outcome = side.outcome(attempt)
    problem = F.reach_verdict(attempt, outcome, side.live_or_none(attempt.probe.dest),
                              side.live_or_none(attempt.probe.source.host))
    if problem:
        pytest.fail(problem, pytrace=False)
