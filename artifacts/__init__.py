"""Everything `enclave render` produces for a stack, as relative path -> text (pure)."""
from __future__ import annotations

from firewall.compile import Compiler
from topology.inventory import inventory_json
from topology.model import Stack


def render_stack_files(stack: Stack) -> dict[str, str]:
    """Per host `rules.v4`, `rules.v6`, `ipsets` (phase 2, plan addresses) and `inventory.json`."""
    files: dict[str, str] = {}
    compiler = Compiler(stack)
    for host in stack.hosts:
        fw = compiler.host(host.name)
        files[f"{host.name}/rules.v4"] = fw.rules_v4
        files[f"{host.name}/rules.v6"] = fw.rules_v6
        files[f"{host.name}/ipsets"] = fw.ipsets
    files["inventory.json"] = inventory_json(stack)
    return files
