"""Names the lab gives to what it makes: namespaces, fabric-side devices, the state folder.

Everything a stack's lab makes carries the prefix `enc-<stack>-`, so `up` after a crash and
`down` find the leftovers of the same stack by name (and nothing else).
"""
from __future__ import annotations

import os
from pathlib import Path

STATE_ROOT_ENV = "ENCLAVE_LAB_STATE"
DEFAULT_STATE_ROOT = Path("/run/enclave-lab")  # root-owned: sshd's StrictModes and keys want that
NETNS_ETC = Path("/etc/netns")


def prefix(stack: str) -> str:
    return f"enc-{stack}-"


def host_ns(stack: str, host: str) -> str:
    return f"{prefix(stack)}{host}"


def fabric_ns(stack: str) -> str:
    return f"{prefix(stack)}fabric"


def operator_ns(stack: str) -> str:
    return f"{prefix(stack)}operator"


def outsider_ns(stack: str, name: str) -> str:
    return f"{prefix(stack)}{name}"


def state_root() -> Path:
    return Path(os.environ.get(STATE_ROOT_ENV, str(DEFAULT_STATE_ROOT)))


def state_dir(stack: str) -> Path:
    return state_root() / stack


def fabric_dev(kind: str, index: int) -> str:
    """A fabric-side veth name (<= 15 chars): p<i> public, v<i> private, o<i> outsider."""
    name = f"{kind}{index}"
    assert len(name) <= 15
    return name
