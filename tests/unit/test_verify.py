"""`enclave verify`: green on every stack, and red with the exact counterexample when the rules are
tampered with (an extra opening, a lost SSH rule in either phase, a lost DNAT or masquerade)."""
from __future__ import annotations

import dataclasses
import json

import pytest

from benchmarks.variants import wordpress_variant
from enclave_cli import main as cli
from firewall.compile import Compiler
from firewall.parse import parse_ruleset
from firewall.ipsets import parse_ipsets
from firewall.shadow import REDUNDANT, SHADOWED, find_shadowed
from firewall.verify import verify_stack
from topology.load import available_stacks, load_stack

SSH_RULE = "-A enclave-input -i eth1 -p tcp -m set --match-set enclave-tunnel src -m tcp --dport 22 -j ACCEPT\n"


def tamper(monkeypatch, edit) -> None:
    """Route every compiled host through `edit(phase, role, HostFirewall) -> HostFirewall`."""
    original = Compiler.host

    def host(self, name):
        return edit(self.phase, self.stack.host(name).role, original(self, name))
    monkeypatch.setattr(Compiler, "host", host)


def edit_v4(roles, old, new, phases=(1, 2)):
    def edit(phase, role, fw):
        if role not in roles or phase not in phases:
            return fw
        assert old in fw.rules_v4, f"tamper target not found in {fw.host} phase {phase}"
        return dataclasses.replace(fw, rules_v4=fw.rules_v4.replace(old, new))
    return edit


@pytest.mark.parametrize("name", available_stacks())
def test_every_stack_verifies(name, capsys):
    report = verify_stack(load_stack(name))
    assert report.differences == ()
    assert report.lockout_failures == ()
    assert report.finding_count == 0
    assert report.probes > 200 and len(report.lockout) > 20
    assert {c.phase for c in report.lockout} == {1, 2}
    assert cli.main(["verify", "--stack", name]) == 0
    assert capsys.readouterr().out.strip().endswith("OK")


def test_large_stack_uses_representatives_and_says_so(capsys):
    report = verify_stack(wordpress_variant(70))
    assert report.representatives and report.ok()
    assert not verify_stack(wordpress_variant(70), representatives=False).representatives


def test_extra_mysql_opening_is_a_counterexample(monkeypatch, capsys):
    extra = "-A enclave-input -p tcp -m tcp --dport 3306 -j ACCEPT\n"
    tamper(monkeypatch, edit_v4({"mysql"}, SSH_RULE, SSH_RULE + extra))
    report = verify_stack(load_stack("wordpress"))
    messages = [d.message() for d in report.differences]
    assert ("mysql-1 accepts tcp/3306 from internet on eth0: enclave-input rule 5 "
            "(-A enclave-input -p tcp -m tcp --dport 3306 -j ACCEPT)") in messages
    assert {(d.expectation.probe.dest, d.expectation.probe.port, d.kind) for d in report.differences} == \
        {("mysql-1", 3306, "allows"), ("mysql-2", 3306, "allows")}
    # every source not meant to reach mysql (wordpress and the mysql peer may, on eth1)
    sources = {d.expectation.probe.source.name for d in report.differences}
    assert sources == {"internet", "tenant", "admin", "tunnel-1", "lb-1"}
    assert report.lockout_failures == ()
    assert cli.main(["verify", "--stack", "wordpress"]) == 1
    out = capsys.readouterr().out
    assert "mysql-1 accepts tcp/3306 from internet on eth0: enclave-input rule 5" in out
    assert out.strip().endswith("FAILED")


def test_missing_flow_names_the_flow_and_the_deny_rule(monkeypatch):
    flow_rule = "-A enclave-input -i eth1 -p tcp -m set --match-set enclave-lb src -m tcp --dport 80 -j ACCEPT\n"
    tamper(monkeypatch, edit_v4({"wordpress"}, flow_rule, ""))
    report = verify_stack(load_stack("wordpress"))
    messages = {d.message() for d in report.differences}
    assert messages == {
        f"wordpress-{n} drops tcp/80 from lb-1 on eth1, intended by enclave:flows[1] "
        "(lb -> wordpress tcp/80 via eth1): enclave-deny rule 2 (-A enclave-deny -j DROP)" for n in (1, 2)}


