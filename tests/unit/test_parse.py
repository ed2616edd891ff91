"""Parser tests: iptables-save (1.4 and 1.8, v4 and v6), hand-written files, ipset files, packets."""
from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from firewall.ipsets import membership, parse_ipsets
from firewall.packet import Packet, PacketError, parse_packet
from firewall.parse import extract_rules_text, parse_ruleset
from firewall.ruleset import IPV4, IPV6, ParseError

FIXTURES = Path(__file__).parent / "fixtures" / "iptables"
SEEDS = Path(__file__).resolve().parents[3] / "shared" / "seeds"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def one_rule(fragment: str, family: str = IPV4, chain: str = "INPUT"):
    text = f"*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:UC - [0:0]\n" \
           f"-A {chain} {fragment}\nCOMMIT\n"
    return parse_ruleset(text, family=family).table("filter").chain(chain).rules[0]


# ---- whole files ----------------------------------------------------------------------------

def test_kernel_dump_tables_chains_policies():
    rules = parse_ruleset(fixture("kernel-1.8.9.rules"))
    assert rules.family == IPV4
    assert [t.name for t in rules.tables] == ["raw", "filter", "nat"]
    filt = rules.table("filter")
    assert [(c.name, c.policy) for c in filt.chains] == [
        ("INPUT", "DROP"), ("FORWARD", "ACCEPT"), ("OUTPUT", "ACCEPT"), ("UC", None)]
    assert len(filt.chain("INPUT").rules) == 23
    assert filt.chain("INPUT").rules[6].target.kind == "goto"
    assert filt.chain("INPUT").rules[5].target.kind == "jump"
    raw = rules.table("raw").chain("PREROUTING").rules
    assert raw[0].text == "-A PREROUTING -p udp -m udp --dport 53 -j CT --notrack"  # counters gone
    assert raw[0].target.kind == "ct"
    assert [r.target.name for r in rules.table("nat").chain("POSTROUTING").rules] == ["MASQUERADE", "SNAT"]


def test_kernel_dump_not_understood_is_reported_with_place_and_reason():
    found = {(n.chain, n.position, n.text, n.reason)
             for n in parse_ruleset(fixture("kernel-1.8.9.rules")).not_understood}
    assert found == {
        ("INPUT", 17, "-m physdev --physdev-in vif2.0", "match module 'physdev' not understood"),
        ("INPUT", 18, "--tcp-option 5", "option --tcp-option of match tcp not understood"),
        ("INPUT", 20, "-s 10.0.0.0/255.0.255.0",
         "address '10.0.0.0/255.0.255.0' not understood (not a literal address/mask)"),
    }


def test_ip6tables_dump():
    rules = parse_ruleset(fixture("kernel-1.8.9.ip6.rules"))
    assert rules.family == IPV6
    first, second, third = rules.table("filter").chain("INPUT").rules
    assert first.matches[1].value == (58, 135, 0, 255)
    assert second.matches[1].value == (58, 1, 3, 3)
    assert third.matches[0].value == (ipaddress.ip_network("2001:db8::/32"),)
    assert third.target.option("--reject-with") == "icmp6-adm-prohibited"
    assert rules.not_understood == ()


def test_iptables_1_4_dump_with_counters_and_physdev():
    rules = parse_ruleset(fixture("xen-1.4.3.rules"))
    assert rules.table("nat").chain("PREROUTING").policy == "ACCEPT"
    filt = rules.table("filter")
    assert [c.name for c in filt.chains] == ["INPUT", "FORWARD", "OUTPUT", "Xen-FORWARD", "Xen-INPUT"]
    assert len(filt.chain("Xen-INPUT").rules) == 6
    assert {n.text for n in rules.not_understood} == {
        "-m physdev --physdev-out vif2.0", "-m physdev --physdev-in vif2.0",
        "-m physdev --physdev-out vif1.0", "-m physdev --physdev-in vif1.0",
        "-m physdev --physdev-in peth0"}


def test_hand_written_file_without_header_and_with_trailing_comments():
    rules = parse_ruleset(fixture("evergreen-handwritten.rules"))
    chain = rules.table("filter").chain("INPUT")
    assert chain.policy == "ACCEPT" and len(chain.rules) == 4
    assert chain.rules[0].text == "-A INPUT -s <oils_server> -p tcp -m tcp --dport 5432 -j ACCEPT"
    assert chain.rules[2].not_understood() == ()
    reasons = [n.reason for n in rules.not_understood]
    assert "address '<oils_server>' not understood (not a literal address/mask)" in reasons
    assert "unknown port 'xx'" in reasons
    assert any("assuming *filter" in note for note in rules.notes)


