"""`enclave audit`: what a host's live rules allow that the policy does not, and the reverse."""
from __future__ import annotations

import argparse
import json
import shlex
import sys

from enclave_cli.inputs import read_text
from firewall.audit import AuditReport, audit_host, audit_message, host_step
from firewall.parse import detect_family
from firewall.ruleset import IPV6, ParseError
from firewall.verify import Difference, parse_host_rules
from topology.load import load_stack

NAME = "audit"
HELP = "semantic difference between a host's live iptables dump and the intended policy"
_EXAMPLES = 3  # example packets printed per deciding rule


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stack", required=True, help="stack name (stacks/Pulumi.<stack>.yaml)")
    parser.add_argument("--host", required=True, help="the host the dump comes from, e.g. mysql-1")
    parser.add_argument("--rules", required=True, metavar="FILE", help="live `iptables-save` output")
    parser.add_argument("--rules6", metavar="FILE", help="live `ip6tables-save` output (else IPv6 is not audited)")
    parser.add_argument("--ipsets", metavar="FILE", help="live `ipset save` output")
    parser.add_argument("--json", action="store_true", help="print a JSON object")


def run(args: argparse.Namespace) -> int:
    stack = load_stack(args.stack)
    try:
        if args.host not in {h.name for h in stack.hosts}:
            known = ", ".join(h.name for h in stack.hosts[:20])
            raise ValueError(f"no host {args.host!r} in stack {stack.name} (hosts: {known}"
                             f"{', ...' if len(stack.hosts) > 20 else ''})")
        v4 = read_text(args.rules)
        if detect_family(v4) == IPV6:
            raise ValueError(f"{args.rules} looks like ip6tables-save output: pass it as --rules6")
        v6 = read_text(args.rules6) if args.rules6 else None
        sets = read_text(args.ipsets) if args.ipsets else None
        live = parse_host_rules(f"live {args.host}", v4, v6, sets,
                                (args.rules, args.rules6 or "", args.ipsets or ""))
    except ParseError as error:
        print(f"enclave audit: cannot parse {error.source}:\n{error.report()}", file=sys.stderr)
        return 2
    except ValueError as error:
        print(f"enclave audit: {error}", file=sys.stderr)
        return 2
    report = audit_host(stack, args.host, live)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        _print(report, args)
    return 0 if report.same else 1


def _print(report: AuditReport, args: argparse.Namespace) -> None:
    print(f"enclave audit: stack {report.stack}, host {report.host}: {report.matrix_probes + report.derived_probes} "
          f"probes ({report.matrix_probes} from the intended matrix, {report.derived_probes} derived from the rules)")
    for title, found in (("allows but should not", report.allows),
                         ("should allow but does not", report.denies),
                         ("cannot tell (UNKNOWN)", report.unknown)):
        if not found:
            continue
        print(f"{title} ({len(found)}):")
        groups: dict[str, list[Difference]] = {}
        for difference in found:
            groups.setdefault(host_step(difference, report.host).decided_by(), []).append(difference)
        for decided_by, members in groups.items():
            for difference in members[:_EXAMPLES]:
                print(f"  {audit_message(difference)}")
                print(f"    {_evaluate_command(difference, report.host, args)}")
            if len(members) > _EXAMPLES:
                print(f"  ... and {len(members) - _EXAMPLES} more packets decided by {decided_by}")
    for note in report.notes:
        print(f"note: {note}")
    print("SAME as the intended policy" if report.same else f"DIFFERENT: {len(report.differences)} packets")


def _evaluate_command(difference: Difference, host: str, args: argparse.Namespace) -> str:
    step = host_step(difference, host)
    rules = args.rules6 if step.packet.family == IPV6 else args.rules
    words = ["enclave", "evaluate", "--rules", rules]
    if args.ipsets:
        words += ["--ipsets", args.ipsets]
    if (step.table, step.chain) != ("filter", "INPUT"):
        words += ["--table", step.table, "--chain", step.chain]
    words += ["--packet", str(step.packet)]
    return " ".join(shlex.quote(w) for w in words)
