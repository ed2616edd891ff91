"""Entry point of `enclave`: a registry of sub-commands, each a small module.

Each command module exposes `NAME`, `HELP`, `add_arguments(parser)` and `run(args) -> int`.
User errors are reported as `enclave:<path>: message` lines and exit code 2, never a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from topology.errors import ConfigError

# Registry of sub-command modules (module path under enclave_cli); order is the help order.
COMMAND_MODULES = (
    "enclave_cli.render_cmd",
    "enclave_cli.ssh_config_cmd",
    "enclave_cli.evaluate_cmd",
    "enclave_cli.verify_cmd",
    "enclave_cli.audit_cmd",
    "enclave_cli.rehearse_cmd",
    "enclave_cli.lab_cmd",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="enclave", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for module_name in COMMAND_MODULES:
        module = importlib.import_module(module_name)
        command = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(command)
        command.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args._run(args)
    except ConfigError as error:
        print(error.report(), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("enclave: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