@pytest.mark.parametrize("seed, rules_expected", [("004_b3855fef66bc36d7.txt", 14),
                                                   ("000_f5695c92935e372b.txt", 7)])
def test_seed_documents_parse_after_extraction(seed, rules_expected):
    path = SEEDS / seed
    if not path.exists():
        pytest.skip("seed documents not present")
    document = path.read_text()
    rules = parse_ruleset(extract_rules_text(document), source=seed)
    total = sum(len(c.rules) for c in rules.table("filter").chains)
    assert total == rules_expected
    line = rules.table("filter").chains[0].rules[0].line
    assert document.splitlines()[line - 1].strip().startswith("-A")  # line numbers still point in


def test_prose_is_a_parse_error_with_line_numbers_not_a_traceback():
    with pytest.raises(ParseError) as caught:
        parse_ruleset("*filter\n:INPUT ACCEPT [0:0]\nhello world\n-A INPUT -j ACCEPT\nCOMMIT\nCOMMIT\n",
                      source="f.rules")
    assert caught.value.problems == ((3, "not iptables-save syntax: hello world"),
                                     (6, "COMMIT outside a table"))
    assert "f.rules:3: not iptables-save syntax" in str(caught.value)


@pytest.mark.parametrize("text, line, message", [
    ("*bogus\nCOMMIT\n", 1, "unknown table 'bogus'"),
    (":INPUT ACCEPT [0:0]\n", 1, "chain declared outside a table"),
    ("*filter\n:INPUT REJECT [0:0]\nCOMMIT\n", 2, "policy of built-in chain INPUT must be ACCEPT or DROP, not REJECT"),
    ("*filter\n:UC ACCEPT [0:0]\nCOMMIT\n", 2, "user chain UC cannot have policy ACCEPT"),
    ("*filter\n-A NOPE -j ACCEPT\nCOMMIT\n", 2, "chain NOPE does not exist in table filter"),
    ("*filter\n-A INPUT -g NOPE\nCOMMIT\n", None, None),
    ("*filter\n-A INPUT -j ACCEPT 'unclosed\nCOMMIT\n", 2, "cannot split line: No closing quotation"),
])
def test_bad_lines(text, line, message):
    if line is None:  # goto to a missing chain: kept, not understood
        rules = parse_ruleset(text)
        assert rules.not_understood[0].reason == "goto to NOPE, which is not a user chain"
        return
    with pytest.raises(ParseError) as caught:
        parse_ruleset(text)
    assert caught.value.problems[0] == (line, message)


# ---- one rule at a time ----------------------------------------------------------------------

NET = ipaddress.ip_network


