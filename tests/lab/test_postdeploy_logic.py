"""The post-deploy suite's pure logic (no root, no SSH): listeners, sshd, sets, rule comparison."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # tests/lab is not a package: make tests.postdeploy importable
    sys.path.insert(0, str(ROOT))
from tests.postdeploy import fleet as F  # noqa: E402
from topology.inventory import inventory  # noqa: E402
from topology.load import load_stack  # noqa: E402

REAL = {"mysql-1": ("10.20.0.7", "203.0.113.77")}  # a deploy's addresses differ from the plan's


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    path = tmp_path_factory.mktemp("deploy") / "inventory.json"
    path.write_text(json.dumps(inventory(load_stack("wordpress"), REAL)))
    return F.load_fleet(path)


def _listener(fleet, host, port):
    return next(l for l in F.listeners(fleet) if l.host == host and l.port == port)


SS = """tcp LISTEN 0 80 {mysql}:3306 0.0.0.0:*
tcp LISTEN 0 128 0.0.0.0:22 0.0.0.0:*
tcp LISTEN 0 128 [::]:22 [::]:*
"""


def test_mysql_must_listen_on_its_real_private_address_only(fleet):
    mysql = _listener(fleet, "mysql-1", 3306)
    assert mysql.where == "private" and "10.20.0.7" in mysql.why
    assert F.listener_problem(fleet, mysql, F.parse_listeners(SS.format(mysql="10.20.0.7"))) is None
    for bad in ("0.0.0.0", "*", "[::]", "203.0.113.77"):
        problem = F.listener_problem(fleet, mysql, F.parse_listeners(SS.format(mysql=bad)))
        assert problem and problem.startswith("mysql-1 tcp/3306: listens on") and "10.20.0.7 only" in problem
    assert "nothing listens" in F.listener_problem(fleet, mysql, F.parse_listeners("tcp LISTEN 0 128 0.0.0.0:22 0.0.0.0:*"))


def test_stand_ins_are_excused_only_in_the_lab(fleet):
    mysql = _listener(fleet, "mysql-1", 3306)
    wildcard = F.parse_listeners(SS.format(mysql="*"))
    lab = F.Fleet(fleet.stack, fleet.inventory, {"mysql-1": {"stand_ins": ["tcp/3306"]}})
    assert F.listener_problem(lab, mysql, wildcard) is None
    assert F.listener_problem(fleet, mysql, wildcard) is not None


def test_public_and_private_side_listeners(fleet):
    lb = _listener(fleet, "lb-1", 443)
    assert lb.where == "public" and "flows[0]" in lb.why
    assert F.listener_problem(fleet, lb, F.parse_listeners("tcp LISTEN 0 1 10.10.10.3:443 0.0.0.0:*"))
    web = _listener(fleet, "wordpress-1", 80)
    assert web.where == "private-side"
    assert F.listener_problem(fleet, web, F.parse_listeners("tcp LISTEN 0 1 0.0.0.0:80 0.0.0.0:*")) is None
    public = fleet.hosts["wordpress-1"]["public_ip"]
    assert "public address" in F.listener_problem(fleet, web, F.parse_listeners(f"tcp LISTEN 0 1 {public}:80 x"))


def test_sshd_keys_only():
    good = "passwordauthentication no\nkbdinteractiveauthentication no\npermitemptypasswords no\n" \
           "hostbasedauthentication no\npubkeyauthentication yes\nauthenticationmethods publickey\n" \
           "permitrootlogin without-password\n"
    sockets = F.parse_listeners(SS.format(mysql="10.20.0.7"))
    assert F.sshd_problems("h", F.Section(0, good), sockets) == []
    bad = good.replace("passwordauthentication no", "passwordauthentication yes")
    assert F.sshd_problems("h", F.Section(0, bad), sockets) == [
        "h: sshd passwordauthentication is 'yes', keys-only needs no"]
    assert F.sshd_problems("h", F.Section(0, good), []) == ["h: nothing listens on tcp/22"]


def test_live_rules_compared_by_verdict_with_real_addresses(fleet):
    fw = fleet.generated("mysql-1")
    generated = F.Rules.parse(fw.rules_v4, fw.rules_v6, fw.ipsets, "generated", "mysql-1")
    count, diffs = F.compare(fleet, "mysql-1", generated, generated)
    assert count > 100 and diffs == []
    # an extra ACCEPT on a port outside the fixed sample, and a peer missing from a set
    v4 = fw.rules_v4.replace("-A enclave-input -j enclave-deny",
                             "-A enclave-input -p tcp -m tcp --dport 9999 -j ACCEPT\n-A enclave-input -j enclave-deny")
    wordpress_1 = fleet.private_ips["wordpress-1"]
    sets = fw.ipsets.replace(f"add enclave-wordpress {wordpress_1}\n", "")
    live = F.Rules.parse(v4, fw.rules_v6, sets, "live", "mysql-1")
    _, diffs = F.compare(fleet, "mysql-1", live, generated)
    text = "\n".join(d.describe("mysql-1", "live", "generated") for d in diffs)
    assert "mysql-1: flow internet -> mysql-1(eth0) tcp/9999 [a port a rule names]: live ACCEPT by enclave-input " \
           "rule 7: -A enclave-input -p tcp -m tcp --dport 9999 -j ACCEPT; generated DROP" in text
    assert f"flow wordpress-1 -> mysql-1(eth1) tcp/3306 [enclave:flows[3]: wordpress -> mysql tcp/3306 via eth1]: " \
           "live DROP by enclave-deny rule 2" in text
    expected = F.parse_ipsets(fw.ipsets)["enclave-wordpress"]
    assert F.set_problems(fleet, "mysql-1", "enclave-wordpress", expected, live)[0].startswith(
        f"mysql-1: live ipset enclave-wordpress lacks {wordpress_1} (wordpress-1)")


def test_inventory_must_match_the_stack(tmp_path):
    inv = inventory(load_stack("wordpress"))
    inv["hosts"] = inv["hosts"][:-1]
    path = tmp_path / "inventory.json"
    path.write_text(json.dumps(inv))
    with pytest.raises(F.FleetError, match="mysql-2: in stack wordpress but not in the inventory"):
        F.load_fleet(path)
