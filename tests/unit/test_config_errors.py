"""Bad stack configs: each is refused with the exact key path and a clear message, never a
traceback; every problem of a config is reported at once; the CLI exits 2 and writes nothing."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.unit.stackdata import wordpress_document
from topology.errors import ConfigError
from topology.load import load_stack_text
from topology.validate import build_stack


def _set(path: str, value):
    """A mutation setting config[path] where path is 'enclave:roles/db/count' style."""

    def mutate(doc):
        keys = path.split("/")
        node = doc["config"]
        for k in keys[:-1]:
            node = node[int(k) if k.isdigit() else k]
        last = keys[-1]
        node[int(last) if last.isdigit() else last] = value

    return mutate


def _delete(path: str):
    def mutate(doc):
        keys = path.split("/")
        node = doc["config"]
        for k in keys[:-1]:
            node = node[int(k) if k.isdigit() else k]
        del node[int(keys[-1]) if keys[-1].isdigit() else keys[-1]]

    return mutate


def _rename_key(old: str, new: str):
    def mutate(doc):
        doc["config"][new] = doc["config"].pop(old)

    return mutate


def _add_flow(flow: dict):
    def mutate(doc):
        doc["config"]["enclave:flows"].append(flow)

    return mutate


def _add_role(name: str, role):
    def mutate(doc):
        doc["config"]["enclave:roles"][name] = role

    return mutate


def _private_worker_with_public_flow(doc):
    roles = doc["config"]["enclave:roles"]
    roles["gateway"] = {"count": 1, "profile": "gateway"}
    roles["worker"] = {"count": 1, "profile": "generic", "private_only": True}
    doc["config"]["enclave:flows"].append({"from": "internet", "to": "worker", "proto": "tcp", "ports": 80})


def _managed_with_vpc(vpc: str):
    def mutate(doc):
        doc["config"]["enclave:load_balancer"] = "managed"
        doc["config"]["enclave:vpc_cidr"] = vpc

    return mutate


# (id, mutation, expected key path, expected words in the message)
CASES = [
    ("typo in a top key", _rename_key("enclave:roles", "enclave:rolez"), "enclave:rolez", "did you mean 'roles'"),
    ("typo in a role key", _set("enclave:roles/mysql/cuont", 2), "enclave:roles.mysql.cuont", "did you mean 'count'"),
    ("typo in a flow key", _set("enclave:flows/1/prot", "tcp"), "enclave:flows[1].prot", "did you mean 'proto'"),
    ("typo in the namespace", _rename_key("enclave:vpc_cidr", "enclve:vpc_cidr"), "enclve:vpc_cidr", "unknown config namespace"),
    ("unknown role in flow.to", _set("enclave:flows/3/to", "mysq"), "enclave:flows[3].to", "unknown role 'mysq' (did you mean 'mysql'?)"),
    ("unknown role in flow.from", _set("enclave:flows/1/from", "balancer"), "enclave:flows[1].from", "unknown source 'balancer'"),
    ("port 0", _set("enclave:flows/1/ports", 0), "enclave:flows[1].ports", "port 0 is out of range"),
    ("port 70000", _set("enclave:flows/1/ports", 70000), "enclave:flows[1].ports", "port 70000 is out of range"),
    ("reversed range", _set("enclave:flows/2/ports", "24008-24007"), "enclave:flows[2].ports", "range 24008-24007 is reversed"),
    ("port not a number", _set("enclave:flows/1/ports", "http"), "enclave:flows[1].ports", "'http' is not a port"),
    ("ports missing for tcp", _delete("enclave:flows/1/ports"), "enclave:flows[1].ports", "is required for tcp"),
    ("ports given for icmp", _add_flow({"from": "lb", "to": "wordpress", "proto": "icmp", "ports": 8}), "enclave:flows[5].ports", "icmp has no ports"),
    ("unknown protocol", _set("enclave:flows/1/proto", "sctp"), "enclave:flows[1].proto", "must be one of tcp, udp, icmp"),
    ("vpc not RFC1918", _set("enclave:vpc_cidr", "8.8.8.0/24"), "enclave:vpc_cidr", "not a private (RFC 1918) range"),
    ("vpc too large", _set("enclave:vpc_cidr", "10.0.0.0/8"), "enclave:vpc_cidr", "prefix /8 is outside /16../24"),
    ("vpc too small", _set("enclave:vpc_cidr", "10.10.10.0/28"), "enclave:vpc_cidr", "prefix /28 is outside"),
    ("vpc host bits", _set("enclave:vpc_cidr", "10.10.10.5/24"), "enclave:vpc_cidr", "has host bits set"),
    ("vpc not a cidr", _set("enclave:vpc_cidr", "ten.ten"), "enclave:vpc_cidr", "is not a CIDR"),
    ("vpc is IPv6", _set("enclave:vpc_cidr", "fd00::/64"), "enclave:vpc_cidr", "must be an IPv4 network"),
    ("count 0", _set("enclave:roles/mysql/count", 0), "enclave:roles.mysql.count", "must be >= 1"),
    ("count not an integer", _set("enclave:roles/mysql/count", "two"), "enclave:roles.mysql.count", "must be an integer"),
    ("no tunnel role", _delete("enclave:roles/tunnel"), "enclave:roles", "a role named 'tunnel'"),
    ("two tunnels", _set("enclave:roles/tunnel/count", 2), "enclave:roles.tunnel.count", "exactly one host"),
    ("unknown helper", _set("enclave:roles/mysql/helpers", ["amanda", "h323x"]), "enclave:roles.mysql.helpers[1]", "unknown conntrack helper 'h323x'"),
    ("NAT on a non-gateway", _set("enclave:roles/mysql/nat", {"masquerade": True}), "enclave:roles.mysql.nat", "NAT needs a forwarding role"),
    ("unknown profile", _set("enclave:roles/mysql/profile", "mysqld"), "enclave:roles.mysql.profile", "unknown profile 'mysqld' (did you mean 'mysql'?)"),
    ("role name with capitals", _add_role("Cache", {"count": 1, "profile": "generic"}), "enclave:roles.Cache", "lower-case words"),
    ("reserved role name", _add_role("internet", {"count": 1, "profile": "generic"}), "enclave:roles.internet", "reserved"),
    ("admin cidr malformed", _set("enclave:admin_cidrs", ["203.0.113.0/33"]), "enclave:admin_cidrs[0]", "is not a CIDR"),
    ("admin cidr is the internet", _set("enclave:admin_cidrs", ["0.0.0.0/0"]), "enclave:admin_cidrs[0]", "whole internet"),
    ("admin cidrs overlap", _set("enclave:admin_cidrs", ["203.0.113.0/24", "203.0.113.128/25"]), "enclave:admin_cidrs[1]", "overlaps enclave:admin_cidrs[0]"),
    ("admin cidr overlaps the VPC", _set("enclave:admin_cidrs", ["10.10.0.0/16"]), "enclave:admin_cidrs[0]", "overlaps the VPC range"),
    ("no admin cidrs", _set("enclave:admin_cidrs", []), "enclave:admin_cidrs", "at least 1 item"),
    ("missing region", _delete("digitalocean:region"), "digitalocean:region", "is required"),
    ("unknown region", _set("digitalocean:region", "nyc9"), "digitalocean:region", "unknown region 'nyc9'"),
    ("bad ssh key", _set("enclave:ssh_public_keys", ["not a key"]), "enclave:ssh_public_keys[0]", "not an OpenSSH public key"),
    ("bad log rate", _set("enclave:drop_log", {"rate": "fast"}), "enclave:drop_log.rate", "not a rate like 5/min"),
    ("role-to-role over public", _set("enclave:flows/1/via", "public"), "enclave:flows[1].via", "stays on the private network"),
    ("flow source CIDR malformed", _set("enclave:flows/0/from", "300.1.1.0/24"), "enclave:flows[0].from", "is not a CIDR"),
    ("roles not a mapping", _set("enclave:roles", ["tunnel", "lb"]), "enclave:roles", "must be a non-empty mapping"),
    ("flows not a list", _set("enclave:flows", {"from": "lb"}), "enclave:flows", "must be a list"),
    ("unknown load balancer mode", _set("enclave:load_balancer", "nginx"), "enclave:load_balancer", "must be one of haproxy, managed"),
    ("managed LB with a broken VPC range", _managed_with_vpc("10.30.0.0/33"), "enclave:vpc_cidr", "is not a CIDR"),
    ("too many hosts for the VPC", _set("enclave:roles/wordpress/count", 300), "enclave:vpc_cidr", "holds 252 hosts, the stack has 304"),
    ("private_only without gateway", _set("enclave:roles/mysql/private_only", True), "enclave:roles.mysql.private_only", "need a gateway role"),
    ("public flow to a private-only role", _private_worker_with_public_flow, "enclave:flows[5].to", "role 'worker' is private_only"),
    ("typo in a nested key", _set("enclave:drop_log", {"rat": "5/min"}), "enclave:drop_log.rat", "did you mean 'rate'"),
    ("typo in a NAT key", _set("enclave:roles/mysql/nat", {"masqurade": True}), "enclave:roles.mysql.nat.masqurade", "did you mean 'masquerade'"),
]


@pytest.mark.parametrize("name,mutate,path,words", CASES, ids=[c[0] for c in CASES])
def test_bad_config_is_refused_naming_the_key(name, mutate, path, words):
    doc = wordpress_document()
    mutate(doc)
    with pytest.raises(ConfigError) as caught:
        build_stack("wordpress", doc, source="Pulumi.wordpress.yaml")
    report = caught.value.report()
    assert any(p.path == path and words in p.message for p in caught.value.problems), report


def test_there_are_at_least_thirty_hand_written_cases():
    assert len(CASES) >= 30


def test_every_problem_is_reported_at_once():
    doc = wordpress_document()
    for mutate in (_set("enclave:roles/mysql/count", 0), _set("enclave:flows/3/to", "mysq"), _set("enclave:vpc_cidr", "8.8.8.0/24"), _set("enclave:flows/1/ports", 70000)):
        mutate(doc)
    with pytest.raises(ConfigError) as caught:
        build_stack("wordpress", doc)
    paths = {p.path for p in caught.value.problems}
    assert {"enclave:roles.mysql.count", "enclave:flows[3].to", "enclave:vpc_cidr", "enclave:flows[1].ports"} <= paths


def test_malformed_yaml_names_the_line():
    text = "config:\n  digitalocean:region: nyc3\n  enclave:roles: {tunnel: [\n"
    with pytest.raises(ConfigError) as caught:
        load_stack_text("x", text, source="Pulumi.x.yaml")
    (problem,) = caught.value.problems
    assert problem.path.startswith("Pulumi.x.yaml:") and "malformed YAML" in problem.message


def test_duplicate_role_is_refused():
    text = yaml.safe_dump(wordpress_document(), sort_keys=False)
    text = text.replace("  enclave:roles:\n", "  enclave:roles:\n    mysql: {count: 1, profile: mysql}\n", 1)
    with pytest.raises(ConfigError) as caught:
        load_stack_text("wordpress", text, source="Pulumi.wordpress.yaml")
    assert any("duplicate key 'mysql'" in p.message for p in caught.value.problems), caught.value.report()


def test_a_document_that_is_not_a_mapping():
    with pytest.raises(ConfigError) as caught:
        load_stack_text("x", "- just\n- a list\n", source="Pulumi.x.yaml")
    assert "mapping with a 'config:' section" in caught.value.report()


def test_cli_exits_2_prints_key_paths_and_writes_nothing(tmp_path):
    doc = wordpress_document()
    _set("enclave:roles/mysql/count", 0)(doc)
    _set("enclave:flows/1/ports", 70000)(doc)
    stacks = tmp_path / "stacks"
    stacks.mkdir()
    (stacks / "Pulumi.broken.yaml").write_text(yaml.safe_dump(doc))
    out = tmp_path / "out"
    env = dict(os.environ, ENCLAVE_STACKS_DIR=str(stacks))
    done = subprocess.run(
        [sys.executable, "-m", "enclave_cli.main", "render", "--stack", "broken", "--out", str(out)],
        capture_output=True, text=True, env=env, cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert "enclave:roles.mysql.count: must be >= 1" in lines
    assert "enclave:flows[1].ports: port 70000 is out of range 1-65535" in lines
    assert not out.exists() and list(tmp_path.iterdir()) == [stacks]
