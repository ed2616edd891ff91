"""The Pulumi program for every stack in stacks/, run under Pulumi's mocks (tests/pulumi/enclave_mocks.py)."""
from __future__ import annotations

import functools
import json
from collections import Counter

import pytest

from cloudinit import render
from cloudinit.secrets import Secrets
from components import plan
from components.peer_sync import CONFIRM, INCOMING, WAIT_FOR_BOOT
from tests.pulumi.enclave_mocks import LB_IP, REAL_PRIVATE_OFFSET
from tests.pulumi.program_harness import STACKS, Deployment, deploy, stack_file_config
from topology.model import Stack, managed_lb_label

DROPLET = "digitalocean:index/droplet:Droplet"
FIREWALL = "digitalocean:index/firewall:Firewall"
MANAGED_LB = "digitalocean:index/loadBalancer:LoadBalancer"
COMMAND = "command:remote:Command"
COPY = "command:remote:CopyToRemote"
PASSWORD = "random:index/randomPassword:RandomPassword"


@functools.lru_cache(maxsize=None)
def deployed(name: str) -> Deployment:
    return deploy(name)


def managed_variant(name: str) -> Deployment:
    """The same stack with `enclave:load_balancer: managed`."""
    config = dict(stack_file_config(name), **{"enclave:load_balancer": "managed"})
    return deploy(name, config)


def haproxy_variant(name: str) -> Deployment:
    config = dict(stack_file_config(name), **{"enclave:load_balancer": "haproxy"})
    return deploy(name, config)


def real_private_ips(d: Deployment) -> dict[str, str]:
    return {r.name: r.state["ipv4AddressPrivate"] for r in d.of_type(DROPLET)}


def mocked_secrets(d: Deployment) -> Secrets:
    by_name = {r.name: r.state["result"] for r in d.of_type(PASSWORD)}
    return Secrets(by_name["passwords-db"], by_name["passwords-replication"])


# --- resources ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", STACKS)
def test_resource_counts_follow_the_model(name):
    d = deployed(name)
    stack: Stack = d.stack
    managed = stack.load_balancer == "managed"
    droplets = [h for h in stack.hosts if not (managed and h.role == plan.managed_lb_role(stack))]
    counts = d.counts()
    assert counts["Droplet"] == len(droplets)
    assert counts["Vpc"] == 1
    assert counts["Tag"] == len(stack.roles) + 1
    assert counts["SshKey"] == len(stack.ssh_public_keys)
    assert counts["Firewall"] == len(stack.roles) - (1 if managed else 0)
    assert counts["LoadBalancer"] - (1 if plan.has_load_balancer(stack) else 0) == (1 if managed else 0)
    assert counts["RandomPassword"] == 2
    assert counts["CopyToRemote"] == len(droplets)
    assert counts["Command"] == 3 * len(droplets)  # ready, apply, confirm
    assert counts["RoleGroup"] == len(plan.group_roles(stack)) + len(plan.haproxy_lb_roles(stack))


def test_wordpress_is_the_seed_fleet():
    """Seed 003: tunnel, haproxy, two WordPress and two MySQL droplets, all in one VPC."""
    d = deployed("wordpress")
    assert sorted(r.name for r in d.of_type(DROPLET)) == ["lb-1", "mysql-1", "mysql-2", "tunnel-1", "wordpress-1", "wordpress-2"]
    (vpc,) = d.of_type("digitalocean:index/vpc:Vpc")
    assert vpc.inputs["ipRange"] == "10.10.10.0/24" and vpc.inputs["region"] == "nyc3"
    assert {r.inputs["vpcUuid"] for r in d.of_type(DROPLET)} == {vpc.id}


@pytest.mark.parametrize("name", STACKS)
def test_droplets_are_placed_as_the_model_says(name):
    d = deployed(name)
    fingerprints = sorted(r.state["fingerprint"] for r in d.of_type("digitalocean:index/sshKey:SshKey"))
    for r in d.of_type(DROPLET):
        host = d.stack.host(r.name)
        role = d.stack.role(host.role)
        assert r.inputs["image"] == "ubuntu-24-04-x64"
        assert r.inputs["size"] == role.size and r.inputs["region"] == d.stack.region
        assert sorted(r.inputs["sshKeys"]) == fingerprints
        assert r.inputs["tags"] == [plan.stack_tag(d.stack), plan.role_tag(d.stack, role.name)]
        assert r.inputs["publicNetworking"] is (not role.private_only)


