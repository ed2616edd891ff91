"""`enclave evaluate`: the verdict of an iptables-save ruleset for one packet, without a kernel."""
from __future__ import annotations

import argparse
import json
import sys

from enclave_cli.inputs import read_text
from firewall.evaluate import UNKNOWN, compile_ruleset
from firewall.ipsets import parse_ipsets
from firewall.packet import PacketError, parse_packet
from firewall.parse import extract_rules_text, parse_ruleset
from firewall.ruleset import ParseError

NAME = "evaluate"
HELP = "verdict of an iptables-save ruleset for one packet (static, no kernel)"
_MAX_PROBLEMS = 20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rules", required=True, metavar="FILE",
                        help="iptables-save or ip6tables-save output")
    parser.add_argument("--ipsets", metavar="FILE", help="`ipset save` output for -m set rules")
    parser.add_argument("--table", default="filter", help="table to evaluate (default filter)")
    parser.add_argument("--chain", default="INPUT", help="built-in chain the packet enters")
    parser.add_argument("--packet", required=True, metavar="SPEC",
                        help='e.g. "proto=tcp src=10.0.0.2 dst=10.0.0.1 dport=22 in=eth1 state=NEW"')
    parser.add_argument("--family", choices=("ipv4", "ipv6"),
                        help="ruleset family (default: detected from the file)")
    parser.add_argument("--extract", action="store_true",
                        help="the rules file is a document (guide, web page): use only its "
                             "iptables-save lines")
    parser.add_argument("--json", action="store_true", help="print a JSON object")


def run(args: argparse.Namespace) -> int:
    try:
        packet = parse_packet(args.packet)
        text = read_text(args.rules)
        ruleset = parse_ruleset(extract_rules_text(text) if args.extract else text,
                                family=args.family, source=args.rules)
        ipsets = parse_ipsets(read_text(args.ipsets), source=args.ipsets) if args.ipsets else None
        if not ruleset.has_table(args.table):
            raise ValueError(f"{args.rules} has no table {args.table!r}")
        verdict = compile_ruleset(ruleset, ipsets, table=args.table).verdict(packet, args.chain)
    except ParseError as error:
        print(f"enclave evaluate: cannot parse {error.source}:", file=sys.stderr)
        lines = error.report().splitlines()
        for line in lines[:_MAX_PROBLEMS]:
            print(line, file=sys.stderr)
        if len(lines) > _MAX_PROBLEMS:
            print(f"... and {len(lines) - _MAX_PROBLEMS} more; for a document with an embedded "
                  "dump, use --extract", file=sys.stderr)
        return 2
    except PacketError as error:
        print(f"enclave evaluate: --packet: {error}", file=sys.stderr)
        return 2
    except (OSError, ValueError, KeyError) as error:
        print(f"enclave evaluate: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"packet": str(packet), "chain": args.chain, "table": args.table,
                          **verdict.as_dict()}, indent=2))
        return 0
    print(f"{verdict.verdict}: {verdict.reason}")
    print(f"packet: {packet} entering {args.table}/{args.chain}")
    if verdict.reject_with:
        print(f"reject with: {verdict.reject_with}")
    for ref in verdict.trace:
        print(f"  matched {ref}")
    if verdict.verdict == UNKNOWN:
        print("not understood / not known, and could decide the verdict:")
        for item in verdict.unknown:
            print(f"  {item}")
    for note in verdict.notes:
        print(f"note: {note}")
    return 0