@pytest.mark.parametrize("phase", [1, 2])
def test_lost_tunnel_ssh_rule_is_a_lockout_naming_host_and_phase(monkeypatch, phase):
    tamper(monkeypatch, edit_v4({"mysql"}, SSH_RULE, "", phases=(phase,)))
    report = verify_stack(load_stack("wordpress"))
    failures = report.lockout_failures
    assert {(c.phase, c.host) for c in failures} == {(phase, "mysql-1"), (phase, "mysql-2")}
    assert ("phase %d: tunnel-1 reaches tcp/22 on eth1 FAILS on mysql-1: enclave-deny rule 2 "
            "(-A enclave-deny -j DROP)" % phase) in [c.message() for c in failures]
    assert not report.ok()
    # phase 2 is also what the matrix checks; phase 1 is only covered by the lockout proof
    assert bool(report.differences) == (phase == 2)


def test_lost_admin_access_to_the_tunnel(monkeypatch):
    admin = "-A enclave-input -i eth0 -p tcp -m set --match-set enclave-admin src -m tcp --dport 22 -j ACCEPT\n"
    tamper(monkeypatch, edit_v4({"tunnel"}, admin, "", phases=(1,)))
    failures = verify_stack(load_stack("wordpress")).lockout_failures
    assert [c.message() for c in failures] == [
        "phase 1: admin 203.0.113.1 (of 203.0.113.0/24) reaches tcp/22 on eth0 FAILS on tunnel-1: "
        "enclave-deny rule 2 (-A enclave-deny -j DROP)"]


def test_lost_established_rule_breaks_the_session(monkeypatch):
    established = "-A enclave-input -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n"
    tamper(monkeypatch, edit_v4({"tunnel"}, established, "", phases=(2,)))
    failures = verify_stack(load_stack("evergreen")).lockout_failures
    assert [(c.phase, c.host, c.what) for c in failures] == [
        (2, "tunnel-1", "SSH replies from db-1 come back"), (2, "tunnel-1", "SSH replies from app-1 come back")]


def test_removed_dnat_rule_fails_the_dnat_probes(monkeypatch):
    dnat = ("-A enclave-prerouting -s 192.0.2.50/32 -i eth0 -p tcp -m tcp --dport 50000:50100 "
            "-j DNAT --to-destination 10.50.0.4\n")
    tamper(monkeypatch, edit_v4({"gateway"}, dnat, "", phases=(2,)))
    report = verify_stack(load_stack("amanda"))
    assert [d.message() for d in report.differences] == [
        f"gateway-1 does not DNAT tcp/{port} from net-192.0.2.50/32 on eth0 (port forward to tapeserver), "
        "intended by gateway port forward to tapeserver: policy ACCEPT of PREROUTING" for port in (50000, 50100)]


def test_dnat_to_the_wrong_host_is_a_difference(monkeypatch):
    tamper(monkeypatch, edit_v4({"gateway"}, "--to-destination 10.50.0.4", "--to-destination 10.50.0.5", phases=(2,)))
    report = verify_stack(load_stack("amanda"))
    assert {d.kind for d in report.differences} == {"denies"}
    assert report.differences[0].message() == (
        "gateway-1 forwards tcp/50000 from net-192.0.2.50/32 on eth0 to client-1 (port forward to tapeserver), "
        "which drops it, intended by gateway port forward to tapeserver: gateway-1 nat/PREROUTING: "
        "enclave-prerouting rule 1 (-A enclave-prerouting -s 192.0.2.50/32 -i eth0 -p tcp -m tcp --dport "
        "50000:50100 -j DNAT --to-destination 10.50.0.5); then gateway-1 filter/FORWARD: enclave-forward rule 4 "
        "(-A enclave-forward -s 192.0.2.50/32 -i eth0 -o eth1 -p tcp -m tcp --dport 50000:50100 -m conntrack "
        "--ctstate DNAT -j ACCEPT); then client-1 filter/INPUT: enclave-deny rule 2 (-A enclave-deny -j DROP)")