@pytest.mark.parametrize("name", STACKS)
def test_droplets_boot_with_the_tunnels_real_address(name):
    d = deployed(name)
    tunnel = d.named(DROPLET, d.stack.tunnel.name)
    real = tunnel.state["ipv4AddressPrivate"]
    assert real != d.stack.tunnel.private_ip  # the mock's address, not the plan's
    others = [r for r in d.of_type(DROPLET) if r.name != tunnel.name]
    assert others
    for r in others:
        script = render.firewall_bootcmd(r.inputs["userData"])
        assert f"add enclave-{d.stack.tunnel_role} {real}\n" in script, r.name


@pytest.mark.parametrize("name", STACKS)
def test_user_data_is_the_render_for_each_host(name):
    d = deployed(name)
    secrets = mocked_secrets(d)
    tunnel_ip = d.named(DROPLET, d.stack.tunnel.name).state["ipv4AddressPrivate"]
    for r in d.of_type(DROPLET):
        expected = render.user_data(d.stack, r.name, secrets=secrets,
                                    tunnel_private_ip=None if r.name == d.stack.tunnel.name else tunnel_ip)
        assert r.inputs["userData"] == expected, r.name
        assert d.secret[f"user_data:{r.name}"], r.name


# --- cloud firewall ----------------------------------------------------------------------------

def _atoms(rules: list[dict], direction: str = "source") -> set[tuple]:
    """Rules as (protocol, ports, kind, peer) atoms: one per source, whatever the merging."""
    out = set()
    for r in rules:
        for kind, key in (("address", "Addresses"), ("tag", "Tags"), ("lb", "LoadBalancerUids")):
            for peer in r.get(f"{direction}{key}") or ():
                out.add((r["protocol"], r.get("portRange"), kind, peer))
    return out


def _flow_atoms(stack: Stack, role: str, lb_id: str | None) -> set[tuple]:
    """Expected inbound atoms, straight from the flows."""
    lb_role = plan.managed_lb_role(stack)
    out = set()
    for flow in stack.flows_to(role):
        ranges = [None] if flow.proto == "icmp" else [plan.port_range_text(r) for r in flow.ports]
        for text in ranges:
            if lb_role is not None and flow.source.label == managed_lb_label(lb_role):
                out.add((flow.proto, text, "lb", lb_id))  # the host rules admit the VPC range
            elif flow.source.kind == "networks":
                out |= {(flow.proto, text, "address", n) for n in flow.source.networks}
            else:
                out.add((flow.proto, text, "tag", plan.role_tag(stack, flow.source.label)))
    return out


@pytest.mark.parametrize("name", STACKS)
def test_cloud_firewall_rules_equal_the_flows(name):
    d = deployed(name)
    firewalls = {r.inputs["tags"][0]: r for r in d.of_type(FIREWALL)}
    lb_id = d.of_type(MANAGED_LB)[0].id if d.of_type(MANAGED_LB) else None
    for role in d.stack.roles:
        if role.name == plan.managed_lb_role(d.stack):
            assert plan.role_tag(d.stack, role.name) not in firewalls
            continue
        fw = firewalls[plan.role_tag(d.stack, role.name)]
        assert fw.inputs["tags"] == [plan.role_tag(d.stack, role.name)]
        actual = _atoms(fw.inputs["inboundRules"])
        expected = _flow_atoms(d.stack, role.name, lb_id)
        if role.nat is None:
            assert actual == expected, role.name
        else:  # a gateway also admits its DNAT sources and the hosts it routes for
            assert expected <= actual, role.name
        for r in fw.inputs["inboundRules"] + fw.inputs["outboundRules"]:
            assert bool(r.get("portRange")) == (r["protocol"] != "icmp"), r
        assert len(fw.inputs["inboundRules"]) + len(fw.inputs["outboundRules"]) <= plan.MAX_RULES_PER_FIREWALL
        if role.egress == "accept":
            assert _atoms(fw.inputs["outboundRules"], "destination") == {
                (p, r, "address", a) for p, r in (("tcp", "1-65535"), ("udp", "1-65535"), ("icmp", None)) for a in plan.ANYWHERE}


def test_no_public_port_beyond_the_declared_services():
    d = deployed("devinfra")
    public = {}
    for fw in d.of_type(FIREWALL):
        for r in fw.inputs["inboundRules"]:
            if "0.0.0.0/0" in (r.get("sourceAddresses") or ()):
                public.setdefault(fw.inputs["tags"][0], set()).add((r["protocol"], r["portRange"]))
    tag = functools.partial(plan.role_tag, d.stack)
    assert public == {tag("mail"): {("tcp", "25")}, tag("web"): {("tcp", "80"), ("tcp", "443")},
                      tag("dns"): {("tcp", "53"), ("udp", "53")}}


