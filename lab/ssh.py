"""The operator's SSH: the lab client key, known_hosts, and the stack's generated ssh_config.

`ssh_config` comes from topology.ssh_config with only the lab's IdentityFile, known_hosts
(accept-new) and batch options added: the very ProxyJump path a real deploy uses.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from lab.system import LabError, run
from topology.inventory import inventory
from topology.model import Stack
from topology.ssh_config import ssh_config

KEY = "id_ed25519"
OPTIONS = {"BatchMode": "yes", "ConnectTimeout": "5", "LogLevel": "ERROR", "ServerAliveInterval": "5"}


def client_key(state: Path) -> Path:
    """The lab's client key pair (made once per lab); returns the public key's path."""
    key = state / KEY
    if not key.exists():
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "operator@enclave-lab", "-f", str(key)])
    return key.with_suffix(".pub")


def write_access_files(stack: Stack, state: Path) -> tuple[Path, Path]:
    """inventory.json and ssh_config in the state folder, as a real deploy exports them."""
    inv = inventory(stack)
    inv_path = state / "inventory.json"
    inv_path.write_text(json.dumps(inv, indent=2) + "\n")
    cfg = ssh_config(stack, inv, identity_file=str(state / KEY), known_hosts_file=str(state / "known_hosts"),
                     extra_options=OPTIONS)
    cfg_path = state / "ssh_config"
    cfg_path.write_text(cfg)
    os.chmod(cfg_path, 0o600)
    return inv_path, cfg_path


def ssh(operator_ns: str, state: Path, host: str, command: str, stdin: bytes | None = None,
        timeout: float = 60) -> subprocess.CompletedProcess:
    """Run `command` on `host` from the operator namespace through the generated ssh_config."""
    argv = ["ip", "netns", "exec", operator_ns, "ssh", "-F", str(state / "ssh_config"), host, command]
    done = subprocess.run(argv, input=stdin, capture_output=True, timeout=timeout)
    return done


def check(done: subprocess.CompletedProcess, what: str) -> str:
    if done.returncode != 0:
        err = (done.stderr or b"").decode(errors="replace").strip()
        raise LabError(f"{what}: exit {done.returncode}: {err[-600:]}")
    return (done.stdout or b"").decode(errors="replace") + (done.stderr or b"").decode(errors="replace")
