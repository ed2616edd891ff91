"""What every enclave droplet shares: its planned settings, its phase-1 user_data, its creation.

Used by TunnelHost, RoleGroup and the haproxy LoadBalancer, so that all droplets are built the
same way: in the VPC, with the stack's SSH keys and tags, and with `user_data` ignored after
creation. Changing user_data would replace the droplet (decision 2); policy changes reach a
running droplet through PeerSync instead, so a later render must never replace it.
"""
from __future__ import annotations

import hashlib
import re
import string
from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_digitalocean as do

from cloudinit import render
from cloudinit.secrets import Secrets
from components import plan
from topology.errors import ConfigError, Problem
from topology.model import Stack

SIZE_SLUG = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)+$")
USER_DATA_LIMIT = 64 * 1024
# the size check renders with the widest values, so the real render can never be larger:
WIDEST_IPV4 = "255.255.255.255"


def _incompressible(length: int, salt: str) -> str:
    """Random-looking alphanumerics: user_data may be gzipped, so 'xxxx' would under-measure."""
    alphabet = string.ascii_letters + string.digits
    stream = b"".join(hashlib.sha256(f"{salt}{i}".encode()).digest() for i in range(length // 32 + 1))
    return "".join(alphabet[b % len(alphabet)] for b in stream[:length])


WIDEST_SECRETS = Secrets(_incompressible(128, "db"), _incompressible(128, "replication"))  # Passwords: <= 128


@dataclass(frozen=True)
class DropletPlan:
    """One droplet's settings, from the model (pure)."""

    host: str
    role: str
    name: str
    image: str
    size: str
    region: str
    tags: tuple[str, ...]
    public: bool
    ipv6: bool


def plan_droplet(stack: Stack, host_name: str) -> DropletPlan:
    host = stack.host(host_name)
    role = stack.role(host.role)
    public = not role.private_only
    return DropletPlan(
        host=host.name,
        role=role.name,
        name=plan.resource_name(stack, host.name),
        image=stack.image,
        size=role.size,
        region=stack.region,
        tags=(plan.stack_tag(stack), plan.role_tag(stack, role.name)),
        public=public,
        ipv6=stack.ipv6 and public,
    )


def check_droplets(stack: Stack, hosts: tuple[str, ...], *, behind_tunnel: bool) -> None:
    """Size slugs well formed and every user_data within 64 KiB, before any droplet is created.

    Rendered with the longest passwords and tunnel address possible, so the real render (inside
    an apply, once the passwords and the tunnel exist) cannot be larger.
    """
    problems: list[Problem] = []
    for name in hosts:
        spec = plan_droplet(stack, name)
        if not SIZE_SLUG.match(spec.size):
            problems.append(Problem(f"enclave:roles.{spec.role}.size", f"'{spec.size}' is not a droplet size slug like s-1vcpu-1gb"))
        try:
            text = render.user_data(stack, name, tunnel_private_ip=WIDEST_IPV4 if behind_tunnel else None,
                                    secrets=WIDEST_SECRETS)
        except ConfigError as error:
            problems.extend(error.problems)
            continue
        if len(text.encode()) > USER_DATA_LIMIT:
            problems.append(Problem(f"enclave:roles.{spec.role}", f"user_data of {name} is {len(text.encode())} bytes; DigitalOcean takes {USER_DATA_LIMIT}"))
    if problems:
        raise ConfigError(problems)


def user_data(stack: Stack, host: str, tunnel_private_ip: Optional[pulumi.Input[str]],
              secrets: pulumi.Output[Secrets]) -> pulumi.Output[str]:
    """The host's phase-1 cloud-config, secret: it holds the database passwords."""
    rendered = pulumi.Output.all(tunnel_private_ip, secrets).apply(
        lambda values: render.user_data(stack, host, tunnel_private_ip=values[0], secrets=values[1])
    )
    return pulumi.Output.secret(rendered)


@dataclass(frozen=True)
class DropletInputs:
    """What a droplet takes from the rest of the stack (Outputs of other components)."""

    vpc_id: pulumi.Input[str]
    ssh_keys: pulumi.Input[list[str]]
    tags: dict[str, pulumi.Input[str]]  # tag name -> the Tag resource's name output
    secrets: pulumi.Output[Secrets]


def create_droplet(stack: Stack, host: str, inputs: DropletInputs, *, tunnel_private_ip,
                   parent: pulumi.Resource, depends_on: list[pulumi.Resource] | None = None) -> do.Droplet:
    spec = plan_droplet(stack, host)
    return do.Droplet(
        spec.host,
        name=spec.name,
        image=spec.image,
        size=spec.size,
        region=spec.region,
        vpc_uuid=inputs.vpc_id,
        ssh_keys=inputs.ssh_keys,
        tags=[inputs.tags[t] for t in spec.tags],
        ipv6=spec.ipv6,
        public_networking=spec.public,
        monitoring=True,
        graceful_shutdown=True,
        user_data=user_data(stack, host, tunnel_private_ip, inputs.secrets),
        opts=pulumi.ResourceOptions(parent=parent, depends_on=depends_on or [], ignore_changes=["user_data"]),
    )


def addresses(droplets: dict[str, do.Droplet]) -> pulumi.Output[dict[str, tuple[str, str | None]]]:
    """Host name -> (private IPv4, public IPv4 or None), as DigitalOcean assigned them."""
    names = list(droplets)
    pairs = [pulumi.Output.all(d.ipv4_address_private, d.ipv4_address) for d in droplets.values()]
    return pulumi.Output.all(*pairs).apply(
        lambda values: {n: (v[0], v[1] or None) for n, v in zip(names, values)}
    )
