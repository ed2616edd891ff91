"""Runs enclave's Pulumi program for a stack under `EnclaveMocks` and keeps what it registered.

The config is handed over as the Pulumi CLI does (full keys, objects as JSON text, scalars as
text) through `pulumi.runtime.set_all_config`, and read back by the program's own reader.
"""
from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml

from components import program
from components.config import runtime_config_values
from tests.pulumi.enclave_mocks import EnclaveMocks, RecordingMonitor, Registered
from topology.load import STACKS_DIR, available_stacks
from topology.model import Stack

STACKS = available_stacks()


def stack_file_config(name: str, stacks_dir: Path = STACKS_DIR) -> dict[str, Any]:
    return yaml.safe_load((stacks_dir / f"Pulumi.{name}.yaml").read_text())["config"]


def as_pulumi_config(config: dict[str, Any]) -> dict[str, str]:
    """Config values the way the CLI passes them to a program: every value a string."""
    out = {}
    for key, value in config.items():
        if isinstance(value, (dict, list)):
            out[key] = json.dumps(value)
        elif isinstance(value, bool):
            out[key] = "true" if value else "false"
        else:
            out[key] = str(value)
    return out


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@dataclass
class Deployment:
    stack: Stack
    resources: list[Registered]
    outputs: dict[str, Any]
    secret: dict[str, bool] = field(default_factory=dict)  # name -> was the Output secret

    ignored: dict[str, list[str]] = field(default_factory=dict)  # resource name -> ignoreChanges

    @property
    def hashes(self) -> dict[str, str]:
        """Host -> peer sync payload hash, as the program computed it."""
        return {k.split(":", 1)[1]: v for k, v in self.outputs.items() if k.startswith("hash:")}

    def ignore_changes(self, typ: str) -> list[str]:
        return [p for r in self.of_type(typ) for p in self.ignored.get(f"{typ}::{r.name}", [])]

    def of_type(self, typ: str) -> list[Registered]:
        return [r for r in self.resources if r.typ == typ]

    def named(self, typ: str, name: str) -> Registered:
        (found,) = [r for r in self.of_type(typ) if r.name == name]
        return found

    def counts(self) -> Counter:
        return Counter(r.typ.rsplit(":", 1)[-1] for r in self.resources)


def start(stack_name: str, config: dict[str, Any]) -> tuple[EnclaveMocks, _Capture]:
    vpc = config.get("enclave:vpc_cidr", "10.0.0.0/24")
    mocks = EnclaveMocks(vpc_cidr=vpc if isinstance(vpc, str) else "10.0.0.0/24")
    logger = logging.getLogger(f"enclave-test-{stack_name}")
    capture = _Capture()
    logger.handlers = [capture]
    logger.propagate = False
    pulumi.runtime.set_mocks(mocks, project="enclave", stack=stack_name, preview=False, logger=logger,
                             monitor=RecordingMonitor(mocks))
    pulumi.runtime.set_all_config(as_pulumi_config(config))
    return mocks, capture


def deploy(stack_name: str, config: dict[str, Any] | None = None) -> Deployment:
    """Build the stack's program under the mocks; resolve its outputs and secret flags."""
    config = stack_file_config(stack_name) if config is None else config
    mocks, _ = start(stack_name, config)
    result: dict[str, Any] = {}
    secret: dict[str, bool] = {}
    box: dict[str, Stack] = {}

    @pulumi.runtime.test
    def run():
        stack = program.load(stack_name, runtime_config_values())
        box["stack"] = stack
        fleet = program.build(stack)
        watched = {
            "db_password": fleet.passwords.db_password,
            "replication_password": fleet.passwords.replication_password,
            **{f"user_data:{h}": d.user_data for h, d in fleet.droplets.items()},
            **{f"hash:{h}": v for h, v in fleet.peer_sync.hashes.items()},
        }
        keys = list(fleet.outputs) + list(watched)
        values = [fleet.outputs[k] for k in fleet.outputs] + list(watched.values())
        flags = [pulumi.Output.from_input(v).is_secret() for v in values]

        async def gather():
            for k, f in zip(keys, flags):
                secret[k] = await f
        import asyncio
        return pulumi.Output.all(*values, pulumi.Output.from_input(asyncio.ensure_future(gather()))).apply(
            lambda vs: result.update(zip(keys, vs)))

    run()
    return Deployment(box["stack"], list(mocks.resources), result, secret, dict(mocks.ignored))