@pytest.mark.parametrize("fragment, kind, negated, value", [
    ("-s 10.0.0.0/8", "src", False, (NET("10.0.0.0/8"),)),
    ("! -s 10.0.0.1/32", "src", True, (NET("10.0.0.1/32"),)),
    ("-s ! 10.0.0.1", "src", True, (NET("10.0.0.1/32"),)),  # iptables 1.4 negation form
    ("-s 10.0.0.5/24", "src", False, (NET("10.0.0.0/24"),)),
    ("-s 10.0.0.1,10.0.0.2", "src", False, (NET("10.0.0.1/32"), NET("10.0.0.2/32"))),
    ("-d 10.1.0.0/255.255.0.0", "dst", False, (NET("10.1.0.0/16"),)),
    ("! -d 192.0.2.1", "dst", True, (NET("192.0.2.1/32"),)),
    ("-i eth1", "in", False, ("eth1",)),
    ("! -i eth+", "in", True, ("eth+",)),
    ("-o eth0", "out", False, ("eth0",)),
    ("-p tcp", "proto", False, (6,)),
    ("-p 17", "proto", False, (17,)),
    ("! -p icmp", "proto", True, (1,)),
    ("-p all", "proto", False, (0,)),
    ("-p tcp --dport 22", "dport", False, (6, ((22, 22),))),
    ("-p tcp -m tcp --sport 1024:", "sport", False, (6, ((1024, 65535),))),
    ("-p udp -m udp ! --dport :1023", "dport", True, (17, ((0, 1023),))),
    ("-p udp -m udp --dport ! 53", "dport", True, (17, ((53, 53),))),
    ("-p tcp --dport ssh", "dport", False, (6, ((22, 22),))),
    ("-p tcp -m multiport --dports 80,443,8000:8080", "dport", False, (6, ((80, 80), (443, 443), (8000, 8080)))),
    ("-p udp -m multiport ! --sports 53,123", "sport", True, (17, ((53, 53), (123, 123)))),
    ("-m multiport --ports 5,6 -p tcp", "ports", False, (6, ((5, 5), (6, 6)))),
    ("-m conntrack --ctstate RELATED,ESTABLISHED", "ctstate", False, ("ESTABLISHED", "RELATED")),
    ("-m conntrack ! --ctstate NEW", "ctstate", True, ("NEW",)),
    ("-m conntrack --ctstate DNAT", "ctstate", False, ("DNAT",)),
    ("-m state --state NEW", "state", False, ("NEW",)),
    ("-m state ! --state INVALID", "state", True, ("INVALID",)),
    ("-m set --match-set app src", "set", False, ("app", ("src",))),
    ("-m set ! --match-set app dst", "set", True, ("app", ("dst",))),
    ("-p icmp -m icmp --icmp-type echo-request", "icmp", False, (1, 8, 0, 255)),
    ("-p icmp --icmp-type 3/4", "icmp", False, (1, 3, 4, 4)),
    ("-p icmp -m icmp --icmp-type port-unreachable", "icmp", False, (1, 3, 3, 3)),
    ("-p icmp -m icmp ! --icmp-type any", "icmp", True, (1, -1, 0, 255)),
    ("-p tcp --syn", "tcpflags", False, (0x17, 0x02)),
    ("-p tcp -m tcp ! --tcp-flags SYN,ACK SYN", "tcpflags", True, (0x12, 0x02)),
    ("-m limit --limit 5/min", "limit", False, ("5/min",)),
    ("-m comment --comment \"two words\"", "comment", False, ("two words",)),
])
def test_matches(fragment, kind, negated, value):
    rule = one_rule(f"{fragment} -j ACCEPT")
    match = [m for m in rule.matches if m.kind != "proto" or kind == "proto"][-1]
    assert (match.kind, match.negated, match.value) == (kind, negated, value)
    assert rule.not_understood() == ()


@pytest.mark.parametrize("fragment, value", [
    ("-p ipv6-icmp -m icmp6 --icmpv6-type neighbour-solicitation", (58, 135, 0, 255)),
    ("-p icmpv6 --icmpv6-type 1/3", (58, 1, 3, 3)),
    ("-p ipv6-icmp -m icmp6 --icmpv6-type echo-request", (58, 128, 0, 255)),
])
def test_icmpv6_matches(fragment, value):
    rule = one_rule(f"{fragment} -j ACCEPT", family=IPV6)
    assert rule.matches[-1].value == value


@pytest.mark.parametrize("fragment, kind, name, option", [
    ("-j ACCEPT", "verdict", "ACCEPT", None),
    ("-j DROP", "verdict", "DROP", None),
    ("-j REJECT", "verdict", "REJECT", ("--reject-with", "icmp-port-unreachable")),
    ("-p tcp -j REJECT --reject-with tcp-reset", "verdict", "REJECT", ("--reject-with", "tcp-reset")),
    ("-j LOG --log-prefix \"dropped: \" --log-level 4", "log", "LOG", ("--log-prefix", "dropped: ")),
    ("-j RETURN", "return", "RETURN", None),
    ("-j UC", "jump", "UC", None),
    ("-g UC", "goto", "UC", None),
    ("-j CT --notrack", "ct", "CT", ("--notrack", "")),
    ("-j DNAT --to-destination 10.0.0.2:8080", "nat", "DNAT", ("--to-destination", "10.0.0.2:8080")),
    ("-j SNAT --to-source 192.0.2.1", "nat", "SNAT", ("--to-source", "192.0.2.1")),
    ("-j MASQUERADE", "nat", "MASQUERADE", None),
    ("-p tcp", "none", "", None),
    ("-j NFQUEUE --queue-num 1", "unknown", "NFQUEUE", ("--queue-num", "1")),
    ("-j REJECT --reject-with icmp6-adm-prohibited", "unknown", "REJECT", None),
    ("-j INPUT", "unknown", "INPUT", None),
])
def test_targets(fragment, kind, name, option):
    rule = one_rule(fragment)
    assert (rule.target.kind, rule.target.name) == (kind, name)
    if option:
        assert option in rule.target.options
    assert (rule.not_understood() != ()) == (kind == "unknown")


