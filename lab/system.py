"""Thin adapters to the system: run commands, run them inside a lab namespace, kill processes."""
from __future__ import annotations

import os
import signal
import subprocess
import time


class LabError(RuntimeError):
    """A lab step failed (names the step and the command's error)."""


def run(argv: list[str], stdin: str | None = None, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    done = subprocess.run(argv, input=stdin, text=True, capture_output=True, timeout=timeout)
    if check and done.returncode != 0:
        raise LabError(f"{' '.join(argv[:6])}{' ...' if len(argv) > 6 else ''} failed ({done.returncode}): "
                       f"{(done.stderr or done.stdout).strip()[-800:]}")
    return done


def run_in(ns: str, argv: list[str], stdin: str | None = None, check: bool = True, timeout: float = 60):
    return run(["ip", "netns", "exec", ns, *argv], stdin, check, timeout)


def ip_batch(ns: str | None, commands: list[str]) -> None:
    """Many `ip` commands in one process (`ip -batch`), inside `ns` when given."""
    if not commands:
        return
    argv = ["ip"] + (["-n", ns] if ns else []) + ["-batch", "-"]
    run(argv, stdin="\n".join(commands) + "\n")


def list_netns() -> list[str]:
    done = run(["ip", "netns", "list"], check=False)
    return [line.split()[0] for line in done.stdout.splitlines() if line.strip()]


def netns_pids(ns: str) -> list[int]:
    done = run(["ip", "netns", "pids", ns], check=False)
    return [int(p) for p in done.stdout.split() if p.isdigit()]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours counts as gone
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def kill_pids(pids: list[int], grace: float = 1.5) -> None:
    """SIGTERM each pid, SIGKILL what is still alive after `grace` seconds."""
    pids = [p for p in set(pids) if p > 1 and p != os.getpid()]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.05)
    for pid in pids:
        if alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
    for pid in pids:  # reap our own children
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass


def listening(pid: int, proto: str, port: int) -> bool:
    """Does the namespace of `pid` have a socket listening on `port` (read via /proc/<pid>/net)?"""
    files = ("tcp", "tcp6") if proto == "tcp" else ("udp", "udp6")
    want = f":{port:04X}"
    for name in files:
        try:
            with open(f"/proc/{pid}/net/{name}") as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if parts[1].endswith(want) and (proto == "udp" or parts[3] == "0A"):
                        return True
        except (OSError, StopIteration):
            continue
    return False
