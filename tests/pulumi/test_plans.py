"""The pure plans the components walk: names, managed LB forwarding, cloud firewall limits."""
from __future__ import annotations

import pytest

from components import plan
from components.droplets import WIDEST_SECRETS, check_droplets
from components.peer_sync import UNPACK, apply_command
from tests.pulumi.program_harness import stack_file_config
from topology.errors import ConfigError
from topology.validate import build_stack_from_config


def stack(name: str, **overrides):
    return build_stack_from_config(name, dict(stack_file_config(name), **overrides))


def test_tags_carry_the_stack_so_firewalls_never_cross_stacks():
    dev, prod = stack("dev"), stack("prod")
    assert plan.role_tag(dev, "mysql") == "enclave-dev-mysql" != plan.role_tag(prod, "mysql")
    assert plan.stack_tag(dev) == "enclave-dev"


def test_managed_lb_forwards_only_ports_the_backend_admits():
    lb = plan.plan_managed_lb(stack("prod"))
    assert (lb.role, lb.backend, lb.backend_tag) == ("lb", "wordpress", "enclave-prod-wordpress")
    assert lb.rules == (plan.ForwardingRule(80, "http", 80, "http"),)
    assert lb.unforwarded == (443,) and lb.allow == () and lb.healthcheck_port == 80


def test_managed_lb_restricted_to_a_cidr_gets_a_firewall():
    flows = stack_file_config("prod")["enclave:flows"]
    flows = [dict(f, **{"from": "198.51.100.0/24"}) if f["from"] == "internet" else f for f in flows]
    lb = plan.plan_managed_lb(stack("prod", **{"enclave:flows": flows}))
    assert lb.allow == ("cidr:198.51.100.0/24",)


def test_no_managed_plan_in_haproxy_mode():
    s = stack("wordpress")
    assert plan.plan_managed_lb(s) is None and plan.haproxy_lb_roles(s) == ("lb",)
    assert "lb" not in plan.group_roles(s) and "tunnel" not in plan.group_roles(s)


def test_too_many_rules_for_one_cloud_firewall_is_a_config_error():
    flows = [{"from": "internet", "to": "web", "proto": "tcp", "ports": [str(p) for p in range(1000, 1120, 2)]}]
    with pytest.raises(ConfigError) as error:
        plan.plan_cloud_firewalls(stack("devinfra", **{"enclave:flows": flows}))
    assert str(error.value) == "enclave:flows: role 'web' needs 64 cloud firewall rules; DigitalOcean allows 50 (merge port ranges)"


def test_icmp_rules_have_no_port_range_and_tcp_ranges_are_merged():
    flows = [{"from": "admin", "to": "web", "proto": "icmp"},
             {"from": "internet", "to": "web", "proto": "tcp", "ports": ["80", "81-90"]}]
    (web,) = [p for p in plan.plan_cloud_firewalls(stack("devinfra", **{"enclave:flows": flows})) if p.role == "web"]
    assert plan.FirewallRule("icmp", None, ("203.0.113.0/24",)) in web.inbound
    assert plan.FirewallRule("tcp", "80-90", plan.ANYWHERE) in web.inbound


def test_droplet_check_collects_bad_sizes():
    s = stack("evergreen", **{"enclave:size": "Huge Box"})
    with pytest.raises(ConfigError) as error:
        check_droplets(s, ("db-1", "app-1"), behind_tunnel=True)
    assert [p.path for p in error.value.problems] == ["enclave:roles.db.size", "enclave:roles.app.size"]


def test_size_check_uses_the_longest_passwords():
    assert len(WIDEST_SECRETS.db_password) == len(WIDEST_SECRETS.replication_password) == 128


def test_payload_unpacker_refuses_escaping_paths(tmp_path):
    import json
    import subprocess
    import sys
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"../evil": "x"}))
    run = subprocess.run([sys.executable, "-c", UNPACK, str(bad), str(tmp_path / "out")], capture_output=True, text=True)
    assert run.returncode != 0 and "refusing payload path ../evil" in run.stderr
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"files/etc/x.conf": "hello\n", "rules.v4": "*filter\n"}))
    subprocess.run([sys.executable, "-c", UNPACK, str(good), str(tmp_path / "ok")], check=True)
    assert (tmp_path / "ok/files/etc/x.conf").read_text() == "hello\n"
    assert oct((tmp_path / "ok/rules.v4").stat().st_mode & 0o777) == "0o600"
    assert apply_command("abc", 60).endswith("/etc/enclave/enclave-apply apply --timeout 60 /var/lib/enclave/payload/abc")
