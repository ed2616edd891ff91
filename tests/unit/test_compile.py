"""The firewall compiler, table-driven: which lines each host's rulesets hold, in which order."""
from __future__ import annotations

import pytest

from firewall.compile import Compiler, compile_host, compile_stack
from tests.unit.stackdata import wordpress_document
from topology.load import load_stack
from topology.validate import build_stack


def _rules(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("-A ")]


PRESENT = [
    # (stack, host, family, line that must be there)
    ("wordpress", "tunnel-1", 4, "-A enclave-input -i eth0 -p tcp -m set --match-set enclave-admin src -m tcp --dport 22 -j ACCEPT"),
    ("wordpress", "lb-1", 4, "-A enclave-input -i eth0 -p tcp -m multiport --dports 80,443 -j ACCEPT"),
    ("wordpress", "lb-1", 6, "-A enclave-input -i eth0 -p tcp -m multiport --dports 80,443 -j ACCEPT"),
    ("wordpress", "lb-1", 4, "-A enclave-input -i eth1 -p tcp -m set --match-set enclave-tunnel src -m tcp --dport 22 -j ACCEPT"),
    ("wordpress", "wordpress-2", 4, "-A enclave-input -i eth1 -p tcp -m set --match-set enclave-lb src -m tcp --dport 80 -j ACCEPT"),
    ("wordpress", "wordpress-2", 4, "-A enclave-input -i eth1 -p tcp -m set --match-set enclave-wordpress src -m multiport --dports 24007:24008,49152:49251 -j ACCEPT"),
    ("wordpress", "mysql-1", 4, "-A enclave-input -i eth1 -p tcp -m set --match-set enclave-wordpress src -m tcp --dport 3306 -j ACCEPT"),
    ("wordpress", "mysql-1", 4, "-A enclave-input -i eth1 -p tcp -m set --match-set enclave-mysql src -m tcp --dport 3306 -j ACCEPT"),
    ("wordpress", "mysql-1", 6, "-A enclave-input -p ipv6-icmp -m icmp6 --icmpv6-type 135 -j ACCEPT"),
    ("wordpress", "mysql-1", 4, '-A enclave-deny -m limit --limit 5/min --limit-burst 10 -j LOG --log-prefix "enclave-drop: "'),
    ("wordpress", "mysql-1", 4, "-A enclave-deny -j DROP"),
    ("evergreen", "db-1", 4, "-A enclave-input -i eth1 -p tcp -m set --match-set enclave-app src -m tcp --dport 5432 -j ACCEPT"),
    ("evergreen", "app-1", 4, "-A enclave-input -i eth0 -p tcp -m tcp --dport 210 -j ACCEPT"),
    ("devinfra", "mail-1", 4, "-A enclave-input -i eth1 -p tcp -m set --match-set enclave-tunnel src -m multiport --dports 587,993 -j ACCEPT"),
    ("devinfra", "dns-1", 4, "-A enclave-input -i eth0 -p udp -m udp --dport 53 -j ACCEPT"),
    ("devinfra", "dns-1", 4, "-A enclave-deny -j REJECT --reject-with icmp-host-prohibited"),
    ("devinfra", "dns-1", 6, "-A enclave-deny -j REJECT --reject-with icmp6-adm-prohibited"),
    ("amanda", "client-1", 4, "-A enclave-helpers -p udp -m udp --dport 10080 -j CT --helper amanda"),
    ("amanda", "client-1", 4, "-A enclave-input -i eth1 -p udp -m set --match-set enclave-tapeserver src -m udp --dport 10080 -j ACCEPT"),
    ("amanda", "gateway-1", 4, "-A enclave-prerouting -s 192.0.2.50/32 -i eth0 -p tcp -m tcp --dport 50000:50100 -j DNAT --to-destination 10.50.0.4"),
    ("amanda", "gateway-1", 4, "-A enclave-postrouting -s 10.50.0.0/24 -o eth0 -j MASQUERADE"),
    ("amanda", "gateway-1", 4, "-A enclave-postrouting -o eth1 -m conntrack --ctstate DNAT -j MASQUERADE"),
    ("amanda", "gateway-1", 4, "-A enclave-forward -s 192.0.2.50/32 -i eth0 -o eth1 -p tcp -m tcp --dport 50000:50100 -m conntrack --ctstate DNAT -j ACCEPT"),
    ("amanda", "tapeserver-1", 4, "-A enclave-input -i eth1 -p tcp -m set --match-set enclave-gateway src -m tcp --dport 50000:50100 -j ACCEPT"),
    ("gateway", "gateway-1", 4, "-A enclave-forward -s 10.70.0.0/24 -i eth1 -o eth0 -m conntrack --ctstate NEW -j ACCEPT"),
    ("gateway", "gateway-1", 4, "-A enclave-deny -j REJECT --reject-with icmp-host-prohibited"),
    ("gateway", "gateway-1", 4, "-A FORWARD -j enclave-forward"),
]

ABSENT = [
    ("wordpress", "tunnel-1", 4, "--match-set enclave-tunnel src"),  # the tunnel needs no SSH from itself
    ("wordpress", "mysql-1", 4, "-i eth0 -p tcp"),  # nothing public on the databases
    ("wordpress", "mysql-1", 6, "--match-set"),  # the VPC is IPv4-only: no role sets in IPv6
    ("wordpress", "wordpress-1", 4, "FORWARD -j"),  # only gateways forward
    ("wordpress", "wordpress-1", 4, "*nat"),
    ("wordpress", "wordpress-1", 4, "*raw"),
    ("gateway", "worker-1", 4, "-i eth0"),  # private-only
    ("amanda", "tunnel-1", 4, "CT --helper"),
]


