"""The hook to the post-deploy testinfra suite: run it against the lab from the operator namespace,
pointed at the lab's inventory.json and ssh_config exactly as at a real deploy."""
from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

SUITE = Path(__file__).resolve().parent.parent / "tests" / "postdeploy"
_COUNT = re.compile(r"(\d+) (passed|failed|errors?|skipped|deselected|xfailed|xpassed)\b")


def present(suite: Path = SUITE) -> bool:
    return suite.is_dir() and any(suite.glob("test_*.py"))


def suite_argv(operator_ns: str, state: Path, suite: Path = SUITE, extra: tuple[str, ...] = ()) -> list[str]:
    """The pytest command line, run in the operator namespace (the lab's admin address)."""
    return ["ip", "netns", "exec", operator_ns, sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
            str(suite), "--inventory", str(state / "inventory.json"), "--ssh-config", str(state / "ssh_config"),
            *extra]


def counts(output: str) -> dict[str, int]:
    """pytest's final summary line -> {"passed": n, "failed": n, ...} (errors counted as "error")."""
    lines = [line for line in output.splitlines() if _COUNT.search(line) and " in " in line]
    if not lines:
        return {}
    return {kind.rstrip("s") if kind.startswith("error") else kind: int(n) for n, kind in _COUNT.findall(lines[-1])}


def run_suite(operator_ns: str, state: Path, suite: Path = SUITE, timeout: float = 600) -> dict:
    """{"status": passed|failed|not present, "seconds", "counts", "output"}."""
    if not present(suite):
        return {"status": "not present", "detail": f"no test_*.py in {suite}"}
    start = time.monotonic()
    done = subprocess.run(suite_argv(operator_ns, state, suite), capture_output=True, text=True, timeout=timeout,
                          cwd=suite.parent.parent)
    output = done.stdout + done.stderr
    return {"status": "passed" if done.returncode == 0 else "failed", "seconds": round(time.monotonic() - start, 2),
            "counts": counts(output), "output": output[-4000:]}
