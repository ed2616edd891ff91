"""`enclave rehearse --stack S [--keep] [--report FILE]`: the stack in local network namespaces.

Runs lab up (phase 1: cloud-init's firewall, files and daemons), phase 2 (peer sync over SSH
through the tunnel), probes every flow against the intended matrix, runs the post-deploy suite,
and tears the lab down. Exit 0 when everything is as intended, 1 naming every mismatch.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from lab.lab_cmd_support import require_root
from lab.rehearse import rehearse
from topology.load import load_stack

NAME = "rehearse"
HELP = "rehearse a stack in local network namespaces: real rules, real daemons, real peer sync, every flow probed"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stack", required=True, help="stack name: stacks/Pulumi.<stack>.yaml")
    parser.add_argument("--keep", action="store_true", help="leave the lab running afterwards (enclave lab down removes it)")
    parser.add_argument("--report", type=Path, help="write the JSON report here")


def run(args: argparse.Namespace) -> int:
    problem = require_root()
    if problem:
        print(f"enclave rehearse: {problem}")
        return 2
    return rehearse(load_stack(args.stack), keep=args.keep, report_path=args.report)
