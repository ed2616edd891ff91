"""Per-host cloud-config (phase 1) and peer-sync payload (phase 2), composed from the profile registry.

    user_data(stack, host, secrets=...)          -> "#cloud-config ..." (at most 64 KiB)
    peer_sync_payload(stack, host, secrets=...)  -> {relative path: text} for enclave-apply
    service_files(stack, host, secrets=...)      -> {/etc path: text} cloud-init writes (the lab uses them)
    firewall_bootcmd(user_data_text)             -> the firewall script, parsed back (the lab runs it)
Pure functions of the model: no I/O, byte-stable output.
"""
from __future__ import annotations

import base64
import functools
import gzip
import hashlib
import json
from typing import Mapping

import yaml

from cloudinit import firewall_boot, yamltext
from cloudinit.context import HostView, host_view
from cloudinit.profiles import APPLY_SCRIPT, HAPROXY_PEM, UBUNTU, ServiceFile, spec_parts
from cloudinit.secrets import Secrets
from cloudinit.templating import Templates
from firewall.compile import shared_compiler
from topology.catalog import PROFILES
from topology.errors import ConfigError, Problem
from topology.model import Stack

USER_DATA_LIMIT = 64 * 1024  # DigitalOcean's user_data limit, in bytes
HEADER = "#cloud-config\n"
MANIFEST = "manifest"

_templates = Templates()


def _context(view: HostView, stack: Stack, secrets: Secrets) -> dict[str, object]:
    """Everything a template may use: the host view, secrets, and a few derived names."""
    first = {p: (peers[0].address if peers else "") for p, peers in view.servers.items()}
    return {
        "h": view,
        "secrets": secrets,
        "pem": HAPROXY_PEM,
        "php": UBUNTU["php"],
        "database": view.role,
        "databases": view.client_roles,
        "pair_size": max(1, len(stack.hosts_of(view.role))),
        "listen": f"localhost,{view.private_ip}" if view.private_ip else "localhost",
        "server_address": {name: first.get(name, "") for name in PROFILES},
    }


def _files(stack: Stack, host_name: str, phase: int, private_ips: Mapping[str, str] | None,
           secrets: Secrets) -> list[tuple[ServiceFile, str]]:
    view = host_view(stack, stack.host(host_name), private_ips, phase)
    context = _context(view, stack, secrets)
    out = []
    for spec in spec_parts(view.profile):
        for f in spec.files:
            if phase in f.phases:
                text = _templates.source(f.template) if f.copy else _templates.render(f.template, **context)
                out.append((f, text))
    return out


def service_files(stack: Stack, host_name: str, *, secrets: Secrets) -> dict[str, str]:
    """Absolute path under /etc -> content of every file cloud-init writes (phase 1)."""
    return {f.path: text for f, text in _files(stack, host_name, 1, None, secrets)}


def _firewall_script(stack: Stack, host_name: str, tunnel_private_ip: str | None) -> str:
    tunnel = stack.tunnel.name
    private_ips = {tunnel: tunnel_private_ip} if tunnel_private_ip else None
    fw = shared_compiler(stack, private_ips, phase=1).host(host_name)
    guard_set, guard_rule = firewall_boot.guard(stack, host_name, fw)
    view = host_view(stack, stack.host(host_name), None, 1)
    return _templates.render(
        "firewall.bootcmd.sh.j2",
        h=view,
        ipsets=fw.ipsets,
        rules_v4=fw.rules_v4,
        rules_v6=fw.rules_v6,
        guard_set=guard_set,
        guard_rule=guard_rule,
        modules=firewall_boot.helper_modules(stack, host_name),
        fallback=firewall_boot.fallback_sources(stack, host_name, tunnel_private_ip or stack.tunnel.private_ip),
        forwards=stack.role(view.role).forwards or PROFILES[view.profile].forwards,
    )


@functools.lru_cache(maxsize=64)
def _gz_b64(text: str) -> str:
    """gzip (fixed mtime: deterministic) + base64, as cloud-init's `gz+b64` encoding reads it;
    cached, since every host carries the same apply script."""
    return base64.b64encode(gzip.compress(text.encode("utf-8"), compresslevel=9, mtime=0)).decode("ascii")


