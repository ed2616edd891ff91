"""`enclave ssh-config --stack S`: the ssh_config for the stack's address plan."""
from __future__ import annotations

import argparse

from topology.inventory import inventory
from topology.load import load_stack
from topology.ssh_config import ssh_config

NAME = "ssh-config"
HELP = "print an OpenSSH config reaching every host of a stack through its tunnel (address plan)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stack", required=True)
    parser.add_argument("--user", default="root")
    parser.add_argument("--identity-file")


def run(args: argparse.Namespace) -> int:
    stack = load_stack(args.stack)
    print(ssh_config(stack, inventory(stack), user=args.user, identity_file=args.identity_file), end="")
    return 0
