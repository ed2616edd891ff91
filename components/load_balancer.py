"""LoadBalancer: the stack's public entry, an haproxy droplet or DigitalOcean's managed LB.

Chosen by `enclave:load_balancer` through the BUILDERS registry:
- `haproxy` (default, seed 003): the haproxy role's droplets, built like any RoleGroup; peer sync
  writes their backends.
- `managed`: a `digitalocean.LoadBalancer` in the VPC, forwarding to the backend role by its
  droplet tag. It reaches the droplets from private VPC addresses that DigitalOcean does not
  expose, so the backend's cloud firewall admits it by load balancer uid, and the hosts' ipset
  of the LB role are the VPC range (the model rewrites them: `topology.validate`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import pulumi
import pulumi_digitalocean as do

from components import plan
from components.droplets import DropletInputs
from components.role_group import RoleGroup, RoleGroupArgs
from topology.model import Stack

TYPE = "enclave:index:LoadBalancer"


@dataclass(frozen=True)
class LoadBalancerArgs:
    stack: Stack
    inputs: DropletInputs
    tunnel_private_ip: pulumi.Input[str]
    tunnel: pulumi.Resource

    @property
    def mode(self) -> str:
        return self.stack.load_balancer

    def validate(self) -> None:
        if self.mode not in BUILDERS:
            raise ValueError(f"unknown load balancer mode {self.mode!r}; known: {', '.join(BUILDERS)}")
        if self.mode == "managed":
            plan.plan_managed_lb(self.stack)  # raises ConfigError before anything is created
        elif not plan.haproxy_lb_roles(self.stack):
            raise ValueError("haproxy mode needs a role with profile haproxy")


def _haproxy(component: "LoadBalancer", name: str, args: LoadBalancerArgs) -> None:
    child = pulumi.ResourceOptions(parent=component)
    component.groups = {
        role: RoleGroup(f"{name}-{role}", RoleGroupArgs(args.stack, role, args.inputs, args.tunnel_private_ip, args.tunnel), child)
        for role in plan.haproxy_lb_roles(args.stack)
    }
    first = next(iter(component.groups.values()))
    component.droplets = {h: d for g in component.groups.values() for h, d in g.droplets.items()}
    component.ip = next(iter(first.droplets.values())).ipv4_address
    component.lb_id = None


def _managed(component: "LoadBalancer", name: str, args: LoadBalancerArgs) -> None:
    lb_plan = plan.plan_managed_lb(args.stack)
    for port in lb_plan.unforwarded:
        pulumi.log.warn(f"enclave:load_balancer: port {port} of '{lb_plan.role}' is not forwarded: "
                        f"the flow to '{lb_plan.backend}' does not admit it (TLS needs the same port on the backend)")
    firewall = do.LoadBalancerFirewallArgs(allows=list(lb_plan.allow)) if lb_plan.allow else None
    component.managed = do.LoadBalancer(
        f"{name}-managed",
        name=lb_plan.name,
        region=args.stack.region,
        vpc_uuid=args.inputs.vpc_id,
        droplet_tag=args.inputs.tags[lb_plan.backend_tag],
        forwarding_rules=[
            do.LoadBalancerForwardingRuleArgs(entry_port=r.entry_port, entry_protocol=r.entry_protocol,
                                              target_port=r.target_port, target_protocol=r.target_protocol)
            for r in lb_plan.rules
        ],
        healthcheck=do.LoadBalancerHealthcheckArgs(port=lb_plan.healthcheck_port, protocol="tcp",
                                                   check_interval_seconds=10, healthy_threshold=3,
                                                   unhealthy_threshold=3, response_timeout_seconds=5),
        firewall=firewall,
        opts=pulumi.ResourceOptions(parent=component),
    )
    component.groups = {}
    component.droplets = {}
    component.ip = component.managed.ip
    component.lb_id = component.managed.id


BUILDERS: dict[str, Callable[["LoadBalancer", str, LoadBalancerArgs], None]] = {
    "haproxy": _haproxy,
    "managed": _managed,
}


class LoadBalancer(pulumi.ComponentResource):
    """`ip` is the public address users reach; `lb_id` the managed LB's id (None for haproxy)."""

    groups: dict[str, RoleGroup]
    droplets: dict[str, do.Droplet]
    ip: pulumi.Output[str]
    lb_id: pulumi.Output[str] | None

    def __init__(self, name: str, args: LoadBalancerArgs, opts: pulumi.ResourceOptions | None = None):
        args.validate()
        super().__init__(TYPE, name, None, opts)
        BUILDERS[args.mode](self, name, args)
        self.register_outputs({"mode": args.mode, "ip": self.ip})
