"""`enclave lab up|check|down --stack S`: the rehearsal's steps one at a time.

up: network, phase 1 and (unless --phase 1) phase 2; prints the state folder with inventory.json
and ssh_config. check: probe every flow, the lab checks and the post-deploy suite. down: remove
every namespace, process and file the stack's lab made (also leftovers of a crashed run).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from lab import rehearse as steps
from lab import report
from lab.lab import Lab
from lab.lab_cmd_support import require_root
from topology.load import load_stack

NAME = "lab"
HELP = "the rehearsal lab step by step: up | check | down"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("up", "check", "down"))
    parser.add_argument("--stack", required=True)
    parser.add_argument("--phase", type=int, choices=(1, 2), default=2, help="up: stop after phase 1 or 2 (default)")
    parser.add_argument("--report", type=Path, help="check: write the JSON report here")
    parser.add_argument("--no-postdeploy", action="store_true", help="check: skip the post-deploy suite")


def run(args: argparse.Namespace) -> int:
    problem = require_root()
    if problem:
        print(f"enclave lab: {problem}")
        return 2
    lab = Lab(load_stack(args.stack))
    if args.action == "down":
        gone = lab.down()
        print(f"lab down: removed {len(gone)} namespaces of {args.stack}")
        return 0
    if args.action == "up":
        try:
            with steps.interruptible():
                steps.up(lab, args.phase)
        except BaseException:
            lab.down()
            lab.say("lab up failed: everything it made was removed")
            raise
        print(f"lab up: stack {args.stack} at phase {args.phase}; state folder {lab.state} "
              f"(inventory.json, ssh_config)")
        return 0
    if not lab.load() or lab.info.get("phase", 0) < 1:
        print(f"enclave lab check: no lab for {args.stack} is up (enclave lab up --stack {args.stack})")
        return 2
    rep = steps.check(lab, run_postdeploy=not args.no_postdeploy)
    if args.report:
        args.report.write_text(json.dumps(rep, indent=2) + "\n")
    print(report.summary(rep))
    return 0 if rep["result"] == "green" else 1
