"""`enclave rehearse` and `enclave lab up|check|down`: the lab's steps with their guarantees.

SIGINT/SIGTERM/SIGHUP become KeyboardInterrupt, so the `finally` that tears the lab down always
runs; `up` first removes what an earlier (crashed) run of the same stack left behind.
"""
from __future__ import annotations

import contextlib
import json
import signal
import sys
import time
from pathlib import Path
from typing import Iterator

from lab import postdeploy, report
from lab.lab import Lab
from topology.model import Stack


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """Turn termination signals into KeyboardInterrupt for the duration of the block."""
    def stop(signum, frame):
        raise KeyboardInterrupt(signal.Signals(signum).name)

    old = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def up(lab: Lab, phases: int = 2) -> None:
    lab.say(f"lab up: stack {lab.stack.name}, {len(lab.stack.hosts)} hosts")
    lab.up()
    lab.say(f"phase 1 done in {lab.info['timings']['phase1']:.1f}s: cloud-init firewall, files and daemons on every host")
    if phases >= 2:
        lab.say("phase 2: peer sync over SSH from the operator through the tunnel")
        lab.phase2()


def check(lab: Lab, run_postdeploy: bool = True, error: str | None = None) -> dict:
    lab.say("probing every flow ...")
    observations, results = lab.probe()
    post = {"status": "skipped"}
    if run_postdeploy:
        start = time.monotonic()
        post = postdeploy.run_suite(lab.plan.operator, lab.state)
        lab.timed("postdeploy", time.monotonic() - start)
    rep = report.build(lab.stack.name, lab.info, observations, results, post, error)
    print(report.table(observations), flush=True)
    for c in rep["checks"]:
        print(f"{'ok      ' if c['ok'] else 'FAILED  '}{c['check']}: {c['seen']}", flush=True)
    return rep


def rehearse(stack: Stack, keep: bool = False, report_path: Path | None = None, progress=_say) -> int:
    """up, phase 1, phase 2, probe, post-deploy suite, down; 0 when every flow is as intended."""
    lab = Lab(stack, progress=progress)
    started = time.monotonic()
    rep: dict | None = None
    error = None
    try:
        with interruptible():
            try:
                up(lab)
                rep = check(lab)
            except KeyboardInterrupt:
                error = "interrupted"
                raise
            except Exception as exc:  # reported, then torn down
                error = f"{type(exc).__name__}: {exc}"
            finally:
                if not keep:
                    t = time.monotonic()
                    lab.down(keep_state=False)
                    lab.timed("down", time.monotonic() - t)
                    progress(f"lab down: every namespace, process and file of {stack.name} removed")
                else:
                    progress(f"lab kept (--keep): state folder {lab.state}; remove with `enclave lab down --stack {stack.name}`")
    finally:
        lab.timed("total", time.monotonic() - started)
        if rep is None:
            rep = report.build(stack.name, lab.info, [], [], {"status": "not run"}, error or "no probes ran")
        else:
            rep["timings"] = lab.info["timings"]
        if report_path:
            report_path.write_text(json.dumps(rep, indent=2) + "\n")
        print(report.summary(rep), flush=True)
    return 0 if rep["result"] == "green" else 1
