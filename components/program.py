"""The Pulumi program: stack config -> validated topology -> components -> stack outputs.

`__main__.py` only calls `main()`. Config problems are reported as `pulumi.log.error` lines,
one `<config key>: message` each, and the run fails through `pulumi.RunError`, which the Python
language host reports without a traceback.
"""
from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_digitalocean import Droplet

from components import plan
from components.cloud_firewall import CloudFirewall, CloudFirewallArgs
from components.config import runtime_config_values, stack_config
from components.droplets import DropletInputs
from components.droplets import addresses as droplet_addresses
from components.load_balancer import LoadBalancer, LoadBalancerArgs
from components.network import PrivateNetwork, PrivateNetworkArgs
from components.outputs import deployed_inventory, hosts_output, ssh_config_output
from components.passwords import Passwords
from components.peer_sync import PeerSync, PeerSyncArgs
from components.role_group import RoleGroup, RoleGroupArgs
from components.tunnel import TunnelHost, TunnelHostArgs
from topology.errors import ConfigError
from topology.model import Stack
from topology.validate import build_stack_from_config


def load(stack_name: str, values: dict) -> Stack:
    """The validated model, and every plan checked, before any resource exists."""
    stack = build_stack_from_config(stack_name, stack_config(values))
    plan.plan_cloud_firewalls(stack)
    plan.plan_managed_lb(stack)
    return stack


@dataclass(frozen=True)
class Fleet:
    """The components of one stack and its outputs (what `pulumi stack output` shows)."""

    network: PrivateNetwork
    passwords: Passwords
    tunnel: TunnelHost
    groups: dict[str, RoleGroup]
    load_balancer: LoadBalancer | None
    cloud_firewall: CloudFirewall
    peer_sync: PeerSync
    droplets: dict[str, Droplet]
    outputs: dict[str, pulumi.Input]


def build(stack: Stack) -> Fleet:
    """Every component of the stack, in dependency order."""
    tags = (plan.stack_tag(stack),) + tuple(plan.role_tag(stack, r.name) for r in stack.roles)
    network = PrivateNetwork("network", PrivateNetworkArgs(
        name=plan.resource_name(stack), region=stack.region, ip_range=stack.vpc_cidr,
        tags=tags, ssh_public_keys=stack.ssh_public_keys))
    passwords = Passwords("passwords")
    inputs = DropletInputs(vpc_id=network.vpc_id, ssh_keys=network.ssh_key_fingerprints,
                           tags=network.tag_names, secrets=passwords.secrets)

    tunnel = TunnelHost("tunnel", TunnelHostArgs(stack, inputs))
    groups = {role: RoleGroup(role, RoleGroupArgs(stack, role, inputs, tunnel.private_ip, tunnel.droplet))
              for role in plan.group_roles(stack)}
    lb = None
    if plan.has_load_balancer(stack):
        lb = LoadBalancer("load-balancer", LoadBalancerArgs(stack, inputs, tunnel.private_ip, tunnel.droplet))
    firewall = CloudFirewall("cloud-firewall", CloudFirewallArgs(plan.plan_cloud_firewalls(stack), network.tag_names,
                                                                 lb.lb_id if lb else None))

    droplets = {tunnel.host: tunnel.droplet, **(lb.droplets if lb else {})}
    for group in groups.values():
        droplets.update(group.droplets)
    droplets = {h: droplets[h] for h in plan.droplet_hosts(stack)}  # plan order
    addresses = droplet_addresses(droplets)
    sync = PeerSync("peer-sync", PeerSyncArgs(stack, droplets, addresses, tunnel.public_ip, passwords.secrets))

    inventory = addresses.apply(lambda a: deployed_inventory(stack, a))
    outputs = {
        "hosts": inventory.apply(hosts_output),
        "inventory": inventory,
        "ssh_config": inventory.apply(lambda inv: ssh_config_output(stack, inv)),
        "tunnel_public_ip": tunnel.public_ip,
        "load_balancer_ip": lb.ip if lb else None,
        "load_balancer_mode": stack.load_balancer if lb else None,
        "vpc_id": network.vpc_id,
    }
    return Fleet(network, passwords, tunnel, groups, lb, firewall, sync, droplets, outputs)


def main() -> None:
    try:
        stack = load(pulumi.get_stack(), runtime_config_values())
    except ConfigError as error:
        for problem in error.problems:
            pulumi.log.error(str(problem))
        raise pulumi.RunError(f"stack {pulumi.get_stack()}: {len(error.problems)} config problem(s), reported above") from None
    for key, value in build(stack).outputs.items():
        pulumi.export(key, value)
