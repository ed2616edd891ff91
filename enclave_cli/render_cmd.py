"""`enclave render --stack S --out DIR`: every host's artifacts and the inventory, byte-stable."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from artifacts import render_stack_files
from artifacts.output import write_tree
from topology.load import load_stack

NAME = "render"
HELP = "write each host's rules.v4, rules.v6, ipsets (and more) plus inventory.json for a stack"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stack", required=True, help="stack name: stacks/Pulumi.<stack>.yaml")
    parser.add_argument("--out", required=True, type=Path, help="output folder (replaced as a whole)")


def run(args: argparse.Namespace) -> int:
    stack = load_stack(args.stack)  # raises ConfigError before anything is written
    files = render_stack_files(stack)
    write_tree(args.out, files)
    print(f"rendered {len(stack.hosts)} hosts of stack {stack.name} into {args.out}", file=sys.stderr)
    return 0
