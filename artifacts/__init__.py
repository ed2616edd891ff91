"""Everything `enclave render` produces for a stack, as relative path -> text (pure)."""
from __future__ import annotations

from cloudinit.render import peer_sync_payload, user_data
from cloudinit.secrets import Secrets
from firewall.compile import shared_compiler
from topology.inventory import inventory_json
from topology.model import Stack


def render_stack_files(stack: Stack, secrets: Secrets | None = None) -> dict[str, str]:
    """Per host `rules.v4`, `rules.v6`, `ipsets` (phase 2, plan addresses), `user-data` (phase 1) and
    `peer-sync/*` (what peer sync hands to enclave-apply), plus `inventory.json`.

    Secrets default to placeholders: a render is for review and golden files, never a deploy.
    """
    secrets = secrets or Secrets.placeholders()
    files: dict[str, str] = {}
    compiler = shared_compiler(stack)
    for host in stack.hosts:
        fw = compiler.host(host.name)
        files[f"{host.name}/rules.v4"] = fw.rules_v4
        files[f"{host.name}/rules.v6"] = fw.rules_v6
        files[f"{host.name}/ipsets"] = fw.ipsets
        files[f"{host.name}/user-data"] = user_data(stack, host.name, secrets=secrets)
        for rel, text in peer_sync_payload(stack, host.name, secrets=secrets).items():
            files[f"{host.name}/peer-sync/{rel}"] = text
    files["inventory.json"] = inventory_json(stack)
    return files