def test_gateway_firewall_admits_port_forwards_and_routed_hosts():
    d = deployed("amanda")
    fw = next(r for r in d.of_type(FIREWALL) if r.inputs["tags"] == [plan.role_tag(d.stack, "gateway")])
    assert {"protocol": "tcp", "portRange": "50000-50100", "sourceAddresses": ["192.0.2.50/32"]} in fw.inputs["inboundRules"]
    g = deployed("gateway")
    fw = next(r for r in g.of_type(FIREWALL) if r.inputs["tags"] == [plan.role_tag(g.stack, "gateway")])
    routed = [r for r in fw.inputs["inboundRules"] if r.get("sourceTags") == [plan.role_tag(g.stack, "worker")]]
    assert {(r["protocol"], r.get("portRange")) for r in routed} == {("tcp", "1-65535"), ("udp", "1-65535"), ("icmp", None)}


# --- load balancer -----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["wordpress", "dev", "prod"])
def test_haproxy_mode_is_a_droplet_behind_its_firewall(name):
    d = haproxy_variant(name) if name == "prod" else deployed(name)
    assert not d.of_type(MANAGED_LB)
    lb = d.named(DROPLET, "lb-1")
    assert d.outputs["load_balancer_ip"] == lb.state["ipv4Address"]
    web = next(r for r in d.of_type(FIREWALL) if r.inputs["tags"] == [plan.role_tag(d.stack, "wordpress")])
    assert {"protocol": "tcp", "portRange": "80", "sourceTags": [plan.role_tag(d.stack, "lb")]} in web.inputs["inboundRules"]


@pytest.mark.parametrize("name", ["wordpress", "prod"])
def test_managed_mode_forwards_to_the_backend_tag(name):
    d = deployed(name) if name == "prod" else managed_variant(name)
    (lb,) = d.of_type(MANAGED_LB)
    assert lb.inputs["vpcUuid"] == d.of_type("digitalocean:index/vpc:Vpc")[0].id
    assert lb.inputs["dropletTag"] == plan.role_tag(d.stack, "wordpress")
    assert lb.inputs["forwardingRules"] == [{"entryPort": 80, "entryProtocol": "http", "targetPort": 80, "targetProtocol": "http"}]
    assert lb.inputs["healthcheck"]["port"] == 80 and lb.inputs["healthcheck"]["protocol"] == "tcp"
    assert "lb-1" not in {r.name for r in d.of_type(DROPLET)}
    assert "lb-1" not in {h["name"] for h in d.outputs["inventory"]["hosts"]}
    assert d.outputs["load_balancer_ip"] == LB_IP
    web = next(r for r in d.of_type(FIREWALL) if r.inputs["tags"] == [plan.role_tag(d.stack, "wordpress")])
    assert {"protocol": "tcp", "portRange": "80", "sourceLoadBalancerUids": [lb.id]} in web.inputs["inboundRules"]


def test_managed_mode_backends_admit_the_vpc_range_not_an_lb_set():
    """The managed LB's private addresses are not exposed: the backends admit the VPC range on
    the backend port (the cloud firewall narrows it to the LB by uid)."""
    d = deployed("prod")
    payload = render.peer_sync_payload(d.stack, "wordpress-1", private_ips=real_private_ips(d), secrets=mocked_secrets(d))
    assert "-A enclave-input -s 10.30.0.0/20 -i eth1 -p tcp -m tcp --dport 80 -j ACCEPT" in payload["rules.v4"].splitlines()
    assert "enclave-lb" not in payload["ipsets"] and "enclave-lb" not in payload["rules.v4"]
    assert render.payload_hash(payload) == d.hashes["wordpress-1"]


# --- peer sync ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", STACKS)
def test_peer_sync_goes_through_the_tunnel_with_triggers(name):
    d = deployed(name)
    tunnel = d.named(DROPLET, d.stack.tunnel.name)
    tunnel_public = tunnel.state["ipv4Address"]
    for r in d.of_type(COMMAND) + d.of_type(COPY):
        host = r.name.rsplit("-", 1)[0]
        droplet = d.named(DROPLET, host)
        conn = r.inputs["connection"]
        if host == tunnel.name:
            assert conn["host"] == tunnel_public and "proxy" not in conn
        else:
            assert conn["host"] == droplet.state["ipv4AddressPrivate"]
            assert conn["proxy"]["host"] == tunnel_public
        assert droplet.id in r.inputs["triggers"], r.name
        if not r.name.endswith("-ready"):
            assert d.hashes[host] in r.inputs["triggers"], r.name


