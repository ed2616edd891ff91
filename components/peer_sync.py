"""PeerSync: phase 2 (decision 1) — push every host's peer-dependent files and apply them.

Per host, over SSH through the tunnel (`proxy=`; the tunnel itself directly):
1. `<host>-ready`: waits for `cloud-init status --wait` and for the apply script to exist;
2. `<host>-payload`: copies the payload (one JSON file: relative path -> content) to the host;
3. `<host>-apply`: unpacks it into a fresh directory and runs `enclave-apply apply`, which arms
   a rollback;
4. `<host>-confirm`: a second resource, so a new SSH connection through the tunnel, runs
   `enclave-apply confirm`: the new rules provably still let the tunnel in.
Steps 2-4 carry the payload hash in `triggers`, so they run again exactly when membership or
policy changes; the droplets themselves are untouched (their user_data is ignored after creation).
The tunnel is synced first; every other host waits for the tunnel's confirmation.

The connection uses the operator's ssh-agent (SSH_AUTH_SOCK), as `ssh` would: no private key is
ever placed in config or state.
"""
from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from typing import Mapping

import pulumi
import pulumi_digitalocean as do
from pulumi_command import remote

from cloudinit import render
from cloudinit.secrets import Secrets
from components import plan
from topology.model import Stack

TYPE = "enclave:index:PeerSync"
APPLY = "/etc/enclave/enclave-apply"
INCOMING = "/var/lib/enclave/incoming"
PAYLOADS = "/var/lib/enclave/payload"

# cloud-init exits 2 for "done, with recoverable errors" (deprecated keys, ...): still booted
WAIT_FOR_BOOT = (
    "cloud-init status --wait >/dev/null; rc=$?; "
    "if [ $rc -ne 0 ] && [ $rc -ne 2 ]; then cloud-init status --long >&2; exit $rc; fi; "
    f"test -x {APPLY}"
)

# unpack the JSON payload into a directory; refuses absolute paths and `..`
UNPACK = r"""import json, os, sys
src, dst = sys.argv[1], sys.argv[2]
files = json.load(open(src))
os.makedirs(dst, mode=0o700, exist_ok=True)
for rel, text in files.items():
    parts = rel.split("/")
    if rel.startswith("/") or ".." in parts or "" in parts:
        sys.exit("refusing payload path " + rel)
    path = os.path.join(dst, *parts)
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
"""


def sync_addresses(real: Mapping[str, tuple[str, str | None]]) -> dict[str, str]:
    """Host name -> real private IP, for the payload's ipset members and service files."""
    return {name: pair[0] for name, pair in real.items()}


def apply_command(digest: str, timeout: int) -> str:
    payload_file = f"{INCOMING}/{digest}.json"
    target = f"{PAYLOADS}/{digest}"
    return " && ".join([
        "set -e",
        f"python3 -c {shlex.quote(UNPACK)} {payload_file} {target}",
        f"{APPLY} apply --timeout {timeout} {target}",
    ])


CONFIRM = f"{APPLY} confirm"


@dataclass(frozen=True)
class PeerSyncArgs:
    """Every droplet of the stack, its real addresses, the tunnel's public address, the secrets."""

    stack: Stack
    droplets: Mapping[str, do.Droplet]
    addresses: pulumi.Input[dict]  # host -> (private_ip, public_ip)
    tunnel_public_ip: pulumi.Input[str]
    secrets: pulumi.Output[Secrets]
    user: str = "root"
    confirm_timeout: int = 120

    def validate(self) -> None:
        expected = set(plan.droplet_hosts(self.stack))
        if set(self.droplets) != expected:
            raise ValueError(f"peer sync needs exactly the droplets {sorted(expected)}, got {sorted(self.droplets)}")
        if not 30 <= self.confirm_timeout <= 900:
            raise ValueError("confirm_timeout must be 30..900 seconds")


def payload_json(stack: Stack, host: str, addresses: Mapping[str, tuple], secrets: Secrets) -> str:
    payload = render.peer_sync_payload(stack, host, private_ips=sync_addresses(addresses), secrets=secrets)
    return json.dumps(payload, sort_keys=True)


class PeerSync(pulumi.ComponentResource):
    """`hashes` maps each host to its payload hash (the value in the commands' triggers)."""

    def __init__(self, name: str, args: PeerSyncArgs, opts: pulumi.ResourceOptions | None = None):
        args.validate()
        super().__init__(TYPE, name, None, opts)
        stack = args.stack
        tunnel = stack.tunnel.name
        self.hashes: dict[str, pulumi.Output[str]] = {}
        self.commands: dict[str, dict[str, pulumi.Resource]] = {}
        tunnel_done: list[pulumi.Resource] = []
        for host in [tunnel] + [h for h in plan.droplet_hosts(stack) if h != tunnel]:
            droplet = args.droplets[host]
            if host == tunnel:
                connection = remote.ConnectionArgs(host=args.tunnel_public_ip, user=args.user,
                                                       dial_error_limit=30, per_dial_timeout=20)
            else:
                connection = remote.ConnectionArgs(
                    host=droplet.ipv4_address_private, user=args.user, dial_error_limit=30, per_dial_timeout=20,
                    proxy=remote.ProxyConnectionArgs(host=args.tunnel_public_ip, user=args.user,
                                                         dial_error_limit=30, per_dial_timeout=20),
                )
            content = pulumi.Output.secret(pulumi.Output.all(args.addresses, args.secrets).apply(
                lambda v, h=host: payload_json(stack, h, v[0], v[1])))
            # the hash of a payload holding random passwords reveals nothing: shown in plain
            digest = pulumi.Output.unsecret(content.apply(lambda t: render.payload_hash(json.loads(t))))
            self.hashes[host] = digest
            child = pulumi.ResourceOptions(parent=self, depends_on=list(tunnel_done))
            ready = remote.Command(f"{host}-ready", connection=connection, create=WAIT_FOR_BOOT,
                                   triggers=[droplet.id], opts=child)
            after_ready = pulumi.ResourceOptions(parent=self, depends_on=[ready])
            copy = remote.CopyToRemote(
                f"{host}-payload", connection=connection,
                source=content.apply(pulumi.StringAsset),
                remote_path=digest.apply(lambda d: f"{INCOMING}/{d}.json"),
                triggers=[digest, droplet.id], opts=after_ready)
            apply = remote.Command(
                f"{host}-apply", connection=connection,
                create=digest.apply(lambda d: apply_command(d, args.confirm_timeout)),
                triggers=[digest, droplet.id], opts=pulumi.ResourceOptions(parent=self, depends_on=[copy]))
            confirm = remote.Command(
                f"{host}-confirm", connection=connection, create=CONFIRM,
                triggers=[digest, droplet.id], opts=pulumi.ResourceOptions(parent=self, depends_on=[apply]))
            self.commands[host] = {"ready": ready, "payload": copy, "apply": apply, "confirm": confirm}
            if host == tunnel:
                tunnel_done = [confirm]
        self.register_outputs({"hashes": self.hashes})
