"""`enclave audit`: the generated rules as "live" are the policy; every tampering shows up as the
exact packets it lets through or stops, with the deciding live rule and a reproducible packet."""
from __future__ import annotations

import json
import shlex

import pytest

from enclave_cli import main as cli
from firewall.audit import audit_host, audit_message
from firewall.compile import Compiler
from firewall.verify import parse_host_rules
from topology.load import available_stacks, load_stack

DENY_JUMP = "-A enclave-input -j enclave-deny\n"


def generated(stack_name: str, host: str):
    stack = load_stack(stack_name)
    return stack, Compiler(stack).host(host)


def audit(stack, host, v4, v6, sets):
    return audit_host(stack, host, parse_host_rules(f"live {host}", v4, v6, sets))


def facts(report):
    return {(d.kind, d.expectation.probe.source.name, d.expectation.probe.interface,
             d.expectation.probe.proto, d.expectation.probe.port, d.packet.sport) for d in report.differences}


@pytest.mark.parametrize("name", available_stacks())
def test_generated_rules_as_live_are_the_policy(name):
    stack = load_stack(name)
    compiler = Compiler(stack)
    for host in stack.hosts:
        fw = compiler.host(host.name)
        report = audit(stack, host.name, fw.rules_v4, fw.rules_v6, fw.ipsets)
        assert report.same, [d.message() for d in report.differences]
        assert report.matrix_probes > 40 and report.derived_probes > 20


def test_extra_rule_on_a_port_the_matrix_does_not_sample():
    stack, fw = generated("wordpress", "mysql-1")
    extra = "-A enclave-input -i eth1 -p tcp -m tcp --dport 3307 -j ACCEPT\n"
    report = audit(stack, "mysql-1", fw.rules_v4.replace(DENY_JUMP, extra + DENY_JUMP), fw.rules_v6, fw.ipsets)
    assert report.denies == () and report.unknown == ()
    assert facts(report) == {("allows", source, "eth1", "tcp", 3307, 40000)
                             for source in ("tunnel-1", "lb-1", "wordpress-1", "wordpress-2", "mysql-2",
                                            "tenant", "internet", "admin")}
    assert {d.outcome.steps[0].verdict.rule.text for d in report.allows} == {extra.strip()}
    assert "mysql-1 accepts tcp/3307 from internet on eth1: enclave-input rule 7 " \
           "(-A enclave-input -i eth1 -p tcp -m tcp --dport 3307 -j ACCEPT)" in [d.message() for d in report.allows]


def test_missing_set_member_is_exactly_one_refused_flow():
    stack, fw = generated("wordpress", "mysql-1")
    wordpress_2 = stack.host("wordpress-2").private_ip
    sets = fw.ipsets.replace(f"add enclave-wordpress {wordpress_2}\n", "")
    assert sets != fw.ipsets
    report = audit(stack, "mysql-1", fw.rules_v4, fw.rules_v6, sets)
    assert facts(report) == {("denies", "wordpress-2", "eth1", "tcp", 3306, 40000)}
    [difference] = report.differences
    assert difference.message() == ("mysql-1 drops tcp/3306 from wordpress-2 on eth1, intended by enclave:flows[3] "
                                    "(wordpress -> mysql tcp/3306 via eth1): enclave-deny rule 2 (-A enclave-deny -j DROP)")


def test_extra_set_member_and_source_network_are_probed():
    stack, fw = generated("evergreen", "db-1")
    stranger = "10.40.0.200"
    sets = fw.ipsets.replace("create enclave-app hash:ip family inet hashsize 1024 maxelem 65536\n",
                             f"create enclave-app hash:ip family inet hashsize 1024 maxelem 65536\nadd enclave-app {stranger}\n")
    assert sets != fw.ipsets
    extra = "-A enclave-input -s 198.51.100.0/24 -i eth0 -p tcp -m tcp --dport 6000:6010 -j ACCEPT\n"
    report = audit(stack, "db-1", fw.rules_v4.replace(DENY_JUMP, extra + DENY_JUMP), fw.rules_v6, sets)
    found = facts(report)
    assert ("allows", f"vpc:{stranger}", "eth1", "tcp", 5432, 40000) in found
    assert ("allows", "net:198.51.100.1", "eth0", "tcp", 6000, 40000) in found
    assert ("allows", "net:198.51.100.254", "eth0", "tcp", 6010, 40000) in found
    assert not any(port in (5999, 6011) for _, _, _, _, port, _ in found)
    assert report.denies == ()


def test_source_port_hole_is_found_with_its_source_port():
    stack, fw = generated("evergreen", "db-1")
    hole = "-A enclave-input -p udp -m udp --sport 53 -j ACCEPT\n"
    report = audit(stack, "db-1", fw.rules_v4.replace(DENY_JUMP, hole + DENY_JUMP), fw.rules_v6, fw.ipsets)
    assert report.allows and all(d.packet.sport == 53 and d.packet.proto == 17 for d in report.allows)
    assert "(source port 53)" in audit_message(report.allows[0])


