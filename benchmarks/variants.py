"""Scaled variants of the wordpress stack for benchmarks: N hosts in all, mostly web servers."""
from __future__ import annotations

import copy

import yaml

from topology.load import stack_path
from topology.model import Stack
from topology.validate import build_stack


def wordpress_variant(total_hosts: int) -> Stack:
    """The wordpress stack grown to `total_hosts` (tunnel, lb, 2 mysql, the rest wordpress)."""
    doc = copy.deepcopy(yaml.safe_load(stack_path("wordpress").read_text()))
    config = doc["config"]
    config["enclave:roles"]["wordpress"]["count"] = max(1, total_hosts - 4)
    config["enclave:vpc_cidr"] = "10.10.0.0/16"
    config["enclave:plan_public_cidr"] = "198.18.0.0/15"
    return build_stack(f"wordpress-{total_hosts}", doc)
