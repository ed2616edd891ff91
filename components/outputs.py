"""Stack outputs from real addresses (pure): per-host roles and addresses, inventory, ssh_config.

The inventory has exactly the shape `enclave render` writes (tests/postdeploy read either), and
the ssh_config is `topology.ssh_config` fed with the real addresses. In managed load balancer
mode the LB role has no droplet, so its planned hosts are left out of both.
"""
from __future__ import annotations

from typing import Mapping

from components import plan
from topology.inventory import inventory
from topology.model import Stack
from topology.ssh_config import ssh_config


def deployed_inventory(stack: Stack, addresses: Mapping[str, tuple[str, str | None]]) -> dict:
    real = set(plan.droplet_hosts(stack))
    data = inventory(stack, addresses)
    return {**data, "hosts": [h for h in data["hosts"] if h["name"] in real]}


def hosts_output(inv: dict) -> dict[str, dict]:
    return {h["name"]: {"role": h["role"], "private_ip": h["private_ip"], "public_ip": h["public_ip"]} for h in inv["hosts"]}


def ssh_config_output(stack: Stack, inv: dict) -> str:
    return ssh_config(stack, inv)
