"""The policy pack's checks as pure functions over resource properties (Pulumi's camelCase names).

They take plain mappings, so they are tested offline; `policy/__main__.py` only adapts them to
`pulumi_policy`. During a preview some properties are unknown (a droplet's user_data waits for
the tunnel's address): pulumi_policy raises UnknownValueError on access and skips the check.
"""
from __future__ import annotations

from typing import Iterable, Mapping, NamedTuple

from components import plan
from topology.model import Stack, merge_ranges

DROPLET = "digitalocean:index/droplet:Droplet"
FIREWALL = "digitalocean:index/firewall:Firewall"
ANYWHERE = frozenset(plan.ANYWHERE)
USER_DATA_MARK = "# enclave stack "


class Resource(NamedTuple):
    type: str
    name: str
    props: Mapping


def role_tags(tags: Iterable[str]) -> list[str]:
    """Tags `enclave-<stack>-<role>`: those extending another enclave tag (the stack's) on the droplet."""
    tags = list(tags or [])
    stack_tags = [s for s in tags if s.startswith("enclave-")]
    return [t for t in tags if any(t.startswith(s + "-") for s in stack_tags)]


def droplet_violations(props: Mapping) -> list[str]:
    """A droplet must be in a VPC, boot enclave's cloud-config and carry its stack and role tags."""
    out = []
    if not props.get("vpcUuid"):
        out.append("droplet is not in a VPC (vpc_uuid unset)")
    user_data = props.get("userData") or ""
    if not (user_data.startswith("#cloud-config") and USER_DATA_MARK in user_data):
        out.append("droplet does not boot enclave's cloud-config (user_data)")
    if not role_tags(props.get("tags")):
        out.append("droplet has no enclave role tag (enclave-<stack>-<role>)")
    return out


def declared_public(stack: Stack) -> set[tuple[str, str, str]]:
    """(role tag, protocol, port range) the stack opens to the whole internet."""
    out = set()
    for role in stack.roles:
        for flow in stack.public_services(role.name):
            for r in merge_ranges(flow.ports) if flow.proto != "icmp" else ():
                out.add((plan.role_tag(stack, role.name), flow.proto, plan.port_range_text(r)))
            if flow.proto == "icmp":
                out.add((plan.role_tag(stack, role.name), "icmp", None))
        if role.nat:
            for pf in role.nat.port_forwards:
                if pf.source.label == "internet":
                    out |= {(plan.role_tag(stack, role.name), pf.proto, plan.port_range_text(r)) for r in merge_ranges(pf.ports)}
    return out


def firewall_violations(props: Mapping, public: set[tuple[str, str, str]]) -> list[str]:
    """Inbound 0.0.0.0/0 or ::/0 only on a service the stack declares public for that tag."""
    out = []
    tags = list(props.get("tags") or [])
    for rule in props.get("inboundRules") or []:
        if not ANYWHERE & set(rule.get("sourceAddresses") or []):
            continue
        key = (rule.get("protocol"), rule.get("portRange"))
        if not any((t, *key) in public for t in tags):
            out.append(f"inbound {key[0]}/{key[1] or 'all'} is open to the internet, but no flow from 'internet' declares it for {', '.join(tags) or 'no tag'}")
    return out


def coverage_violations(resources: Iterable[Resource]) -> list[tuple[str, str]]:
    """(droplet name, message) for each droplet whose role tag no Firewall is attached to."""
    resources = list(resources)
    covered = {t for r in resources if r.type == FIREWALL for t in (r.props.get("tags") or [])}
    out = []
    for r in resources:
        if r.type != DROPLET:
            continue
        missing = [t for t in role_tags(r.props.get("tags")) if t not in covered]
        if missing:
            out.append((r.name, f"no cloud firewall covers role tag {', '.join(missing)}"))
    return out


def stack_name_of(urn: str) -> str:
    """`urn:pulumi:<stack>::<project>::<type>::<name>` -> the stack."""
    return urn.split("::", 1)[0].split(":")[-1]