def test_forward_out_needs_forward_and_masquerade(monkeypatch):
    masquerade = "-A enclave-postrouting -s 10.70.0.0/24 -o eth0 -j MASQUERADE\n"
    tamper(monkeypatch, edit_v4({"gateway"}, masquerade, "", phases=(2,)))
    report = verify_stack(load_stack("gateway"))
    assert {(d.expectation.probe.kind, d.outcome.verdict) for d in report.differences} == {("forward-out", "NO-SNAT")}
    assert len(report.differences) == 6  # 2 workers x tcp/80, tcp/443, udp/53
    assert report.differences[0].message().startswith("the gateway forwards without masquerading tcp/80 from worker-1")


def test_forward_rule_lost_rejects_with_the_deny_chain(monkeypatch):
    forward = "-A enclave-forward -s 10.70.0.0/24 -i eth1 -o eth0 -m conntrack --ctstate NEW -j ACCEPT\n"
    tamper(monkeypatch, edit_v4({"gateway"}, forward, "", phases=(2,)))
    report = verify_stack(load_stack("gateway"))
    assert {d.outcome.verdict for d in report.differences} == {"REJECT"}
    assert report.differences[0].message() == (
        "the gateway rejects tcp/80 from worker-1 to the internet, intended by gateway-1 masquerades the "
        "private side: enclave-deny rule 2 (-A enclave-deny -j REJECT --reject-with icmp-host-prohibited)")


def test_a_rule_the_evaluator_cannot_read_is_reported_as_unknown(monkeypatch):
    odd = "-A enclave-input -p tcp -m recent --rcheck --name x -j ACCEPT\n"
    tamper(monkeypatch, edit_v4({"db"}, SSH_RULE, SSH_RULE + odd, phases=(2,)))
    report = verify_stack(load_stack("evergreen"))
    kinds = {d.kind for d in report.differences}
    assert kinds == {"unknown"}
    assert "may or may not accept" in report.differences[0].message()


