"""The hook to the post-deploy testinfra suite: run it against the lab from the operator namespace,
pointed at the lab's inventory.json and ssh_config exactly as at a real deploy."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

SUITE = Path(__file__).resolve().parent.parent / "tests" / "postdeploy"


def present(suite: Path = SUITE) -> bool:
    return suite.is_dir() and any(suite.glob("test_*.py"))


def run_suite(operator_ns: str, state: Path, suite: Path = SUITE, timeout: float = 600) -> dict:
    """{"status": passed|failed|not present, "seconds", "output"}."""
    if not present(suite):
        return {"status": "not present", "detail": f"no test_*.py in {suite}"}
    argv = ["ip", "netns", "exec", operator_ns, sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
            str(suite), "--inventory", str(state / "inventory.json"), "--ssh-config", str(state / "ssh_config")]
    start = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=suite.parent.parent)
    return {"status": "passed" if done.returncode == 0 else "failed", "seconds": round(time.monotonic() - start, 2),
            "output": _clip(done.stdout + done.stderr)}


def _clip(text: str, keep: int = 3000) -> str:
    """The first and last `keep` characters (the first error and pytest's summary)."""
    return text if len(text) <= 2 * keep else text[:keep] + "\n[...]\n" + text[-keep:]