@pytest.mark.parametrize("fragment, text, reason", [
    ("-m physdev --physdev-in vif1.0 -j ACCEPT", "-m physdev --physdev-in vif1.0",
     "match module 'physdev' not understood"),
    ("-m conntrack --ctorigdst 10.0.0.1 -j ACCEPT", "--ctorigdst 10.0.0.1",
     "option --ctorigdst of match conntrack not understood"),
    ("-m recent --rcheck --seconds 60 -j DROP", "-m recent --rcheck --seconds 60",
     "match module 'recent' not understood"),
    ("-f -j DROP", "-f", "fragment matching not understood"),
    ("-s example.com -j DROP", "-s example.com",
     "address 'example.com' not understood (not a literal address/mask)"),
    ("-p tcp --dport 2000:1000 -j DROP", "-m tcp --dport 2000:1000", "invalid port range '2000:1000' (min > max)"),
    ("-p tcp --dport 70000 -j DROP", "-m tcp --dport 70000", "port 70000 out of range"),
    ("-m multiport --dports 1,2 -j DROP", "-m multiport --dports 1,2", "multiport needs -p tcp or -p udp"),
    ("-m conntrack --ctstate BOGUS -j DROP", "-m conntrack --ctstate BOGUS", "unknown state BOGUS"),
    ("-p icmp --icmp-type bogus -j DROP", "-m icmp --icmp-type bogus", "unknown ICMP type 'bogus'"),
    ("-s 2001:db8::1 -j DROP", "-s 2001:db8::1", "address 2001:db8::1 is not ipv4"),
])
def test_not_understood_matches_are_kept(fragment, text, reason):
    rule = one_rule(fragment)
    (item,) = rule.not_understood()
    assert (item.text, item.reason, item.chain, item.position) == (text, reason, "INPUT", 1)
    assert rule.target.kind == "verdict"


def test_family_flags_insert_new_chain_and_policy_commands():
    text = ("*filter\n-N MINE\n-P INPUT DROP\n-A INPUT -j ACCEPT\n-I INPUT -p tcp -j DROP\n"
            "-I INPUT 2 -p udp -j DROP\n-A INPUT -6 -j REJECT\n-A MINE -4 -j RETURN\nCOMMIT\n")
    filt = parse_ruleset(text).table("filter")
    assert filt.chain("INPUT").policy == "DROP"
    assert [r.text for r in filt.chain("INPUT").rules] == [
        "-I INPUT -p tcp -j DROP", "-I INPUT 2 -p udp -j DROP", "-A INPUT -j ACCEPT"]
    assert [r.position for r in filt.chain("INPUT").rules] == [1, 2, 3]
    assert len(filt.chain("MINE").rules) == 1


def test_family_detection():
    assert parse_ruleset("*filter\n-A INPUT -s 2001:db8::/32 -j DROP\nCOMMIT\n").family == IPV6
    assert parse_ruleset("*filter\n-A INPUT -s 192.0.2.0/24 -j DROP\nCOMMIT\n").family == IPV4


def test_extract_keeps_line_numbers():
    document = "Some prose\n  -A INPUT -p tcp --dport 22 -j ACCEPT\n-A INPUTsays the rule\n*filter\n"
    assert extract_rules_text(document).splitlines() == [
        "", "-A INPUT -p tcp --dport 22 -j ACCEPT", "", "*filter"]


# ---- ipsets ----------------------------------------------------------------------------------

def test_ipset_save_file():
    sets = parse_ipsets(fixture("kernel-1.8.9.ipsets"))
    assert set(sets) == {"s1", "s2"}
    assert sets["s1"].type == "hash:net" and sets["s1"].family == IPV4
    assert sets["s1"].nomatch == (NET("10.0.0.5/32"),)
    assert sets["s2"].members == (NET("10.1.1.1/32"),)


@pytest.mark.parametrize("address, member", [
    ("10.0.0.4", True), ("10.0.0.5", False), ("10.0.1.1", False), ("10.0.0.255", True)])
