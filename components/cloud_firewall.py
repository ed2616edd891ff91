"""CloudFirewall: one DigitalOcean Cloud Firewall per droplet role, attached by the role's tag.

Defense in depth (decision 6): the same flows as the hosts' iptables rules, enforced again in
front of the droplets. The rules come from `components.plan.plan_cloud_firewalls`, which keeps
within the provider's limits (one tag per firewall of at most 5, port_range on every tcp/udp
rule, none on icmp, at most 50 rules).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional

import pulumi
import pulumi_digitalocean as do

from components.plan import MAX_RULES_PER_FIREWALL, MAX_TAGS_PER_FIREWALL, FirewallPlan, FirewallRule

TYPE = "enclave:index:CloudFirewall"


@dataclass(frozen=True)
class CloudFirewallArgs:
    """`tags` maps tag names to the Tag resources' outputs; `load_balancer_id` is the managed LB's."""

    plans: tuple[FirewallPlan, ...]
    tags: Mapping[str, pulumi.Input[str]]
    load_balancer_id: Optional[pulumi.Input[str]] = None

    def validate(self) -> None:
        for p in self.plans:
            if not 1 <= len(p.tags) <= MAX_TAGS_PER_FIREWALL:
                raise ValueError(f"firewall {p.name}: 1..{MAX_TAGS_PER_FIREWALL} tags")
            if len(p.inbound) + len(p.outbound) > MAX_RULES_PER_FIREWALL:
                raise ValueError(f"firewall {p.name}: more than {MAX_RULES_PER_FIREWALL} rules")
            for rule in p.inbound + p.outbound:
                if (rule.protocol == "icmp") != (rule.port_range is None):
                    raise ValueError(f"firewall {p.name}: port_range is required for tcp/udp and absent for icmp")
                if not (rule.addresses or rule.tags or rule.load_balancer):
                    raise ValueError(f"firewall {p.name}: a rule without a peer")
            missing = {t for p in self.plans for r in p.inbound + p.outbound for t in r.tags} | {t for p in self.plans for t in p.tags}
            missing -= set(self.tags)
            if missing:
                raise ValueError(f"tags without a Tag resource: {sorted(missing)}")
            if any(r.load_balancer for r in p.inbound + p.outbound) and self.load_balancer_id is None:
                raise ValueError(f"firewall {p.name} admits the managed load balancer, but there is none")


class CloudFirewall(pulumi.ComponentResource):
    def __init__(self, name: str, args: CloudFirewallArgs, opts: pulumi.ResourceOptions | None = None):
        args.validate()
        super().__init__(TYPE, name, None, opts)
        lb = [args.load_balancer_id] if args.load_balancer_id is not None else []

        def inbound(r: FirewallRule) -> do.FirewallInboundRuleArgs:
            return do.FirewallInboundRuleArgs(
                protocol=r.protocol, port_range=r.port_range,
                source_addresses=list(r.addresses) or None,
                source_tags=[args.tags[t] for t in r.tags] or None,
                source_load_balancer_uids=lb if r.load_balancer else None,
            )

        def outbound(r: FirewallRule) -> do.FirewallOutboundRuleArgs:
            return do.FirewallOutboundRuleArgs(
                protocol=r.protocol, port_range=r.port_range,
                destination_addresses=list(r.addresses) or None,
                destination_tags=[args.tags[t] for t in r.tags] or None,
                destination_load_balancer_uids=lb if r.load_balancer else None,
            )

        self.firewalls = {
            p.role: do.Firewall(
                f"{name}-{p.role}", name=p.name, tags=[args.tags[t] for t in p.tags],
                inbound_rules=[inbound(r) for r in p.inbound], outbound_rules=[outbound(r) for r in p.outbound],
                opts=pulumi.ResourceOptions(parent=self),
            )
            for p in args.plans
        }
        self.register_outputs({"firewall_ids": {role: fw.id for role, fw in self.firewalls.items()}})
