"""RoleGroup: the `count` droplets of one role, each booting with its phase-1 rules."""
from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components import droplets
from topology.model import Stack

TYPE = "enclave:index:RoleGroup"


@dataclass(frozen=True)
class RoleGroupArgs:
    """`tunnel` is the TunnelHost: its private address goes into user_data, and it comes first."""

    stack: Stack
    role: str
    inputs: droplets.DropletInputs
    tunnel_private_ip: pulumi.Input[str]
    tunnel: pulumi.Resource

    def validate(self) -> None:
        self.stack.role(self.role)  # KeyError for an unknown role
        if self.role == self.stack.tunnel_role:
            raise ValueError("the tunnel role is built by TunnelHost")
        droplets.check_droplets(self.stack, self.hosts, behind_tunnel=True)

    @property
    def hosts(self) -> tuple[str, ...]:
        return tuple(h.name for h in self.stack.hosts_of(self.role))


class RoleGroup(pulumi.ComponentResource):
    def __init__(self, name: str, args: RoleGroupArgs, opts: pulumi.ResourceOptions | None = None):
        args.validate()
        super().__init__(TYPE, name, None, opts)
        self.droplets = {
            host: droplets.create_droplet(args.stack, host, args.inputs, tunnel_private_ip=args.tunnel_private_ip,
                                          parent=self, depends_on=[args.tunnel])
            for host in args.hosts
        }
        self.addresses = droplets.addresses(self.droplets)
        self.register_outputs({"role": args.role, "addresses": self.addresses})
