"""What the lab applies to each host: the rendered cloud-init where it touches the network, and
the peer-sync payload (pure). This is the single place the lab reads deploy artifacts from.

Phase 1 comes from the host's real user-data: every bootcmd item (the firewall script first, as
`cloudinit.render.firewall_bootcmd` finds it) and every write_files entry (decoded). Phase 2 is
`peer_sync_payload` with the plan's addresses, handed to the on-host enclave-apply over SSH.
"""
from __future__ import annotations

import base64
import gzip
from dataclasses import dataclass

import yaml

from cloudinit.render import firewall_bootcmd, peer_sync_payload, user_data
from cloudinit.secrets import Secrets
from topology.model import Stack

APPLY = "/etc/enclave/enclave-apply"
ALWAYS_ETC = ("iptables", "enclave")  # what the firewall bootcmd and enclave-apply write


@dataclass(frozen=True)
class WrittenFile:
    path: str  # absolute, under /etc
    content: str
    mode: int


@dataclass(frozen=True)
class HostArtifacts:
    host: str
    bootcmd: tuple[str, ...]  # sh scripts in order; the first is the firewall
    files: tuple[WrittenFile, ...]  # cloud-init write_files
    payload: tuple[tuple[str, str], ...]  # phase 2: relative path -> content
    user_data_bytes: int

    @property
    def firewall(self) -> str:
        return self.bootcmd[0]

    def etc_tops(self) -> tuple[str, ...]:
        """Top-level /etc entries this host's files and payload touch (each gets its own copy)."""
        tops = list(ALWAYS_ETC)
        dests = [f.path for f in self.files] + [line.split()[1] for rel, text in self.payload if rel == "manifest"
                                                for line in text.splitlines() if line and not line.startswith("#")]
        for path in dests:
            top = path.split("/")[2]
            if top not in tops:
                tops.append(top)
        return tuple(tops)


def _decode(entry: dict) -> str:
    content = entry.get("content", "")
    encoding = entry.get("encoding", "")
    if encoding in ("gz+b64", "gzip+base64"):
        return gzip.decompress(base64.b64decode(content)).decode()
    if encoding in ("b64", "base64"):
        return base64.b64decode(content).decode()
    return content


def host_artifacts(stack: Stack, host: str, secrets: Secrets | None = None) -> HostArtifacts:
    secrets = secrets or Secrets.placeholders()
    text = user_data(stack, host, tunnel_private_ip=stack.tunnel.private_ip, secrets=secrets)
    data = yaml.safe_load(text)
    firewall = firewall_bootcmd(text)
    rest = tuple(item[2] if isinstance(item, list) else str(item) for item in data.get("bootcmd", [])[1:])
    files = tuple(WrittenFile(e["path"], _decode(e), int(str(e.get("permissions", "0644")), 8))
                  for e in data.get("write_files", []))
    payload = peer_sync_payload(stack, host, private_ips={h.name: h.private_ip for h in stack.hosts}, secrets=secrets)
    return HostArtifacts(host, (firewall,) + rest, files, tuple(sorted(payload.items())), len(text.encode()))


def stack_artifacts(stack: Stack) -> dict[str, HostArtifacts]:
    return {h.name: host_artifacts(stack, h.name) for h in stack.hosts}
