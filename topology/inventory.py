"""The inventory: which hosts exist and how to reach them, in the shape every tool reads.

`{"stack": ..., "tunnel": ..., "hosts": [{"name", "role", "private_ip", "public_ip"}]}` is written
by `enclave render`, by the lab, and exported by the Pulumi program (with real addresses).
"""
from __future__ import annotations

import json
from typing import Mapping

from topology.model import Stack


def inventory(stack: Stack, addresses: Mapping[str, tuple[str, str | None]] | None = None) -> dict:
    """Host name -> (private_ip, public_ip) overrides the plan where given (a real deploy)."""
    given = addresses or {}
    hosts = []
    for h in stack.hosts:
        private_ip, public_ip = given.get(h.name, (h.private_ip, h.public_ip))
        hosts.append({"name": h.name, "role": h.role, "private_ip": private_ip, "public_ip": public_ip})
    return {"stack": stack.name, "tunnel": stack.tunnel.name, "hosts": hosts}


def inventory_json(stack: Stack, addresses: Mapping[str, tuple[str, str | None]] | None = None) -> str:
    return json.dumps(inventory(stack, addresses), indent=2) + "\n"
