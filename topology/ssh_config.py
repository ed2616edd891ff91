"""An OpenSSH client config for a stack: the tunnel by public address, every other host by
private address through `ProxyJump tunnel`, and `LocalForward`s on the tunnel entry for private
services that only the tunnel may reach (devinfra's submission and IMAPS).

Used for Pulumi's `ssh_config` output (real addresses), `enclave ssh-config` (the plan) and the
lab (its own key and known_hosts). testinfra's `ssh://` backend reads it (paramiko would not
honour ProxyJump).
"""
from __future__ import annotations

from typing import Mapping

from topology.model import Stack

LOCAL_FORWARD_BASE = 10000  # local port = 10000 + remote port
LOCAL_FORWARD_MAX_RANGE = 16  # wider ranges are not forwarded port by port


def local_forwards(stack: Stack, inventory: dict) -> list[tuple[int, str, int, str]]:
    """(local port, host name, remote port, private ip) for flows from the tunnel to other roles."""
    private = {h["name"]: h["private_ip"] for h in inventory["hosts"]}
    out = []
    for flow in stack.flows_from(stack.tunnel_role):
        if flow.proto != "tcp" or flow.origin.startswith("ssh"):
            continue
        for host in stack.hosts_of(flow.to):
            for r in flow.ports:
                if r.width > LOCAL_FORWARD_MAX_RANGE:
                    continue
                for port in range(r.first, r.last + 1):
                    out.append((LOCAL_FORWARD_BASE + port, host.name, port, private[host.name]))
    # one local port can forward to one place: the first host of the role keeps it
    seen: set[int] = set()
    unique = []
    for item in out:
        if item[0] not in seen:
            seen.add(item[0])
            unique.append(item)
    return unique


def ssh_config(
    stack: Stack,
    inventory: dict,
    *,
    user: str = "root",
    identity_file: str | None = None,
    known_hosts_file: str | None = None,
    extra_options: Mapping[str, str] | None = None,
) -> str:
    """The config text; `inventory` has the shape of `topology.inventory.inventory`."""
    common = {"User": user}
    if identity_file:
        common["IdentityFile"] = identity_file
        common["IdentitiesOnly"] = "yes"
    if known_hosts_file:
        common["UserKnownHostsFile"] = known_hosts_file
        common["StrictHostKeyChecking"] = "accept-new"
    common.update(extra_options or {})
    tunnel = inventory["tunnel"]
    lines = [f"# enclave stack {inventory['stack']}: every host is reached through {tunnel}", ""]
    for host in inventory["hosts"]:
        lines.append(f"Host {host['name']}")
        if host["name"] == tunnel:
            lines.append(f"  HostName {host['public_ip']}")
            for local, name, port, ip in local_forwards(stack, inventory):
                lines.append(f"  # {name} port {port}, reachable only from the tunnel")
                lines.append(f"  LocalForward 127.0.0.1:{local} {ip}:{port}")
        else:
            lines.append(f"  HostName {host['private_ip']}")
            lines.append(f"  ProxyJump {tunnel}")
        lines += [f"  {k} {v}" for k, v in common.items()]
        lines.append("")
    return "\n".join(lines)
