"""Lab tests need root and network namespaces. CI has both: there they fail, never skip."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest


def lab_problem() -> str | None:
    """Why lab tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "lab tests need root"
    for tool in ("ip", "iptables-restore", "ip6tables-restore", "ipset"):
        if shutil.which(tool) is None:
            return f"lab tests need {tool} (scripts/setup.sh installs it)"
    probe = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"ip netns does not work: {probe.stderr.strip()}"
    return None


@pytest.fixture(scope="session")
def lab_ready() -> None:
    problem = lab_problem()
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(f"lab test cannot run under CI=true: {problem}")
        pytest.skip(problem)
