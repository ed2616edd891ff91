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
    probe = f"enc-labprobe-{os.getpid()}"
    done = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if done.returncode != 0:
        return f"`ip netns add` does not work: {done.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


@pytest.fixture(scope="session")
def lab_ready() -> None:
    problem = lab_problem()
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(f"lab test cannot run under CI=true: {problem}")
        pytest.skip(problem)
