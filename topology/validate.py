"""Stack config (as Pulumi holds it) -> validated `Stack`, or every problem at once.

Input is the `config:` mapping of a Pulumi stack file: keys `enclave:<key>`, `digitalocean:region`.
Structure is checked per section with pydantic, meaning here; each problem names its full key.
"""
from __future__ import annotations

import difflib
import ipaddress
import re
from dataclasses import replace
from typing import Any

from pydantic import BaseModel, ValidationError

from topology import plan
from topology.catalog import HELPERS, PROFILES, REGIONS, SPECIAL_SOURCES
from topology.errors import ConfigError, Problem
from topology.model import (
    PRIVATE,
    PUBLIC,
    DropLog,
    EgressRule,
    Flow,
    Nat,
    PortForward,
    PortRange,
    Role,
    Source,
    Stack,
    managed_lb_label,
)
from topology import schema
from topology.schema import ENCLAVE_KEYS, FlowConfig, RoleConfig, SettingsConfig

NS = "enclave:"
ALLOWED_NAMESPACES = ("enclave", "digitalocean", "pulumi")
ROLE_NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
ROLE_NAME_MAX = 20  # ipset names (31) and lab namespace/interface names must fit
RATE = re.compile(r"^[1-9][0-9]{0,5}/(s|sec|second|m|min|minute|h|hour|d|day)$")
RFC1918 = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))
TOP_LEVEL_KEYS = ("config", "secretsprovider", "encryptedkey", "encryptionsalt", "environment")


