"""Pulumi's mock runtime for enclave's program: the only fake in the test suite.

DigitalOcean cannot be reached from the test machine, so `pulumi.runtime.set_mocks` stands in for
the engine and the providers. `EnclaveMocks.new_resource` answers with the state DigitalOcean
(or pulumi-random, pulumi-command) would return: ids, droplet addresses assigned from the VPC range
at offsets the address plan never uses (so a test can tell real addresses from planned ones),
a load balancer `ip`, SSH key fingerprints. Any resource type or provider call the program is not
expected to make raises, so an accidental new resource fails the tests instead of passing unseen.
"""
from __future__ import annotations

import base64
import hashlib
import ipaddress
import itertools
import string
from dataclasses import dataclass, field

import pulumi
from pulumi.runtime.mocks import MockMonitor

REAL_PRIVATE_OFFSET = 100  # the plan uses network+2..; "DigitalOcean" hands out network+100..
REAL_PUBLIC = ipaddress.ip_network("192.0.2.0/24")  # documentation range, unlike the plan's
LB_IP = "192.0.2.250"
COMPONENT_TYPES = frozenset(f"enclave:index:{n}" for n in (
    "PrivateNetwork", "Passwords", "TunnelHost", "RoleGroup", "LoadBalancer", "CloudFirewall", "PeerSync"))


@dataclass
class Registered:
    """One resource as the program registered it: its inputs and the state the mock returned."""

    typ: str
    name: str
    inputs: dict  # secrets revealed
    state: dict
    id: str
    secret_inputs: frozenset = frozenset()  # input paths that arrived as secrets


SIG_KEY = "4dabf18193072939515e22adb298388d"  # pulumi.runtime.rpc's wire markers
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"


def reveal(value, path: str = "", secrets: set | None = None):
    """Inputs with secret wrappers removed; the paths that were secret are added to `secrets`."""
    if isinstance(value, dict):
        if value.get(SIG_KEY) == SECRET_SIG:
            if secrets is not None:
                secrets.add(path)
            return reveal(value["value"], path, secrets)
        return {k: reveal(v, f"{path}.{k}" if path else k, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [reveal(v, f"{path}[{i}]", secrets) for i, v in enumerate(value)]
    return value


def _uuid(name: str) -> str:
    h = hashlib.sha256(name.encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def _fingerprint(public_key: str) -> str:
    blob = base64.b64decode(public_key.split()[1])
    digest = hashlib.md5(blob).hexdigest()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


@dataclass
class EnclaveMocks(pulumi.runtime.Mocks):
    """Realistic state per resource type; a registry, and an error for anything else."""

    vpc_cidr: str
    resources: list[Registered] = field(default_factory=list)
    ignored: dict[str, list[str]] = field(default_factory=dict)  # "<type>::<name>" -> ignoreChanges
    _droplets: itertools.count = field(default_factory=itertools.count)

    def __post_init__(self) -> None:
        self.builders = {
            "digitalocean:index/vpc:Vpc": self._vpc,
            "digitalocean:index/tag:Tag": self._tag,
            "digitalocean:index/sshKey:SshKey": self._ssh_key,
            "digitalocean:index/droplet:Droplet": self._droplet,
            "digitalocean:index/firewall:Firewall": self._firewall,
            "digitalocean:index/loadBalancer:LoadBalancer": self._load_balancer,
            "random:index/randomPassword:RandomPassword": self._password,
            "command:remote:Command": self._command,
            "command:remote:CopyToRemote": self._copy,
        }

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        secret_paths: set[str] = set()
        inputs = reveal(dict(args.inputs), "", secret_paths)
        if args.typ in COMPONENT_TYPES and not args.custom:
            self.resources.append(Registered(args.typ, args.name, inputs, {}, "", frozenset(secret_paths)))
            return None, {}  # components have no provider state
        builder = self.builders.get(args.typ)
        if builder is None:
            raise NotImplementedError(f"unexpected resource type {args.typ} ({args.name})")
        rid, extra = builder(args)
        state = {**args.inputs, **extra}
        self.resources.append(Registered(args.typ, args.name, inputs, {**inputs, **extra}, rid, frozenset(secret_paths)))
        return rid, state

    def call(self, args: pulumi.runtime.MockCallArgs):
        raise NotImplementedError(f"unexpected provider call {args.token}")

    # --- per type -----------------------------------------------------------------------------

    def _vpc(self, args):
        rid = _uuid(args.name)
        return rid, {"urn": f"do:vpc:{rid}", "default": False, "createdAt": "2026-01-01T00:00:00Z"}

    def _tag(self, args):
        return args.inputs["name"], {"dropletsCount": 0, "totalResourceCount": 0}

    def _ssh_key(self, args):
        return str(40000000 + len(self.resources)), {"fingerprint": _fingerprint(args.inputs["publicKey"])}

    def _droplet(self, args):
        n = next(self._droplets)
        vpc = ipaddress.ip_network(self.vpc_cidr)
        private = str(vpc.network_address + REAL_PRIVATE_OFFSET + n)
        public = str(REAL_PUBLIC.network_address + 100 + n) if args.inputs.get("publicNetworking", True) else ""
        rid = str(500000000 + n)
        return rid, {
            "ipv4Address": public,
            "ipv4AddressPrivate": private,
            "ipv6Address": f"2001:db8:1::{n + 1:x}" if args.inputs.get("ipv6") else "",
            "status": "active",
            "urn": f"do:droplet:{rid}",
            "locked": False,
        }

    def _firewall(self, args):
        rid = _uuid(args.name)
        return rid, {"status": "succeeded", "createdAt": "2026-01-01T00:00:00Z", "pendingChanges": []}

    def _load_balancer(self, args):
        rid = _uuid(args.name)
        return rid, {"ip": LB_IP, "status": "active", "urn": f"do:loadbalancer:{rid}"}

    def _password(self, args):
        alphabet = string.ascii_letters + string.digits
        seed = hashlib.sha256(args.name.encode()).digest()
        length = int(args.inputs["length"])
        result = "".join(alphabet[seed[i % len(seed)] % len(alphabet)] for i in range(length))
        return args.name + "-id", {"result": result, "bcryptHash": "$2a$10$mock"}

    def _command(self, args):
        return args.name + "-id", {"stdout": "", "stderr": ""}

    def _copy(self, args):
        return args.name + "-id", {}


class RecordingMonitor(MockMonitor):
    """Pulumi's mock monitor, also noting each resource's `ignoreChanges` option for the tests."""

    def __init__(self, mocks: EnclaveMocks):
        super().__init__(mocks)
        self.enclave_mocks = mocks

    def RegisterResource(self, request):  # noqa: N802 - gRPC method name
        if request.ignoreChanges:
            self.enclave_mocks.ignored[f"{request.type}::{request.name}"] = list(request.ignoreChanges)
        return super().RegisterResource(request)