def test_rules_without_ipsets_are_unknown_not_guessed():
    stack, fw = generated("evergreen", "db-1")
    report = audit(stack, "db-1", fw.rules_v4, fw.rules_v6, None)
    assert report.unknown and not report.allows
    assert "no ipsets given" in report.unknown[0].outcome.steps[0].verdict.reason


def test_gateway_with_wrong_dnat_target_and_without_nat_table():
    stack, fw = generated("amanda", "gateway-1")
    tapeserver, client = stack.host("tapeserver-1").private_ip, stack.host("client-1").private_ip
    wrong = fw.rules_v4.replace(f"--to-destination {tapeserver}", f"--to-destination {client}")
    report = audit(stack, "gateway-1", wrong, fw.rules_v6, fw.ipsets)
    assert [d.expectation.probe.port for d in report.denies] == [50000, 50100]
    assert all(" to client-1 (port forward to tapeserver), which drops it" in d.message() for d in report.denies)
    start, end = fw.rules_v4.index("*nat"), fw.rules_v4.index("COMMIT", fw.rules_v4.index("*nat")) + len("COMMIT\n")
    report = audit(stack, "gateway-1", fw.rules_v4[:start] + fw.rules_v4[end:], fw.rules_v6, fw.ipsets)
    verdicts = {(d.expectation.probe.kind, d.outcome.verdict) for d in report.differences}
    assert verdicts == {("dnat", "NO-DNAT")}  # amanda's workers are not private-only: no forward-out probes
    assert "no nat table" in report.differences[0].message()


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_cli_same_different_and_reproducible_example(tmp_path, capsys):
    stack, fw = generated("wordpress", "mysql-1")
    sets = write(tmp_path, "sets", fw.ipsets)
    v6 = write(tmp_path, "v6", fw.rules_v6)
    same = write(tmp_path, "same", fw.rules_v4)
    assert cli.main(["audit", "--stack", "wordpress", "--host", "mysql-1", "--rules", same,
                     "--rules6", v6, "--ipsets", sets]) == 0
    assert capsys.readouterr().out.strip().endswith("SAME as the intended policy")
    extra = "-A enclave-input -p tcp -m tcp --dport 3306 -j ACCEPT\n"
    live = write(tmp_path, "live", fw.rules_v4.replace(DENY_JUMP, extra + DENY_JUMP))
    assert cli.main(["audit", "--stack", "wordpress", "--host", "mysql-1", "--rules", live,
                     "--rules6", v6, "--ipsets", sets]) == 1
    out = capsys.readouterr().out
    assert "allows but should not (" in out and "should allow but does not" not in out
    command = next(line.strip() for line in out.splitlines() if line.strip().startswith("enclave evaluate"))
    assert cli.main(shlex.split(command)[1:]) == 0
    assert capsys.readouterr().out.startswith("ACCEPT: enclave-input rule 7")
    assert cli.main(["audit", "--stack", "wordpress", "--host", "mysql-1", "--rules", live,
                     "--ipsets", sets, "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["same"] is False and data["should_allow_but_does_not"] == []
    assert data["notes"] == ["IPv6 not audited: no ip6tables dump given"]
    first = data["allows_but_should_not"][0]
    assert first["example"]["chain"] == "INPUT" and "dport=3306" in first["example"]["packet"]
    assert first["steps"][0]["rule"]["text"] == extra.strip()


@pytest.mark.parametrize("argv,message", [
    (["--host", "mysql-9"], "no host 'mysql-9' in stack wordpress"),
    (["--rules", "/nonexistent/live"], "cannot read /nonexistent/live"),
    (["--rules", "GARBAGE"], "cannot parse"),
    (["--rules", "V6"], "looks like ip6tables-save output"),
    (["--ipsets", "GARBAGE"], "cannot parse"),
])
def test_cli_input_errors_exit_2(tmp_path, capsys, argv, message):
    stack, fw = generated("wordpress", "mysql-1")
    files = {"GARBAGE": write(tmp_path, "garbage", "this is not a dump\n"),
             "V6": write(tmp_path, "v6", fw.rules_v6)}
    args = {"--host": "mysql-1", "--rules": write(tmp_path, "v4", fw.rules_v4)}
    args.update({key: files.get(value, value) for key, value in zip(argv[::2], argv[1::2])})
    flat = [word for pair in args.items() for word in pair]
    assert cli.main(["audit", "--stack", "wordpress", *flat]) == 2
    assert message in capsys.readouterr().err


def test_gateway_without_nat_table_leaves_workers_unmasqueraded():
    stack, fw = generated("gateway", "gateway-1")
    start = fw.rules_v4.index("*nat")
    end = fw.rules_v4.index("COMMIT\n", start) + len("COMMIT\n")
    report = audit(stack, "gateway-1", fw.rules_v4[:start] + fw.rules_v4[end:], fw.rules_v6, fw.ipsets)
    assert {(d.expectation.probe.source.name, d.expectation.probe.port, d.outcome.verdict)
            for d in report.differences} == {(w, port, "NO-SNAT") for w in ("worker-1", "worker-2")
                                             for port in (80, 443, 53)}