def _suggest(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _pydantic_problems(prefix: str, error: ValidationError, model: type[BaseModel]) -> list[Problem]:
    """pydantic errors as `prefix.loc: message`, in enclave's wording."""
    out = []
    for e in error.errors():
        loc = [str(p) for p in e["loc"] if not _is_union_tag(str(p))]
        loc = [("from" if p == "from_" else p) for p in loc]
        path = prefix
        for part in loc:
            path += f"[{part}]" if part.isdigit() else f".{part}"
        kind, ctx = e["type"], e.get("ctx") or {}
        if kind == "extra_forbidden":
            msg = "unknown key" + _suggest(loc[-1] if loc else "", _fields_along(model, loc[:-1]))
        elif kind == "missing":
            msg = "is required"
        elif kind == "literal_error":
            msg = "must be one of " + str(ctx.get("expected", "")).replace("'", "").replace(" or ", ", ")
        elif kind in ("greater_than_equal", "greater_than"):
            msg = f"must be >= {ctx.get('ge', ctx.get('gt'))}"
        elif kind in ("less_than_equal", "less_than"):
            msg = f"must be <= {ctx.get('le', ctx.get('lt'))}"
        elif kind == "too_short":
            msg = f"must have at least {ctx.get('min_length')} item(s)"
        elif kind == "string_too_long":
            msg = f"must be at most {ctx.get('max_length')} characters"
        elif kind.endswith("_type") or kind.endswith("_parsing"):
            msg = "must be " + _TYPE_WORDS.get(kind.split("_")[0], kind.split("_")[0])
        else:
            msg = e["msg"][0].lower() + e["msg"][1:]
        out.append(Problem(path, msg))
    # unions report one error per member; keep each path's first message only
    unique: dict[str, Problem] = {}
    for p in out:
        unique.setdefault(p.path, p)
    return list(unique.values())


_TYPE_WORDS = {"int": "an integer", "string": "a string", "bool": "true or false", "list": "a list", "model": "a mapping", "dict": "a mapping", "float": "a number"}

_SCHEMA_MODELS = frozenset(
    name for name, obj in vars(schema).items() if isinstance(obj, type) and issubclass(obj, BaseModel)
)


def _is_union_tag(part: str) -> bool:
    """pydantic names the union member it tried (`DropLogConfig`, `literal[False]`) inside `loc`."""
    return part in _SCHEMA_MODELS or part.startswith(("function-", "literal[", "list[", "int", "str", "bool", "constrained"))


def _fields_along(model: type[BaseModel], loc: list[str]) -> tuple[str, ...]:
    """Key names of the (nested) model that `loc` leads to, for "did you mean" suggestions."""
    for part in loc:
        if part.isdigit():
            continue  # a list index: same item model
        field = model.model_fields.get("from_" if part == "from" else part)
        nested = _model_in(field.annotation) if field else None
        if nested is None:
            return ()
        model = nested
    return tuple((f.alias or name) for name, f in model.model_fields.items())


def _model_in(annotation) -> type[BaseModel] | None:
    """The BaseModel inside an annotation such as `NatConfig | None` or `list[FlowConfig]`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _check(model: type[BaseModel], value: Any, path: str, problems: list[Problem]):
    if not isinstance(value, dict):
        problems.append(Problem(path, "must be a mapping"))
        return None
    try:
        return model.model_validate(value)
    except ValidationError as error:
        problems.extend(_pydantic_problems(path, error, model))
        return None


def parse_ports(spec, path: str, problems: list[Problem]) -> tuple[PortRange, ...]:
    """`80`, `"24007-24008"`, `"80,443"` or a list of those -> port ranges (unmerged order kept)."""
    items = spec if isinstance(spec, list) else [spec]
    if not items:
        problems.append(Problem(path, "must list at least one port"))
        return ()
    out: list[PortRange] = []
    for item in items:
        parts = item.split(",") if isinstance(item, str) else [item]
        for part in parts:
            text = str(part).strip()
            m = re.fullmatch(r"(\d+)(?:\s*[-:]\s*(\d+))?", text)
            if not m:
                problems.append(Problem(path, f"'{text}' is not a port or a range like 1000-2000"))
                continue
            first, last = int(m.group(1)), int(m.group(2) or m.group(1))
            if not 1 <= first <= 65535 or not 1 <= last <= 65535:
                bad = first if not 1 <= first <= 65535 else last
                problems.append(Problem(path, f"port {bad} is out of range 1-65535"))
            elif first > last:
                problems.append(Problem(path, f"range {first}-{last} is reversed"))
            else:
                out.append(PortRange(first, last))
    return tuple(out)


def _network(text: str, path: str, problems: list[Problem], version: int | None = None):
    try:
        net = ipaddress.ip_network(text, strict=True)
    except ValueError as error:
        reason = "has host bits set" if "host bits" in str(error) else "is not a CIDR like 10.0.0.0/24"
        problems.append(Problem(path, f"'{text}' {reason}"))
        return None
    if version and net.version != version:
        problems.append(Problem(path, f"'{text}' must be an IPv{version} network"))
        return None
    return net


def _settings(config: dict, problems: list[Problem]) -> SettingsConfig | None:
    values = {k[len(NS):]: v for k, v in config.items() if k.startswith(NS) and k[len(NS):] not in ("roles", "flows")}
    settings = _check(SettingsConfig, values, "enclave", problems)
    # pydantic writes `enclave.vpc_cidr`; enclave keys are written `enclave:vpc_cidr`
    for i, p in enumerate(problems):
        if p.path.startswith("enclave."):
            problems[i] = Problem("enclave:" + p.path[len("enclave."):], p.message)
    return settings


def _check_keys(config: dict, problems: list[Problem]) -> None:
    for key in config:
        if not isinstance(key, str) or ":" not in key:
            problems.append(Problem(f"config key {key!r}", "config keys are written <namespace>:<key>, e.g. enclave:roles"))
            continue
        namespace, name = key.split(":", 1)
        if namespace not in ALLOWED_NAMESPACES:
            problems.append(Problem(key, f"unknown config namespace '{namespace}'" + _suggest(namespace, ALLOWED_NAMESPACES)))
        elif namespace == "enclave" and name not in ENCLAVE_KEYS:
            problems.append(Problem(key, "unknown key" + _suggest(name, ENCLAVE_KEYS)))


def _source(text: str, path: str, role_names, admin: tuple[str, ...], problems) -> Source | None:
    if text == "internet":
        return Source("networks", "internet", ("0.0.0.0/0", "::/0"))
    if text == "admin":
        return Source("networks", "admin", admin)
    if text in role_names:
        return Source("role", text)
    if "/" in text or text[:1].isdigit() or ":" in text:
        net = _network(text, path, problems)
        return Source("networks", text, (str(net),)) if net else None
    problems.append(Problem(path, f"unknown source '{text}': a role, internet, admin or a CIDR" + _suggest(text, list(role_names) + list(SPECIAL_SOURCES))))
    return None


def _roles(raw_roles, settings, problems: list[Problem]) -> dict[str, tuple[RoleConfig, str]]:
    """Role name -> (structurally valid config, path), in declaration order."""
    out: dict[str, tuple[RoleConfig, str]] = {}
    if raw_roles is None:
        problems.append(Problem("enclave:roles", "is required"))
        return out
    if not isinstance(raw_roles, dict) or not raw_roles:
        problems.append(Problem("enclave:roles", "must be a non-empty mapping of role name to settings"))
        return out
    for name, value in raw_roles.items():
        path = f"enclave:roles.{name}"
        name_ok = isinstance(name, str) and ROLE_NAME.match(name) and len(name) <= ROLE_NAME_MAX
        if not name_ok:
            problems.append(Problem(path, f"role names are lower-case words joined by '-', at most {ROLE_NAME_MAX} characters"))
        elif name in SPECIAL_SOURCES or name == "all":
            problems.append(Problem(path, f"'{name}' is reserved as a flow source; choose another role name"))
            name_ok = False
        role = _check(RoleConfig, value, path, problems)
        if role is None or not name_ok:
            continue
        if role.profile not in PROFILES:
            problems.append(Problem(f"{path}.profile", f"unknown profile '{role.profile}'" + _suggest(role.profile, PROFILES)))
        for i, helper in enumerate(role.helpers):
            if helper not in HELPERS:
                problems.append(Problem(f"{path}.helpers[{i}]", f"unknown conntrack helper '{helper}'; known: {', '.join(HELPERS)}"))
        if len(set(role.helpers)) != len(role.helpers):
            problems.append(Problem(f"{path}.helpers", "lists a helper twice"))
        profile = PROFILES.get(role.profile)
        if role.nat is not None and profile is not None and not profile.forwards:
            problems.append(Problem(f"{path}.nat", f"NAT needs a forwarding role (profile gateway), not profile '{role.profile}'"))
        if profile is not None and profile.forwards and role.count != 1:
            problems.append(Problem(f"{path}.count", "a gateway role has exactly one host"))
        out[name] = (role, path)
    return out


def _tunnel_and_gateway(roles, problems) -> None:
    if "tunnel" not in roles:
        if not any(p.path.startswith("enclave:roles.tunnel") for p in problems):
            problems.append(Problem("enclave:roles", "a role named 'tunnel' (profile tunnel, count 1) is required: it is the only way in"))
    else:
        role, path = roles["tunnel"]
        if role.profile != "tunnel":
            problems.append(Problem(f"{path}.profile", "the tunnel role must use profile 'tunnel'"))
        if role.count != 1:
            problems.append(Problem(f"{path}.count", "the tunnel role has exactly one host"))
        if role.private_only:
            problems.append(Problem(f"{path}.private_only", "the tunnel must have a public side"))
    gateways = [n for n, (r, _) in roles.items() if PROFILES.get(r.profile) and PROFILES[r.profile].forwards]
    if len(gateways) > 1:
        problems.append(Problem("enclave:roles", f"at most one gateway role, found {', '.join(gateways)}"))
    for name, (role, path) in roles.items():
        if role.private_only and not gateways:
            problems.append(Problem(f"{path}.private_only", "private-only hosts need a gateway role to route through"))
        if role.private_only and name in gateways:
            problems.append(Problem(f"{path}.private_only", "the gateway itself needs a public side"))


def _flows(raw_flows, roles, admin, problems) -> list[Flow]:
    flows: list[Flow] = []
    if raw_flows is None:
        return flows
    if not isinstance(raw_flows, list):
        problems.append(Problem("enclave:flows", "must be a list of flows"))
        return flows
    for i, value in enumerate(raw_flows):
        path = f"enclave:flows[{i}]"
        fc = _check(FlowConfig, value, path, problems)
        if fc is None:
            continue
        source = _source(fc.from_, f"{path}.from", roles, admin, problems)
        if fc.to not in roles:
            problems.append(Problem(f"{path}.to", f"unknown role '{fc.to}'" + _suggest(fc.to, roles)))
        ports: tuple[PortRange, ...] = ()
        if fc.proto == "icmp":
            if fc.ports is not None:
                problems.append(Problem(f"{path}.ports", "icmp has no ports; use icmp_type"))
        else:
            if fc.icmp_type is not None:
                problems.append(Problem(f"{path}.icmp_type", f"only for proto icmp, not {fc.proto}"))
            if fc.ports is None:
                problems.append(Problem(f"{path}.ports", f"is required for {fc.proto}"))
            else:
                ports = parse_ports(fc.ports, f"{path}.ports", problems)
        if source is None or fc.to not in roles:
            continue
        via = fc.via or ("private" if source.kind == "role" else "public")
        if source.kind == "role" and via == "public":
            problems.append(Problem(f"{path}.via", "role-to-role traffic stays on the private network"))
            continue
        dest_role = roles[fc.to][0]
        if via == "public" and dest_role.private_only:
            problems.append(Problem(f"{path}.to", f"role '{fc.to}' is private_only: it has no public side"))
            continue
        if source.kind == "role" and source.label == fc.to and roles[fc.to][0].count == 1:
            problems.append(Problem(path, f"role '{fc.to}' has one host: a flow to itself goes over lo and needs no rule"))
            continue
        flows.append(Flow(source, fc.to, fc.proto, ports, PUBLIC if via == "public" else PRIVATE, fc.icmp_type, origin=path))
    return flows


def _nat(role_name, role: RoleConfig, path, roles, admin, problems) -> tuple[Nat | None, list[Flow]]:
    if not PROFILES.get(role.profile) or not PROFILES[role.profile].forwards:
        return None, []
    nat_cfg = role.nat
    if nat_cfg is None:
        return Nat(masquerade=True), []
    forwards, derived = [], []
    for i, pf in enumerate(nat_cfg.port_forwards):
        p = f"{path}.nat.port_forwards[{i}]"
        source = _source(pf.from_, f"{p}.from", {}, admin, problems)
        ports = parse_ports(pf.ports, f"{p}.ports", problems)
        if pf.to not in roles:
            problems.append(Problem(f"{p}.to", f"unknown role '{pf.to}'" + _suggest(pf.to, roles)))
            continue
        if roles[pf.to][0].count != 1:
            problems.append(Problem(f"{p}.to", f"DNAT needs a role with one host; '{pf.to}' has {roles[pf.to][0].count}"))
            continue
        if pf.to == role_name:
            problems.append(Problem(f"{p}.to", "forward to another role, not to the gateway itself"))
            continue
        if source is None or not ports:
            continue
        forwards.append(PortForward(source, pf.proto, ports, pf.to))
        # forwarded connections are masqueraded onto the private side: the target sees the gateway
        derived.append(Flow(Source("role", role_name), pf.to, pf.proto, ports, PRIVATE, origin=p))
    return Nat(nat_cfg.masquerade, tuple(forwards)), derived


def _egress(role: RoleConfig, path, problems) -> tuple[EgressRule, ...]:
    rules = []
    for i, e in enumerate(role.egress_allow):
        p = f"{path}.egress_allow[{i}]"
        net = _network(e.to, f"{p}.to", problems)
        ports = () if e.proto == "icmp" else parse_ports(e.ports if e.ports is not None else [], f"{p}.ports", problems)
        if net is not None:
            rules.append(EgressRule(str(net), e.proto, ports))
    if rules and role.egress != "drop":
        problems.append(Problem(f"{path}.egress_allow", "only meaningful with egress: drop"))
    return tuple(rules)


def _networks(settings: SettingsConfig, host_count: int, problems) -> tuple[str, ...]:
    vpc = _network(settings.vpc_cidr, "enclave:vpc_cidr", problems, version=4)
    if vpc is not None:
        if not any(vpc.subnet_of(r) for r in RFC1918):
            problems.append(Problem("enclave:vpc_cidr", f"'{vpc}' is not a private (RFC 1918) range"))
        elif not 16 <= vpc.prefixlen <= 24:
            problems.append(Problem("enclave:vpc_cidr", f"prefix /{vpc.prefixlen} is outside /16../24 (DigitalOcean VPC sizes)"))
        elif host_count > plan.capacity(vpc):
            problems.append(Problem("enclave:vpc_cidr", f"'{vpc}' holds {plan.capacity(vpc)} hosts, the stack has {host_count}"))
    admin: list = []
    for i, text in enumerate(settings.admin_cidrs):
        net = _network(text, f"enclave:admin_cidrs[{i}]", problems)
        if net is None:
            continue
        if net.prefixlen == 0:
            problems.append(Problem(f"enclave:admin_cidrs[{i}]", "the whole internet is not an admin network"))
            continue
        if vpc is not None and net.version == 4 and net.overlaps(vpc):
            problems.append(Problem(f"enclave:admin_cidrs[{i}]", f"'{net}' overlaps the VPC range {vpc}"))
        for j, other in enumerate(admin):
            if other is not None and other.version == net.version and other.overlaps(net):
                problems.append(Problem(f"enclave:admin_cidrs[{i}]", f"'{net}' overlaps enclave:admin_cidrs[{j}] '{other}'"))
        admin.append(net)
    if not any(n is not None and n.version == 4 for n in admin) and not any(p.path.startswith("enclave:admin_cidrs") for p in problems):
        problems.append(Problem("enclave:admin_cidrs", "needs at least one IPv4 network (the VPC and the tunnel's SSH are IPv4)"))
    pub = _network(settings.plan_public_cidr, "enclave:plan_public_cidr", problems, version=4)
    if pub is not None:
        if not any(pub.subnet_of(r) for r in plan.SAFE_PUBLIC_RANGES if r.version == 4):
            problems.append(Problem("enclave:plan_public_cidr", "must lie in a documentation or benchmark range (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 198.18.0.0/15)"))
        elif host_count > pub.num_addresses - plan.PUBLIC_OFFSET - 1:
            problems.append(Problem("enclave:plan_public_cidr", f"'{pub}' has room for {pub.num_addresses - plan.PUBLIC_OFFSET - 1} hosts, the stack has {host_count}"))
    pub6 = _network(settings.plan_public6_cidr, "enclave:plan_public6_cidr", problems, version=6)
    if pub6 is not None and not pub6.subnet_of(plan.SAFE_PUBLIC_RANGES[-1]):
        problems.append(Problem("enclave:plan_public6_cidr", "must lie in the documentation range 2001:db8::/32"))
    ssh_key = re.compile(r"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh.com) [A-Za-z0-9+/=]{20,}( .*)?$")
    for i, key in enumerate(settings.ssh_public_keys):
        if not ssh_key.match(key.strip()):
            problems.append(Problem(f"enclave:ssh_public_keys[{i}]", "is not an OpenSSH public key line (type, base64, comment)"))
    if settings.drop_log and not RATE.match(settings.drop_log.rate):
        problems.append(Problem("enclave:drop_log.rate", f"'{settings.drop_log.rate}' is not a rate like 5/min"))
    return tuple(str(n) for n in admin if n is not None)


def _implicit_ssh(roles: dict, admin: tuple[str, ...]) -> list[Flow]:
    """SSH: admin networks to the tunnel's public side; the tunnel to every other host, privately."""
    ssh = (PortRange(22, 22),)
    flows = [Flow(Source("networks", "admin", admin), "tunnel", "tcp", ssh, PUBLIC, origin="ssh (admin -> tunnel)")]
    for name in roles:
        if name != "tunnel":
            flows.append(Flow(Source("role", "tunnel"), name, "tcp", ssh, PRIVATE, origin="ssh (tunnel -> every host)"))
    return flows


def _managed_load_balancer(lb: Role, roles: list[Role], flows: list[Flow], vpc_cidr: str) -> tuple[list[Role], list[Flow]]:
    """Managed mode: the LB role has no droplets; DigitalOcean's load balancer reaches the backends
    from VPC addresses it does not expose, so its flows come from the VPC range (the cloud
    firewall narrows them to the load balancer itself)."""
    vpc = str(ipaddress.ip_network(vpc_cidr))
    source = Source("networks", managed_lb_label(lb.name), (vpc,))
    roles = [replace(r, managed=True) if r.name == lb.name else r for r in roles]
    out = []
    for f in flows:
        if f.to == lb.name and f.source.kind == "role":
            continue  # nothing to reach on a load balancer without droplets (SSH included)
        out.append(replace(f, source=source) if f.source.role == lb.name else f)
    return roles, out


def build_stack(name: str, document: Any, source: str = "stack") -> Stack:
    """The validated model of a stack file's parsed YAML `document`; raises ConfigError."""
    problems: list[Problem] = []
    if not isinstance(document, dict):
        raise ConfigError([Problem(source, "a stack file is a mapping with a 'config:' section")])
    for key in document:
        if key not in TOP_LEVEL_KEYS:
            problems.append(Problem(f"{source}: {key}", "unknown top-level key" + _suggest(str(key), TOP_LEVEL_KEYS)))
    config = document.get("config")
    if not isinstance(config, dict):
        raise ConfigError(problems + [Problem(f"{source}: config", "is required and must be a mapping of config keys")])
    return build_stack_from_config(name, config, problems)


def build_stack_from_config(name: str, config: dict, problems: list[Problem] | None = None) -> Stack:
    """The validated model from Pulumi config key/values (`enclave:roles`, `digitalocean:region`, ...)."""
    problems = list(problems or [])
    _check_keys(config, problems)
    region = config.get("digitalocean:region")
    if region is None:
        problems.append(Problem("digitalocean:region", "is required"))
    elif not isinstance(region, str):
        problems.append(Problem("digitalocean:region", "must be a region slug such as nyc3"))
    elif region not in REGIONS:
        problems.append(Problem("digitalocean:region", f"unknown region '{region}'" + _suggest(str(region), REGIONS)))
    settings = _settings(config, problems)
    roles = _roles(config.get("enclave:roles"), settings, problems)
    _tunnel_and_gateway(roles, problems)
    host_count = sum(r.count for r, _ in roles.values())
    admin = _networks(settings, host_count, problems) if settings else ()
    flows = _implicit_ssh(roles, admin) if "tunnel" in roles else []
    flows += _flows(config.get("enclave:flows"), roles, admin, problems)
    built_roles = []
    for rname, (rc, path) in roles.items():
        nat, derived = _nat(rname, rc, path, roles, admin, problems)
        flows += derived
        built_roles.append(
            Role(
                name=rname,
                count=rc.count,
                profile=rc.profile,
                size=rc.size or (settings.size if settings else "s-1vcpu-1gb"),
                egress=rc.egress,
                egress_allow=_egress(rc, path, problems),
                helpers=tuple(rc.helpers),
                nat=nat,
                private_only=rc.private_only,
                final_action=rc.final_action or (settings.final_action if settings else "drop"),
            )
        )
    if settings and settings.load_balancer == "managed":
        lbs = [r for r in built_roles if r.profile == "haproxy"]
        if len(lbs) != 1:
            problems.append(Problem("enclave:load_balancer", "managed mode replaces the one role with profile haproxy; found " + str(len(lbs))))
        elif not any(p.path == "enclave:vpc_cidr" for p in problems):  # needs a valid VPC range
            built_roles, flows = _managed_load_balancer(lbs[0], built_roles, flows, settings.vpc_cidr)
    if problems or settings is None:
        raise ConfigError(problems)
    hosts = plan.plan_hosts(
        [(r.name, 0 if r.managed else r.count, r.private_only) for r in built_roles],
        settings.vpc_cidr,
        settings.plan_public_cidr,
        settings.plan_public6_cidr if settings.ipv6 else None,
    )
    drop_log = None if settings.drop_log is False else DropLog(settings.drop_log.rate, settings.drop_log.burst, settings.drop_log.prefix)
    return Stack(
        name=name,
        region=region,
        vpc_cidr=str(ipaddress.ip_network(settings.vpc_cidr)),
        admin_cidrs=admin,
        ssh_public_keys=tuple(k.strip() for k in settings.ssh_public_keys),
        image=settings.image,
        load_balancer=settings.load_balancer,
        drop_log=drop_log,
        roles=tuple(built_roles),
        flows=tuple(flows),
        hosts=hosts,
        ipv6=settings.ipv6,
    )
