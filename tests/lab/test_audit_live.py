"""`enclave audit` on the kernel's own dumps: a host's generated rules loaded into a scratch
namespace and read back with iptables-save/ip6tables-save/ipset save audit as the policy; an ACCEPT
inserted with `iptables -I` is then reported with the very rule the kernel holds. No traffic is
sent; the namespace (and with it its rules and sets) is removed whatever happens."""
from __future__ import annotations

import pytest

from enclave_cli import main as cli
from firewall.audit import audit_host
from firewall.compile import Compiler
from firewall.verify import parse_host_rules
from lab.scratch import run_in, scratch_namespace
from topology.load import load_stack

pytestmark = pytest.mark.lab


def dumps(ns: str) -> tuple[str, str, str]:
    return (run_in(ns, ["iptables-save"]).stdout, run_in(ns, ["ip6tables-save"]).stdout,
            run_in(ns, ["ipset", "save"]).stdout)


@pytest.mark.parametrize("stack_name,host", [("wordpress", "mysql-1"), ("gateway", "gateway-1")])
def test_audit_of_the_kernels_dump(lab_ready, tmp_path, capsys, stack_name, host):
    stack = load_stack(stack_name)
    fw = Compiler(stack).host(host)
    with scratch_namespace("enc-audit") as ns:
        run_in(ns, ["ipset", "restore"], stdin=fw.ipsets)
        run_in(ns, ["iptables-restore"], stdin=fw.rules_v4)
        run_in(ns, ["ip6tables-restore"], stdin=fw.rules_v6)
        v4, v6, sets = dumps(ns)
        assert "enclave-input" in v4 and "create enclave-tunnel" in sets
        report = audit_host(stack, host, parse_host_rules("kernel", v4, v6, sets))
        assert report.same, [d.message() for d in report.differences]

        position = fw.rules_v4.split("*filter", 1)[1].count("-A enclave-input ")  # before the deny jump
        run_in(ns, ["iptables", "-I", "enclave-input", str(position), "-p", "tcp", "--dport", "3307",
                    "-j", "ACCEPT"])
        v4, v6, sets = dumps(ns)
    report = audit_host(stack, host, parse_host_rules("kernel", v4, v6, sets))
    assert report.allows and not report.denies and not report.unknown
    assert {d.expectation.probe.port for d in report.allows} == {3307}
    assert {d.outcome.steps[0].verdict.rule.text for d in report.allows} == \
        {"-A enclave-input -p tcp -m tcp --dport 3307 -j ACCEPT"}
    assert {d.outcome.steps[0].verdict.rule.position for d in report.allows} == {position}
    files = {}
    for name, text in (("v4", v4), ("v6", v6), ("sets", sets)):
        files[name] = tmp_path / name
        files[name].write_text(text)
    assert cli.main(["audit", "--stack", stack_name, "--host", host, "--rules", str(files["v4"]),
                     "--rules6", str(files["v6"]), "--ipsets", str(files["sets"])]) == 1
    out = capsys.readouterr().out
    assert f"{host} accepts tcp/3307 from " in out
    assert f"more packets decided by enclave-input rule {position} (-A enclave-input -p tcp -m tcp --dport 3307 -j ACCEPT)" in out


def test_scratch_namespaces_are_gone(lab_ready):
    from subprocess import run
    listed = run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert "enc-audit" not in listed
