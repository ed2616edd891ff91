"""Evaluator tests: each match and target, negations, chain calls, policies, UNKNOWN, the CLI."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from enclave_cli import main as cli
from firewall.evaluate import compile_ruleset, evaluate
from firewall.ipsets import parse_ipsets
from firewall.packet import Packet, parse_packet
from firewall.parse import parse_ruleset

FIXTURES = Path(__file__).parent / "fixtures" / "iptables"
SETS = parse_ipsets("create app hash:ip family inet\nadd app 10.0.0.5\nadd app 10.0.0.6\n"
                    "create nets hash:net family inet\nadd nets 10.1.0.0/16\nadd nets 10.1.2.0/24 nomatch\n"
                    "create pairs hash:ip,port family inet\n")


def verdict_of(rules: str, spec: str, chain: str = "INPUT", policy: str = "DROP", ipsets=SETS):
    text = (f"*filter\n:INPUT {policy} [0:0]\n:FORWARD {policy} [0:0]\n:OUTPUT {policy} [0:0]\n"
            ":UC - [0:0]\n:UC2 - [0:0]\n" + "".join(line.strip() + "\n" for line in rules.strip().splitlines())
            + "COMMIT\n")
    return compile_ruleset(parse_ruleset(text), ipsets).verdict(parse_packet(spec), chain)


BASE = "proto=tcp src=10.0.0.5 dst=10.0.0.1 sport=40000 dport=22 in=eth1 state=NEW"


def spec(**changes) -> str:
    words = dict(word.split("=") for word in BASE.split())
    for key, value in changes.items():
        key = key.rstrip("_")
        if value is None:
            words.pop(key, None)
        else:
            words[key] = str(value)
    return " ".join(f"{k}={v}" for k, v in words.items())


# (rule, packet changes, expected verdict): the rule ends in -j ACCEPT unless it says otherwise;
# the policy is DROP, so ACCEPT means "the rule matched".
MATCH_CASES = [
    ("-s 10.0.0.0/24", {}, "ACCEPT"),
    ("-s 10.0.1.0/24", {}, "DROP"),
    ("! -s 10.0.1.0/24", {}, "ACCEPT"),
    ("! -s 10.0.0.5", {}, "DROP"),
    ("-s 10.0.0.9,10.0.0.5", {}, "ACCEPT"),
    ("-d 10.0.0.1/32", {}, "ACCEPT"),
    ("! -d 10.0.0.1/32", {}, "DROP"),
    ("-i eth1", {}, "ACCEPT"),
    ("-i eth0", {}, "DROP"),
    ("-i eth+", {}, "ACCEPT"),
    ("-i eth+", {"in_": "wlan0"}, "DROP"),
    ("! -i eth+", {"in_": "wlan0"}, "ACCEPT"),
    ("! -i eth1", {}, "DROP"),
    ("-o eth0", {"out": "eth0"}, "ACCEPT"),
    ("-p tcp", {}, "ACCEPT"),
    ("-p udp", {}, "DROP"),
    ("! -p udp", {}, "ACCEPT"),
    ("-p 6", {}, "ACCEPT"),
    ("-p all", {}, "ACCEPT"),
    ("-p gre", {"proto": 47, "dport": None, "sport": None}, "ACCEPT"),
    ("-p tcp --dport 22", {}, "ACCEPT"),
    ("-p tcp --dport 22", {"dport": 23}, "DROP"),
    ("-p tcp -m tcp ! --dport 22", {}, "DROP"),
    ("-p tcp -m tcp ! --dport 22", {"dport": 80}, "ACCEPT"),
    ("-p udp --dport 22", {}, "DROP"),
    ("-p tcp --dport 20:25", {}, "ACCEPT"),
    ("-p tcp --dport 23:25", {}, "DROP"),
    ("-p tcp --sport 1024:", {}, "ACCEPT"),
    ("-p tcp --sport :1023", {}, "DROP"),
    ("-p tcp -m multiport --dports 80,443,20:22", {}, "ACCEPT"),
    ("-p tcp -m multiport --dports 80,443", {}, "DROP"),
    ("-p tcp -m multiport ! --dports 80,443", {}, "ACCEPT"),
    ("-p tcp -m multiport --sports 40000", {}, "ACCEPT"),
    ("-p tcp -m multiport --ports 40000", {}, "ACCEPT"),
    ("-p tcp -m multiport --ports 22", {}, "ACCEPT"),
    ("-p tcp -m multiport --ports 23", {}, "DROP"),
    ("-m conntrack --ctstate NEW", {}, "ACCEPT"),
    ("-m conntrack --ctstate RELATED,ESTABLISHED", {}, "DROP"),
    ("-m conntrack --ctstate RELATED,ESTABLISHED", {"state": "ESTABLISHED"}, "ACCEPT"),
    ("-m conntrack ! --ctstate INVALID", {}, "ACCEPT"),
    ("-m conntrack ! --ctstate INVALID", {"state": "INVALID"}, "DROP"),
    ("-m conntrack --ctstate UNTRACKED", {"state": "UNTRACKED"}, "ACCEPT"),
    ("-m conntrack --ctstate DNAT", {"state": "NEW,DNAT"}, "ACCEPT"),
    ("-m conntrack --ctstate DNAT", {}, "DROP"),
    ("-m state --state NEW", {}, "ACCEPT"),
    ("-m state ! --state NEW", {}, "DROP"),
    ("-m state --state ESTABLISHED", {"state": "ESTABLISHED"}, "ACCEPT"),
    ("-m set --match-set app src", {}, "ACCEPT"),
    ("-m set --match-set app src", {"src": "10.0.0.7"}, "DROP"),
    ("-m set ! --match-set app src", {"src": "10.0.0.7"}, "ACCEPT"),
    ("-m set --match-set app dst", {}, "DROP"),
    ("-m set --match-set app dst", {"dst": "10.0.0.6"}, "ACCEPT"),
    ("-m set --match-set app src,dst", {}, "ACCEPT"),
    ("-m set --match-set nets src", {"src": "10.1.9.9"}, "ACCEPT"),
    ("-m set --match-set nets src", {"src": "10.1.2.9"}, "DROP"),  # nomatch hole
    ("-m set ! --match-set nets src", {"src": "10.1.2.9"}, "ACCEPT"),
    ("-p icmp -m icmp --icmp-type echo-request", {"proto": "icmp", "icmp": "echo-request"}, "ACCEPT"),
    ("-p icmp -m icmp --icmp-type 8", {"proto": "icmp", "icmp": "echo-request"}, "ACCEPT"),
    ("-p icmp -m icmp --icmp-type 8", {"proto": "icmp", "icmp": "echo-reply"}, "DROP"),
    ("-p icmp -m icmp --icmp-type 3/4", {"proto": "icmp", "type": 3, "code": 4}, "ACCEPT"),
    ("-p icmp -m icmp --icmp-type 3/4", {"proto": "icmp", "type": 3, "code": 3}, "DROP"),
    ("-p icmp -m icmp --icmp-type destination-unreachable", {"proto": "icmp", "icmp": "3/13"}, "ACCEPT"),
    ("-p icmp -m icmp --icmp-type any", {"proto": "icmp", "icmp": "timestamp-request"}, "ACCEPT"),
    ("-p icmp -m icmp ! --icmp-type echo-request", {"proto": "icmp", "icmp": "echo-reply"}, "ACCEPT"),
    ("-p tcp --syn", {}, "ACCEPT"),
    ("-p tcp --syn", {"state": "ESTABLISHED"}, "DROP"),
    ("-p tcp ! --syn", {"state": "ESTABLISHED"}, "ACCEPT"),
    ("-p tcp -m tcp --tcp-flags SYN,ACK SYN,ACK", {"flags": "SYN,ACK"}, "ACCEPT"),
    ("-p tcp -m tcp --tcp-flags ALL NONE", {"flags": "NONE"}, "ACCEPT"),
    ("-m limit --limit 1/hour --limit-burst 1", {}, "ACCEPT"),
    ("-m comment --comment \"allow all\"", {}, "ACCEPT"),
    ("-i eth1 -p tcp -m tcp --dport 22 -m conntrack --ctstate NEW -m set --match-set app src", {}, "ACCEPT"),
    ("-i eth1 -p tcp -m tcp --dport 22 -m conntrack --ctstate NEW -m set --match-set app src",
     {"in_": "eth0"}, "DROP"),
]


@pytest.mark.parametrize("rule, changes, expected", MATCH_CASES)
def test_each_match(rule, changes, expected):
    if "-j " not in rule:
        rule += " -j ACCEPT"
    result = verdict_of(f"-A INPUT {rule}", spec(**changes))
    assert result.verdict == expected, result.reason
    assert (result.rule is not None) == (expected == "ACCEPT")


def test_icmpv6():
    text = ("*filter\n:INPUT DROP [0:0]\n-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type neighbour-solicitation "
            "-j ACCEPT\n-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 1/3 -j ACCEPT\nCOMMIT\n")
    evaluator = compile_ruleset(parse_ruleset(text))
    base = "proto=ipv6-icmp src=fe80::1 dst=fe80::2 in=eth1"
    assert evaluator.verdict(parse_packet(base + " icmp=135")).verdict == "ACCEPT"
    assert evaluator.verdict(parse_packet(base + " type=1 code=3")).verdict == "ACCEPT"
    assert evaluator.verdict(parse_packet(base + " icmp=echo-request")).verdict == "DROP"


# (rules, chain, packet changes, expected verdict, deciding chain/position or None for policy)
FLOW_CASES = [
    ("-j ACCEPT", "INPUT", {}, "ACCEPT", ("INPUT", 1)),
    ("-j DROP", "INPUT", {}, "DROP", ("INPUT", 1)),
    ("-j REJECT", "INPUT", {}, "REJECT", ("INPUT", 1)),
    ("-p udp -j ACCEPT", "INPUT", {}, "DROP", None),
    ("-j LOG --log-prefix \"x: \"\n-j ACCEPT", "INPUT", {}, "ACCEPT", ("INPUT", 2)),
    ("-j RETURN\n-j ACCEPT", "INPUT", {}, "DROP", None),  # RETURN in a built-in chain: policy
    ("-j UC\n-j DROP\n-A UC -j ACCEPT", "INPUT", {}, "ACCEPT", ("UC", 1)),
    ("-j UC\n-j REJECT\n-A UC -p udp -j ACCEPT", "INPUT", {}, "REJECT", ("INPUT", 2)),  # falls through
    ("-j UC\n-j REJECT\n-A UC -j RETURN\n-A UC -j ACCEPT", "INPUT", {}, "REJECT", ("INPUT", 2)),
    ("-j UC\n-j ACCEPT\n-A UC -g UC2\n-A UC -j DROP\n-A UC2 -j RETURN", "INPUT", {}, "ACCEPT", ("INPUT", 2)),
    ("-g UC\n-j ACCEPT\n-A UC -j RETURN", "INPUT", {}, "DROP", None),  # goto from built-in: policy
    ("-g UC\n-j ACCEPT\n-A UC -p udp -j DROP", "INPUT", {}, "DROP", None),
    ("-j UC\n-j ACCEPT\n-A UC -j UC2\n-A UC -j DROP\n-A UC2 -j RETURN", "INPUT", {}, "DROP", ("UC", 2)),
    ("-p tcp -j REJECT --reject-with tcp-reset", "INPUT", {}, "REJECT", ("INPUT", 1)),
    ("-o eth0 -j ACCEPT", "OUTPUT", {"in_": None, "out": "eth0"}, "ACCEPT", ("OUTPUT", 1)),
    ("-i eth1 -o eth0 -j ACCEPT", "FORWARD", {"out": "eth0"}, "ACCEPT", ("FORWARD", 1)),
]


@pytest.mark.parametrize("rules, chain, changes, expected, where", FLOW_CASES)
def test_chain_flow(rules, chain, changes, expected, where):
    lines = [line if line.startswith("-A ") else f"-A {chain} {line}" for line in rules.splitlines()]
    result = verdict_of("\n".join(lines), spec(**changes), chain=chain)
    assert result.verdict == expected, result.reason
    assert ((result.rule.chain, result.rule.position) if result.rule else None) == where


def test_policy_accept_and_reason_texts():
    result = verdict_of("-A INPUT -p udp -j DROP", spec(), policy="ACCEPT")
    assert (result.verdict, result.rule, result.reason) == ("ACCEPT", None, "policy ACCEPT of INPUT")
    result = verdict_of("-A INPUT -i eth1 -p tcp -m tcp --dport 22 -j ACCEPT", spec())
    assert result.reason == "INPUT rule 1: -A INPUT -i eth1 -p tcp -m tcp --dport 22 -j ACCEPT"


def test_trace_lists_matched_rules_including_log_and_jumps():
    result = verdict_of("-A INPUT -j LOG\n-A INPUT -j UC\n-A UC -p udp -j DROP\n-A UC -j LOG\n"
                        "-A INPUT -j REJECT --reject-with icmp-host-prohibited", spec())
    assert [(r.chain, r.position) for r in result.trace] == [("INPUT", 1), ("INPUT", 2), ("UC", 2), ("INPUT", 3)]
    assert result.reject_with == "icmp-host-prohibited"


def test_nat_and_ct_targets_in_filter_continue_with_a_note():
    result = verdict_of("-A INPUT -j DNAT --to-destination 10.0.0.9\n-A INPUT -j ACCEPT", spec())
    assert result.verdict == "ACCEPT"
    assert result.notes == ("INPUT rule 1: -A INPUT -j DNAT --to-destination 10.0.0.9: DNAT has no effect "
                            "in the filter table",)


def test_nat_table_dnat_terminates():
    rules = parse_ruleset((FIXTURES / "kernel-1.8.9.rules").read_text())
    result = evaluate(rules, parse_packet("proto=tcp src=192.0.2.1 dst=10.0.0.1 dport=80 in=eth0"),
                      "PREROUTING", table="nat")
    assert (result.verdict, result.rule.position) == ("ACCEPT", 1)


# ---- UNKNOWN ---------------------------------------------------------------------------------

@pytest.mark.parametrize("rules, changes, expected, reason_part", [
    ("-m physdev --physdev-in vif1.0 -j ACCEPT", {}, "UNKNOWN", "match module 'physdev' not understood"),
    ("-m physdev --physdev-in vif1.0 -j DROP", {}, "DROP", None),  # same verdict either way
    ("-p udp -m physdev --physdev-in vif1.0 -j ACCEPT", {}, "DROP", None),  # cannot match anyway
    ("-m physdev --physdev-in vif1.0 -j LOG\n-j ACCEPT", {}, "ACCEPT", None),  # LOG: no effect
    ("-m physdev --physdev-in vif1.0 -j UC\n-j ACCEPT\n-A UC -j DROP", {}, "UNKNOWN", "physdev"),
    ("-m physdev --physdev-in vif1.0 -j UC\n-j ACCEPT\n-A UC -j LOG", {}, "ACCEPT", None),
    ("-j NFQUEUE --queue-num 1", {}, "UNKNOWN", "target NFQUEUE not understood"),
    ("-p udp -j NFQUEUE", {}, "DROP", None),
    ("-m set --match-set missing src -j ACCEPT", {}, "UNKNOWN", "set missing is not defined"),
    ("-m set --match-set pairs src -j ACCEPT", {}, "UNKNOWN", "set type hash:ip,port not understood"),
    ("-i eth1 -j ACCEPT", {"in_": None}, "UNKNOWN", "the packet lacks the field that `-i eth1` tests"),
    ("-p tcp --dport 22 -j ACCEPT", {"dport": None}, "UNKNOWN", "--dport 22"),
    ("-p tcp --dport 22 -j ACCEPT", {"dport": None, "proto": "udp"}, "DROP", None),
    ("-s 10.0.0.0/255.0.255.0 -j ACCEPT", {}, "UNKNOWN", "not a literal address/mask"),
])
def test_unknown_only_where_it_could_decide(rules, changes, expected, reason_part):
    lines = [line if line.startswith("-A ") else f"-A INPUT {line}" for line in rules.splitlines()]
    result = verdict_of("\n".join(lines), spec(**changes))
    assert result.verdict == expected, result.reason
    if reason_part:
        assert reason_part in result.reason
        assert result.unknown
        assert result.rule is not None


def test_seed_xen_forward_is_unknown_but_input_is_decided():
    evaluator = compile_ruleset(parse_ruleset((FIXTURES / "xen-1.4.3.rules").read_text()))
    forward = evaluator.verdict(parse_packet("proto=tcp src=192.0.2.9 dst=10.0.0.1 dport=80 in=eth0 out=eth0"),
                                "FORWARD")
    assert forward.verdict == "UNKNOWN"
    assert {item.text for item in forward.unknown} >= {"-m physdev --physdev-in vif2.0"}
    ssh = evaluator.verdict(parse_packet("proto=tcp src=192.0.2.9 dst=10.0.0.1 dport=22 in=eth0"), "INPUT")
    assert (ssh.verdict, ssh.rule.chain, ssh.rule.position) == ("ACCEPT", "Xen-INPUT", 4)
    web = evaluator.verdict(parse_packet("proto=tcp src=192.0.2.9 dst=10.0.0.1 dport=80 in=eth0"), "INPUT")
    assert (web.verdict, web.reject_with) == ("REJECT", "icmp-host-prohibited")


def test_errors_family_chain_and_loops():
    evaluator = compile_ruleset(parse_ruleset("*filter\n:INPUT DROP [0:0]\nCOMMIT\n"))
    with pytest.raises(ValueError, match="packet is ipv6 but the ruleset is ipv4"):
        evaluator.verdict(parse_packet("src=2001:db8::1"))
    with pytest.raises(ValueError, match="PREROUTING is not a built-in chain of table filter"):
        evaluator.verdict(parse_packet("src=10.0.0.1"), "PREROUTING")
    looped = parse_ruleset("*filter\n:A - [0:0]\n:B - [0:0]\n-A A -j B\n-A B -j A\nCOMMIT\n")
    with pytest.raises(ValueError, match="chain loop: A -> B -> A"):
        compile_ruleset(looped)


def test_fast_enough_for_a_stack_verification():
    """A stack verification calls verdict() ~100k times: keep a rough budget on 30k calls."""
    rules = parse_ruleset((FIXTURES / "kernel-1.8.9.rules").read_text())
    evaluator = compile_ruleset(rules, parse_ipsets((FIXTURES / "kernel-1.8.9.ipsets").read_text()))
    packets = [Packet(proto=proto, src=f"192.0.2.{i % 250 + 1}", dst="10.1.1.1", sport=1024 + i,
                      dport=port, in_iface="eth1")
               for i, (proto, port) in enumerate([(6, 22), (17, 53), (6, 80)] * 10000)]
    started = time.perf_counter()
    results = [evaluator.verdict(packet, "INPUT") for packet in packets]
    elapsed = time.perf_counter() - started
    assert {r.verdict for r in results} <= {"ACCEPT", "DROP", "REJECT", "UNKNOWN"}
    assert elapsed < 6.0, f"{len(packets)} verdicts took {elapsed:.2f}s"


# ---- the command -----------------------------------------------------------------------------

@pytest.fixture
def files(tmp_path):
    rules = tmp_path / "rules.v4"
    rules.write_text("*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n"
                     "-A INPUT -i lo -j ACCEPT\n"
                     "-A INPUT -i eth1 -p tcp -m tcp --dport 3306 -m set --match-set app src -j ACCEPT\n"
                     "-A INPUT -m physdev --physdev-in vif0 -j ACCEPT\nCOMMIT\n")
    sets = tmp_path / "ipsets"
    sets.write_text("create app hash:ip family inet\nadd app 10.0.0.5\n")
    return str(rules), str(sets)


def test_cli_text_and_json(files, capsys):
    rules, sets = files
    code = cli.main(["evaluate", "--rules", rules, "--ipsets", sets, "--chain", "INPUT", "--packet",
                     "proto=tcp src=10.0.0.5 dst=10.0.0.1 dport=3306 in=eth1 state=NEW"])
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("ACCEPT: INPUT rule 2: -A INPUT -i eth1 -p tcp")
    code = cli.main(["evaluate", "--rules", rules, "--ipsets", sets, "--json", "--packet",
                     "proto=tcp src=10.0.0.7 dst=10.0.0.1 dport=3306 in=eth1"])
    answer = json.loads(capsys.readouterr().out)
    assert code == 0
    assert answer["verdict"] == "UNKNOWN"
    assert answer["rule"] == {"table": "filter", "chain": "INPUT", "position": 3,
                              "text": "-A INPUT -m physdev --physdev-in vif0 -j ACCEPT"}
    assert answer["not_understood"] == ["filter INPUT rule 3: -m physdev --physdev-in vif0 "
                                        "(match module 'physdev' not understood)"]
    cli.main(["evaluate", "--rules", rules, "--ipsets", sets, "--json", "--packet",
              "proto=udp src=10.0.0.7 dst=10.0.0.1 dport=53 in=eth1"])
    answer = json.loads(capsys.readouterr().out)
    assert (answer["verdict"], answer["rule"], answer["reason"]) == ("UNKNOWN", answer["rule"], answer["reason"])


def test_cli_unknown_lists_not_understood_lines(files, capsys):
    rules, sets = files
    assert cli.main(["evaluate", "--rules", rules, "--ipsets", sets, "--packet",
                     "proto=tcp src=10.0.0.7 dst=10.0.0.1 dport=80 in=eth1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("UNKNOWN: INPUT rule 3")
    assert "  filter INPUT rule 3: -m physdev --physdev-in vif0 (match module 'physdev' not understood)" in out


@pytest.mark.parametrize("argv, message", [
    (["--packet", "proto=tcp dport=70000"], "enclave evaluate: --packet: dport=70000: port must be 0-65535"),
    (["--packet", "proto=tcp colour=red"], "enclave evaluate: --packet: 'colour=red': unknown key 'colour'"),
    (["--packet", "proto=tcp", "--chain", "NOPE"], "NOPE is not a built-in chain of table filter"),
    (["--packet", "src=2001:db8::1"], "packet is ipv6 but the ruleset is ipv4"),
    (["--packet", "proto=tcp", "--table", "nat"], "has no table 'nat'"),
    (["--packet", "proto=tcp", "--ipsets", "/nonexistent/sets"],
     "cannot read /nonexistent/sets: No such file or directory"),
])
def test_cli_bad_input_exits_2_with_one_line(files, capsys, argv, message):
    rules, _ = files
    assert cli.main(["evaluate", "--rules", rules] + argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_cli_unreadable_and_unparsable_rules(tmp_path, capsys):
    assert cli.main(["evaluate", "--rules", str(tmp_path / "none"), "--packet", "proto=tcp"]) == 2
    assert "cannot read" in capsys.readouterr().err
    bad = tmp_path / "bad.rules"
    bad.write_text("*filter\nthis is prose\nCOMMIT\n")
    assert cli.main(["evaluate", "--rules", str(bad), "--packet", "proto=tcp"]) == 2
    assert f"{bad}:2: not iptables-save syntax: this is prose" in capsys.readouterr().err
