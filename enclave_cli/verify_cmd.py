"""`enclave verify`: prove a stack's generated rules do what the model intends, or show how not."""
from __future__ import annotations

import argparse
import json

from firewall.ruleset import ParseError
from firewall.verify import verify_stack
from topology.load import load_stack

NAME = "verify"
HELP = "static proof: generated rules vs the intended matrix, anti-lockout, shadowed rules"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stack", required=True, help="stack name (stacks/Pulumi.<stack>.yaml)")
    parser.add_argument("--json", action="store_true", help="print a JSON object")
    parser.add_argument("--strict", action="store_true",
                        help="shadowed/redundant rules fail verification too")
    parser.add_argument("--sources", choices=("auto", "all", "roles"), default="auto",
                        help="every host as a source (all), one per role (roles), or roles "
                             "above 60 hosts (auto, the default)")
    parser.add_argument("--limit", type=int, default=50, metavar="N",
                        help="differences printed in text output (default 50; --json has all)")


def run(args: argparse.Namespace) -> int:
    stack = load_stack(args.stack)
    representatives = {"auto": None, "all": False, "roles": True}[args.sources]
    try:
        report = verify_stack(stack, representatives)
    except ParseError as error:  # the compiler wrote something the parser rejects: a bug, say so
        print(f"enclave verify: generated rules do not parse:\n{error.report()}")
        return 1
    if args.json:
        print(json.dumps(report.as_dict(args.strict), indent=2))
        return 0 if report.ok(args.strict) else 1
    sources = "one host per role as source" if report.representatives else "every host as source"
    print(f"enclave verify: stack {report.stack}, {report.hosts} hosts, {report.probes} probes "
          f"({sources}), {report.seconds:.2f} s")
    if report.differences:
        print(f"differences from the intended matrix ({len(report.differences)}):")
        for difference in report.differences[:args.limit]:
            print(f"  {difference.message()}")
        if len(report.differences) > args.limit:
            print(f"  ... and {len(report.differences) - args.limit} more (--json lists all)")
    else:
        print("matrix: every probe matches the intent")
    failures = report.lockout_failures
    if failures:
        print(f"anti-lockout FAILS ({len(failures)} of {len(report.lockout)} checks):")
        for check in failures[:args.limit]:
            print(f"  {check.message()}")
    else:
        print(f"anti-lockout: proven for phases 1 and 2 ({len(report.lockout)} checks)")
    for group in report.findings:
        for finding in group.findings:
            level = "error" if args.strict else "warning"
            print(f"{level}: {group.label} ({group.hosts[0]} and {len(group.hosts) - 1} more): "
                  f"{finding.family} {finding.describe()}")
    ok = report.ok(args.strict)
    print("OK" if ok else "FAILED")
    return 0 if ok else 1
