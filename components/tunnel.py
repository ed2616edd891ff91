"""TunnelHost: the bastion, the only host with SSH open to the admin networks.

Created before every other droplet: its private address is written into their phase-1 rules,
so no droplet boots unreachable (decision 1).
"""
from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components import droplets
from topology.model import Stack

TYPE = "enclave:index:TunnelHost"


@dataclass(frozen=True)
class TunnelHostArgs:
    stack: Stack
    inputs: droplets.DropletInputs

    def validate(self) -> None:
        role = self.stack.role(self.stack.tunnel_role)
        if role.count != 1 or role.private_only:
            raise ValueError("the tunnel is one droplet with a public side")
        droplets.check_droplets(self.stack, (self.stack.tunnel.name,), behind_tunnel=False)


class TunnelHost(pulumi.ComponentResource):
    def __init__(self, name: str, args: TunnelHostArgs, opts: pulumi.ResourceOptions | None = None):
        args.validate()
        super().__init__(TYPE, name, None, opts)
        host = args.stack.tunnel.name
        self.host = host
        self.droplet = droplets.create_droplet(args.stack, host, args.inputs, tunnel_private_ip=None, parent=self)
        self.private_ip: pulumi.Output[str] = self.droplet.ipv4_address_private
        self.public_ip: pulumi.Output[str] = self.droplet.ipv4_address
        self.register_outputs({"host": host, "private_ip": self.private_ip, "public_ip": self.public_ip})