@pytest.mark.parametrize("name", STACKS)
def test_peer_sync_pushes_the_payload_for_real_addresses(name):
    d = deployed(name)
    ips = real_private_ips(d)
    secrets = mocked_secrets(d)
    for copy in d.of_type(COPY):
        host = copy.name[: -len("-payload")]
        payload = render.peer_sync_payload(d.stack, host, private_ips=ips, secrets=secrets)
        digest = render.payload_hash(payload)
        assert d.hashes[host] == digest
        assert copy.inputs["remotePath"] == f"{INCOMING}/{digest}.json"
        assert json.loads(copy.inputs["source"].text) == payload
        assert "source" in copy.secret_inputs  # the payload may hold the replication password
        apply = d.named(COMMAND, f"{host}-apply")
        assert f"enclave-apply apply --timeout 120 /var/lib/enclave/payload/{digest}" in apply.inputs["create"]
        assert d.named(COMMAND, f"{host}-confirm").inputs["create"] == CONFIRM
        assert d.named(COMMAND, f"{host}-ready").inputs["create"] == WAIT_FOR_BOOT
        assert "cloud-init status --wait" in WAIT_FOR_BOOT


def test_a_policy_change_reruns_peer_sync_and_keeps_the_droplets():
    """A new flow changes the payload hashes (triggers) of the hosts it concerns, not the droplets."""
    before = deployed("wordpress")
    config = stack_file_config("wordpress")
    config = dict(config, **{"enclave:flows": config["enclave:flows"] + [{"from": "wordpress", "to": "mysql", "proto": "tcp", "ports": 4567}]})
    after = deploy("wordpress", config)
    changed = {h for h in before.hashes if before.hashes[h] != after.hashes[h]}
    assert changed == {"mysql-1", "mysql-2"}
    for r in after.of_type(DROPLET):
        assert r.name in before.hashes
    # user_data differs, but droplets ignore it after creation: no replacement
    assert Counter(opt for opt in after.ignore_changes(DROPLET)) == Counter({"userData": len(after.of_type(DROPLET))})


# --- secrets and outputs -----------------------------------------------------------------------

@pytest.mark.parametrize("name", STACKS)
def test_passwords_are_secrets(name):
    d = deployed(name)
    assert d.secret["db_password"] and d.secret["replication_password"]
    for r in d.of_type(PASSWORD):
        assert r.inputs["special"] is False and r.inputs["length"] >= 20
    assert not any(d.secret[k] for k in ("inventory", "ssh_config", "hosts"))


@pytest.mark.parametrize("name", STACKS)
def test_outputs_describe_the_real_hosts(name):
    d = deployed(name)
    droplets = {r.name: r for r in d.of_type(DROPLET)}
    inv = d.outputs["inventory"]
    assert set(inv) == {"stack", "tunnel", "hosts"} and inv["tunnel"] == d.stack.tunnel.name
    assert [h["name"] for h in inv["hosts"]] == [h.name for h in d.stack.hosts if h.name in droplets]
    for h in inv["hosts"]:
        state = droplets[h["name"]].state
        assert h["private_ip"] == state["ipv4AddressPrivate"]
        assert h["public_ip"] == (state["ipv4Address"] or None)
        assert d.outputs["hosts"][h["name"]]["role"] == h["role"]
    text = d.outputs["ssh_config"]
    tunnel_public = droplets[d.stack.tunnel.name].state["ipv4Address"]
    assert f"Host {d.stack.tunnel.name}\n  HostName {tunnel_public}\n" in text
    for h in inv["hosts"]:
        if h["name"] != d.stack.tunnel.name:
            assert f"Host {h['name']}\n  HostName {h['private_ip']}\n  ProxyJump {d.stack.tunnel.name}\n" in text


def test_devinfra_ssh_config_forwards_the_private_mail_ports():
    d = deployed("devinfra")
    mail = d.outputs["hosts"]["mail-1"]["private_ip"]
    assert f"LocalForward 127.0.0.1:10587 {mail}:587" in d.outputs["ssh_config"]
    assert f"LocalForward 127.0.0.1:10993 {mail}:993" in d.outputs["ssh_config"]


def test_real_addresses_are_not_the_plan():
    d = deployed("wordpress")
    planned = {h.name: h.private_ip for h in d.stack.hosts}
    real = real_private_ips(d)
    assert all(real[h] != planned[h] for h in real)
    assert all(int(ip.rsplit(".", 1)[1]) >= REAL_PRIVATE_OFFSET for ip in real.values())