def cloud_config(stack: Stack, host_name: str, *, tunnel_private_ip: str | None = None,
                 secrets: Secrets) -> dict[str, object]:
    """The host's cloud-config as data (user_data() is its YAML text)."""
    host = stack.host(host_name)
    profile = stack.role(host.role).profile
    view = host_view(stack, host, None, 1)
    context = _context(view, stack, secrets)
    parts = spec_parts(profile)

    bootcmd: list[object] = [["sh", "-c", _firewall_script(stack, host_name, tunnel_private_ip)]]
    bootcmd += [["sh", "-c", line] for spec in parts for line in spec.bootcmd]
    write_files = []
    for f, text in _files(stack, host_name, 1, None, secrets):
        entry: dict[str, object] = {"path": f.path, "permissions": f.mode, "owner": "root:root"}
        if f.compress:
            entry["encoding"] = "gz+b64"
            text = _gz_b64(text)
        entry["content"] = text
        if f.defer:
            entry["defer"] = True
        write_files.append(entry)
    debconf = {package: _templates.render(t, **context) for spec in parts for package, t in spec.debconf}
    packages = [p for spec in parts for p in spec.packages]
    runcmd = [line for spec in parts for line in spec.runcmd]

    config: dict[str, object] = {
        "bootcmd": bootcmd,
        "write_files": write_files,
        "ssh_pwauth": False,
        "disable_root": False,
        "ssh_authorized_keys": list(stack.ssh_public_keys),
        "apt": {"debconf_selections": debconf},
        "package_update": True,
        "packages": packages,
    }
    if runcmd:
        config["runcmd"] = runcmd
    return config


def user_data(stack: Stack, host_name: str, *, tunnel_private_ip: str | None = None, secrets: Secrets) -> str:
    """The complete `#cloud-config` of the host; ConfigError naming it when over 64 KiB."""
    host = stack.host(host_name)
    title = f"# enclave stack {stack.name}, host {host.name} (role {host.role}): generated, do not edit\n"
    text = HEADER + title + yamltext.dump(cloud_config(stack, host_name, tunnel_private_ip=tunnel_private_ip,
                                                       secrets=secrets))
    size = len(text.encode("utf-8"))
    if size > USER_DATA_LIMIT:
        raise ConfigError([Problem(f"host {host_name}", f"user-data is {size} bytes, over DigitalOcean's "
                                                        f"{USER_DATA_LIMIT}-byte limit (role {host.role})")])
    return text


def firewall_bootcmd(user_data_text: str) -> str:
    """The firewall script of a user-data: its first bootcmd item, `sh -c` starting `# enclave-firewall`."""
    data = yaml.safe_load(user_data_text)
    items = data.get("bootcmd") if isinstance(data, dict) else None
    first = items[0] if items else None
    if not (isinstance(first, list) and first[:2] == ["sh", "-c"] and len(first) == 3
            and str(first[2]).startswith(firewall_boot.MARK + "\n")):
        raise ValueError("the first bootcmd item is not the enclave firewall (sh -c '# enclave-firewall ...')")
    return first[2]


def peer_sync_payload(stack: Stack, host_name: str, *, private_ips: Mapping[str, str] | None = None,
                      secrets: Secrets) -> dict[str, str]:
    """Relative path -> content that peer sync copies to the host and hands to enclave-apply."""
    fw = shared_compiler(stack, private_ips, phase=2).host(host_name)
    payload = {"ipsets": fw.ipsets, "rules.v4": fw.rules_v4, "rules.v6": fw.rules_v6}
    lines = [f"# enclave peer sync for {host_name}: <file> <destination> <mode> <service|-> <reload|restart>"]
    for f, text in _files(stack, host_name, 2, private_ips, secrets):
        rel = "files" + f.path
        payload[rel] = text
        lines.append(f"{rel} {f.path} {f.mode} {f.service} {f.action}")
    payload[MANIFEST] = "\n".join(lines) + "\n"
    return payload


def payload_hash(payload: dict[str, str]) -> str:
    """sha256 of the payload (paths and contents): Pulumi triggers re-run peer sync when it changes."""
    canonical = json.dumps(sorted(payload.items()), ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def apply_script() -> str:
    """The on-host apply script, as installed at /etc/enclave/enclave-apply."""
    return _templates.source("enclave-apply.sh")


__all__ = ["APPLY_SCRIPT", "USER_DATA_LIMIT", "apply_script", "cloud_config", "firewall_bootcmd",
           "payload_hash", "peer_sync_payload", "service_files", "user_data"]
