"""Loading stacks by name from `stacks/Pulumi.<stack>.yaml` (the Pulumi stackConfigDir)."""
from __future__ import annotations

import os
import re
from pathlib import Path

from topology.errors import ConfigError, Problem
from topology.model import Stack
from topology.validate import build_stack
from topology.yamlfile import parse_yaml, read_stack_file

# The repo's stacks; ENCLAVE_STACKS_DIR points elsewhere (a user's own folder, tests).
STACKS_DIR = Path(os.environ.get("ENCLAVE_STACKS_DIR") or Path(__file__).resolve().parent.parent / "stacks")
STACK_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def stack_path(name: str, stacks_dir: Path = STACKS_DIR) -> Path:
    return stacks_dir / f"Pulumi.{name}.yaml"


def available_stacks(stacks_dir: Path = STACKS_DIR) -> list[str]:
    return sorted(p.name[len("Pulumi."):-len(".yaml")] for p in stacks_dir.glob("Pulumi.*.yaml"))


def load_stack(name: str, stacks_dir: Path = STACKS_DIR) -> Stack:
    """The validated stack `name`, or ConfigError listing every problem."""
    if not STACK_NAME.match(name):
        raise ConfigError([Problem("stack", f"'{name}' is not a stack name")])
    path = stack_path(name, stacks_dir)
    if not path.exists():
        known = ", ".join(available_stacks(stacks_dir)) or "none"
        raise ConfigError([Problem("stack", f"no stack file {path.name} in {stacks_dir} (stacks: {known})")])
    return build_stack(name, read_stack_file(path), source=path.name)


def load_stack_text(name: str, text: str, source: str = "stack") -> Stack:
    """The validated stack from YAML text (tests, generated variants)."""
    return build_stack(name, parse_yaml(text, source), source=source)