def test_redundant_rule_is_a_warning_unless_strict(monkeypatch, capsys):
    tamper(monkeypatch, edit_v4({"db"}, SSH_RULE, SSH_RULE + SSH_RULE, phases=(2,)))
    report = verify_stack(load_stack("evergreen"))
    assert report.ok() and not report.ok(strict=True)
    [group] = [g for g in report.findings if g.findings]
    assert [f.describe() for f in group.findings] == [
        f"filter/enclave-input rule 5 ({SSH_RULE.strip()}) is redundant (has no effect): "
        f"covered by rule 4 ({SSH_RULE.strip()})"]
    assert cli.main(["verify", "--stack", "evergreen"]) == 0
    assert "warning: role db (db-1 and 0 more): ipv4 filter/enclave-input rule 5" in capsys.readouterr().out
    assert cli.main(["verify", "--stack", "evergreen", "--strict"]) == 1
    capsys.readouterr()
    assert cli.main(["verify", "--stack", "evergreen", "--strict", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is False and data["differences"] == []
    assert data["findings"][0]["findings"][0]["kind"] == "redundant"


def test_json_output(monkeypatch, capsys):
    extra = "-A enclave-input -i eth0 -p tcp -m tcp --dport 5432 -j ACCEPT\n"
    tamper(monkeypatch, edit_v4({"db"}, SSH_RULE, SSH_RULE + extra, phases=(2,)))
    assert cli.main(["verify", "--stack", "evergreen", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is False and data["sources"] == "every host"
    assert data["lockout"]["failures"] == []
    [first, *_] = data["differences"]
    assert first["dest"] == "db-1" and first["port"] == 5432 and first["interface"] == "eth0"
    assert first["intended"] == "deny" and first["actual"] == "ACCEPT" and first["kind"] == "allows"
    assert first["steps"][0]["rule"]["position"] == 5
    assert first["packet"].startswith("proto=tcp src=") and "dport=5432 in=eth0 state=NEW" in first["packet"]


SHADOW_SETS = parse_ipsets("create a hash:ip family inet\nadd a 10.0.0.5\nadd a 10.0.0.6\n"
                           "create big hash:net family inet\nadd big 10.0.0.0/24\n")

# (earlier rule, later rule, finding for the later rule or None)
SHADOW_CASES = [
    ("-p tcp -j ACCEPT", "-p tcp -m tcp --dport 22 -j ACCEPT", REDUNDANT),
    ("-p tcp -j ACCEPT", "-p tcp -m tcp --dport 22 -j DROP", SHADOWED),
    ("-p tcp -m tcp --dport 22 -j ACCEPT", "-p tcp -j DROP", None),
    ("-p tcp -m multiport --dports 20:30,80 -j DROP", "-p tcp -m tcp --dport 22:25 -j ACCEPT", SHADOWED),
    ("-p tcp -m multiport --dports 20:30,80 -j DROP", "-p tcp -m tcp --dport 25:35 -j ACCEPT", None),
    ("-p udp -m udp --dport 53 -j ACCEPT", "-p tcp -m tcp --dport 53 -j ACCEPT", None),
    ("-s 10.0.0.0/8 -j ACCEPT", "-s 10.1.0.0/16 -p tcp -j ACCEPT", REDUNDANT),
    ("-s 10.1.0.0/16 -j ACCEPT", "-s 10.0.0.0/8 -j ACCEPT", None),
    ("-s 10.0.0.0/24 -j DROP", "-m set --match-set a src -j ACCEPT", SHADOWED),
    ("-m set --match-set big src -j DROP", "-s 10.0.0.128/25 -j ACCEPT", SHADOWED),
    ("-m set --match-set a src -j DROP", "-s 10.0.0.0/24 -j ACCEPT", None),
    ("-m set --match-set a dst -j DROP", "-m set --match-set a src -j ACCEPT", None),
    ("! -s 10.0.0.0/24 -j DROP", "-s 192.0.2.0/24 -j ACCEPT", SHADOWED),
    ("-i eth+ -j DROP", "-i eth1 -p tcp -j ACCEPT", SHADOWED),
    ("-i eth1 -j DROP", "-i eth0 -j ACCEPT", None),
    ("! -i lo -j DROP", "-i eth0 -j ACCEPT", SHADOWED),
    ("-i eth1 -j DROP", "-p tcp -j ACCEPT", None),
    ("-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT", "-m conntrack --ctstate ESTABLISHED -j ACCEPT", REDUNDANT),
    ("-m conntrack --ctstate ESTABLISHED -j ACCEPT", "-p tcp -j ACCEPT", None),
    ("-m state --state NEW -j DROP", "-m conntrack --ctstate DNAT -j ACCEPT", None),
    ("-m limit --limit 5/min -j ACCEPT", "-p tcp -j ACCEPT", None),
    ("-m recent --rcheck --name x -j DROP", "-p tcp -j ACCEPT", None),
    ("-p tcp -j LOG", "-p tcp -m tcp --dport 22 -j ACCEPT", None),
    ("-p tcp -j REJECT --reject-with tcp-reset", "-p tcp -j REJECT", SHADOWED),
    ("-p tcp -j ACCEPT", "-p tcp -m tcp --dport 22 -j LOG", SHADOWED),
]


@pytest.mark.parametrize("earlier,later,expected", SHADOW_CASES)
def test_shadowed_and_redundant_rules(earlier, later, expected):
    text = f"*filter\n:INPUT DROP [0:0]\n-A INPUT {earlier}\n-A INPUT {later}\nCOMMIT\n"
    found = find_shadowed(parse_ruleset(text), SHADOW_SETS)
    assert [(f.kind, f.rule.position, f.by.position) for f in found] == ([(expected, 2, 1)] if expected else [])