@pytest.mark.parametrize("stack,host,family,line", PRESENT)
def test_line_present(stack, host, family, line):
    fw = compile_host(load_stack(stack), host)
    assert line in (fw.rules_v4 if family == 4 else fw.rules_v6).splitlines()


@pytest.mark.parametrize("stack,host,family,fragment", ABSENT)
def test_fragment_absent(stack, host, family, fragment):
    fw = compile_host(load_stack(stack), host)
    assert fragment not in (fw.rules_v4 if family == 4 else fw.rules_v6)


@pytest.mark.parametrize("host", ["tunnel-1", "lb-1", "wordpress-1", "mysql-2"])
def test_input_chain_order(host):
    """lo, ESTABLISHED/RELATED, INVALID, SSH, flows, then the jump to log-then-deny."""
    rules = [r for r in _rules(compile_host(load_stack("wordpress"), host).rules_v4) if r.startswith("-A enclave-input")]
    assert rules[0] == "-A enclave-input -i lo -j ACCEPT"
    assert rules[1] == "-A enclave-input -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
    assert rules[2] == "-A enclave-input -m conntrack --ctstate INVALID -j DROP"
    assert "--dport 22 " in rules[3]
    assert rules[-1] == "-A enclave-input -j enclave-deny"
    assert all("-j ACCEPT" in r for r in rules[3:-1])


def _wordpress_with(web_servers: int):
    doc = wordpress_document()
    doc["config"]["enclave:roles"]["wordpress"]["count"] = web_servers
    doc["config"]["enclave:vpc_cidr"] = "10.10.0.0/16"
    doc["config"]["enclave:plan_public_cidr"] = "198.18.0.0/15"
    return build_stack("wordpress", doc)


def test_rule_count_does_not_grow_with_peers():
    small, large = _wordpress_with(2), _wordpress_with(200)
    for host in ("lb-1", "wordpress-1", "mysql-1"):
        assert _rules(compile_host(small, host).rules_v4) == _rules(compile_host(large, host).rules_v4)
    assert compile_host(large, "mysql-1").ipsets.count("add enclave-wordpress ") == 200


def test_ipset_members_follow_the_plan_and_given_addresses():
    stack = load_stack("wordpress")
    planned = compile_host(stack, "mysql-1").ipsets
    assert "add enclave-wordpress 10.10.10.4\nadd enclave-wordpress 10.10.10.5\n" in planned
    real = compile_host(stack, "mysql-1", private_ips={"wordpress-1": "10.10.10.77"}).ipsets
    assert "add enclave-wordpress 10.10.10.77\n" in real and "10.10.10.4\n" not in real


def test_phase_one_fills_only_the_tunnel_set_and_omits_dnat():
    stack = load_stack("amanda")
    boot = Compiler(stack, private_ips={"tunnel-1": "10.50.0.99"}, phase=1)
    gateway = boot.host("gateway-1")
    assert "add enclave-tunnel 10.50.0.99\n" in gateway.ipsets
    assert "add enclave-tapeserver" not in gateway.ipsets
    assert "create enclave-tapeserver hash:ip" in gateway.ipsets  # the set exists, empty: fail closed
    assert "DNAT" not in gateway.rules_v4.replace("--ctstate DNAT", "")
    assert "--dport 22" in compile_host(stack, "client-1").rules_v4


def test_phase_two_names_every_peer_set_the_rules_use():
    for name in ("wordpress", "amanda", "evergreen", "devinfra", "gateway"):
        for host, fw in compile_stack(load_stack(name)).items():
            used = {tok for line in _rules(fw.rules_v4) for tok in line.split() if tok.startswith("enclave-") and "--match-set " + tok in line}
            created = {line.split()[1] for line in fw.ipsets.splitlines() if line.startswith("create ")}
            assert used <= created, (name, host, used - created)


def test_egress_drop_restricts_output_to_declared_flows():
    doc = wordpress_document()
    doc["config"]["enclave:roles"]["wordpress"]["egress"] = "drop"
    doc["config"]["enclave:roles"]["wordpress"]["egress_allow"] = [{"to": "0.0.0.0/0", "proto": "udp", "ports": 53}]
    fw = compile_host(build_stack("wordpress", doc), "wordpress-1")
    lines = fw.rules_v4.splitlines()
    assert ":OUTPUT DROP [0:0]" in lines and "-A OUTPUT -j enclave-output" in lines
    assert "-A enclave-output -o eth1 -p tcp -m set --match-set enclave-mysql dst -m tcp --dport 3306 -j ACCEPT" in lines
    assert "-A enclave-output -d 0.0.0.0/0 -p udp -m udp --dport 53 -j ACCEPT" in lines
    assert lines.index("-A enclave-output -j enclave-deny") > lines.index("-A enclave-output -o lo -j ACCEPT")
    assert "create enclave-mysql hash:ip" in fw.ipsets


def test_many_ports_are_split_into_multiport_groups():
    doc = wordpress_document()
    doc["config"]["enclave:flows"].append({"from": "lb", "to": "mysql", "proto": "tcp", "ports": list(range(1000, 1020))})
    rules = [r for r in _rules(compile_host(build_stack("wordpress", doc), "mysql-1").rules_v4) if "enclave-lb" in r]
    assert len(rules) == 2
    assert all(len(r.split("--dports ")[1].split()[0].split(",")) <= 15 for r in rules)


def test_compilation_is_deterministic():
    a = compile_stack(load_stack("amanda"))
    b = compile_stack(load_stack("amanda"))
    assert a == b