def test_hash_net_longest_prefix_and_nomatch(address, member):
    assert parse_ipsets(fixture("kernel-1.8.9.ipsets"))["s1"].contains(address) is member


def test_ipset_restore_syntax_ranges_options_and_other_types():
    text = ("create app hash:ip family inet -exist\nadd app 10.0.0.1 timeout 0 comment \"lb 1\"\n"
            "add app 10.0.0.8-10.0.0.10\nadd app 10.0.1.0/30\ndel app 10.0.1.1\n"
            "create v6 hash:net family inet6\nadd v6 2001:db8::/48\n"
            "create ports hash:ip,port family inet\nadd ports 10.0.0.1,tcp:80\n")
    sets = parse_ipsets(text)
    test = membership(sets["app"])
    assert [test(int(ipaddress.ip_address(f"10.0.{a}"))) for a in ("0.1", "0.9", "0.11", "1.0", "1.1")] == [
        True, True, False, True, False]
    assert sets["v6"].family == IPV6 and sets["v6"].contains("2001:db8:0:1::5")
    assert not sets["ports"].understood


@pytest.mark.parametrize("text, message", [
    ("add nope 10.0.0.1\n", "set nope is not created before add"),
    ("create a hash:ip\nadd a 10.0.0.300\n", "bad set member '10.0.0.300'"),
    ("create a hash:ip family inet\nadd a 2001:db8::1\n", "member 2001:db8::1 is not ipv4"),
    ("create a hash:ip family bogus\n", "unknown family 'bogus' for set a"),
    ("hello\n", "not ipset save/restore syntax: hello"),
])
def test_ipset_errors(text, message):
    with pytest.raises(ParseError) as caught:
        parse_ipsets(text, source="sets")
    assert caught.value.problems[-1][1] == message


# ---- packets ---------------------------------------------------------------------------------

def test_packet_spec():
    packet = parse_packet("proto=tcp src=10.0.0.2 dst=10.0.0.1 dport=22 sport=40000 in=eth1 state=NEW")
    assert packet == Packet(proto=6, src=ipaddress.ip_address("10.0.0.2"),
                            dst=ipaddress.ip_address("10.0.0.1"), sport=40000, dport=22, in_iface="eth1")
    assert packet.tcp_flags == 0x02 and packet.family == IPV4 and packet.src_int == 0x0A000002
    assert str(packet) == "proto=tcp src=10.0.0.2 dst=10.0.0.1 sport=40000 dport=22 in=eth1 state=NEW"


@pytest.mark.parametrize("spec, field, value", [
    ("proto=udp state=established", "state", "ESTABLISHED"),
    ("proto=tcp state=ESTABLISHED", "tcp_flags", 0x10),
    ("proto=tcp flags=SYN,ACK", "tcp_flags", 0x12),
    ("state=NEW,DNAT", "nat", frozenset({"DNAT"})),
    ("proto=icmp icmp=echo-request", "icmp_type", 8),
    ("proto=icmp icmp=3/4", "icmp_code", 4),
    ("proto=icmp type=3 code=1", "icmp_type", 3),
    ("proto=ipv6-icmp icmp=neighbour-solicitation src=2001:db8::1", "icmp_type", 135),
    ("proto=47", "proto", 47),
    ("out=eth0", "out_iface", "eth0"),
])
def test_packet_fields(spec, field, value):
    assert getattr(parse_packet(spec), field) == value


@pytest.mark.parametrize("spec, message", [
    ("proto=tcp dport=70000", "dport=70000: port must be 0-65535"),
    ("proto=tcp colour=red", "'colour=red': unknown key 'colour'"),
    ("proto=tcp src=10.0.0.300", "src=10.0.0.300: not an IP address"),
    ("src=10.0.0.1 dst=2001:db8::1", "src and dst must be of the same family"),
    ("proto=bogus", "proto=bogus: unknown protocol 'bogus'"),
    ("state=NEW,ESTABLISHED", "state=NEW,ESTABLISHED: one of"),
    ("dport", "'dport': expected key=value"),
    ("dport=1 dport=2", "dport given twice"),
    ("proto=icmp icmp=any", "icmp=any: a packet has one ICMP type"),
])
def test_packet_errors(spec, message):
    with pytest.raises(PacketError) as caught:
        parse_packet(spec)
    assert message in str(caught.value)
