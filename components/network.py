"""PrivateNetwork: the stack's VPC, its droplet tags and its registered SSH keys."""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

import pulumi
import pulumi_digitalocean as do

TYPE = "enclave:index:PrivateNetwork"
TAG = re.compile(r"^[A-Za-z0-9:_-]{1,255}$")  # DigitalOcean's tag alphabet


@dataclass(frozen=True)
class PrivateNetworkArgs:
    """`ip_range` is the stack's `enclave:vpc_cidr`; `tags` are the stack tag and every role tag."""

    name: str
    region: str
    ip_range: str
    tags: tuple[str, ...]
    ssh_public_keys: tuple[str, ...]

    def validate(self) -> None:
        net = ipaddress.ip_network(self.ip_range)
        if net.version != 4 or not net.is_private or not 16 <= net.prefixlen <= 24:
            raise ValueError(f"VPC range {self.ip_range} must be a private IPv4 /16../24")
        bad = [t for t in self.tags if not TAG.match(t)]
        if bad or len(set(self.tags)) != len(self.tags):
            raise ValueError(f"tags must be unique DigitalOcean tag names: {self.tags}")
        if not self.ssh_public_keys:
            raise ValueError("at least one SSH public key is needed to reach the droplets")


class PrivateNetwork(pulumi.ComponentResource):
    """The VPC every droplet joins, one Tag per name, one SshKey per public key.

    Tags are resources (not just strings on droplets) so that cloud firewalls and the managed
    load balancer depend on them existing. DigitalOcean refuses a public key already registered
    in the account: stacks sharing an account need distinct keys (docs/deploy.md).
    """

    def __init__(self, name: str, args: PrivateNetworkArgs, opts: pulumi.ResourceOptions | None = None):
        args.validate()
        super().__init__(TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.vpc = do.Vpc(f"{name}-vpc", name=args.name, region=args.region, ip_range=args.ip_range,
                          description="enclave: private network of the stack", opts=child)
        self.tags = {t: do.Tag(t, name=t, opts=child) for t in args.tags}
        self.ssh_keys = [
            do.SshKey(f"{name}-key-{i + 1}", name=f"{args.name}-key-{i + 1}", public_key=key, opts=child)
            for i, key in enumerate(args.ssh_public_keys)
        ]
        self.vpc_id: pulumi.Output[str] = self.vpc.id
        self.tag_names: dict[str, pulumi.Output[str]] = {t: tag.name for t, tag in self.tags.items()}
        self.ssh_key_fingerprints: pulumi.Output[list[str]] = pulumi.Output.all(*[k.fingerprint for k in self.ssh_keys])
        self.register_outputs({"vpc_id": self.vpc_id, "ip_range": self.vpc.ip_range,
                               "tags": list(args.tags), "ssh_key_fingerprints": self.ssh_key_fingerprints})
