"""The lab's pure parts, without root: the network plan, services, artifacts, checks, judging."""
from __future__ import annotations

import ipaddress
import io
import tarfile

import pytest

from firewall.intent import Actor, Expectation, Probe, actors, intended_matrix
from lab import checks, names, report, services
from lab.artifacts import host_artifacts
from lab.peersync import payload_tar
from lab.plan import lab_plan
from lab.probe import Observation, _judge, dnat_packets
from topology.load import available_stacks, load_stack, load_stack_text
from topology.load import stack_path

STACKS = available_stacks()


def wordpress_variant(hosts: int) -> str:
    text = stack_path("wordpress").read_text()
    half = (hosts - 2) // 2
    return (text.replace("wordpress: {count: 2, profile: wordpress}", f"wordpress: {{count: {half}, profile: wordpress}}")
                .replace("mysql: {count: 2, profile: mysql}", f"mysql: {{count: {hosts - 2 - half}, profile: mysql}}"))


@pytest.mark.parametrize("name", STACKS)
def test_every_host_has_its_own_namespace_with_planned_addresses(name):
    stack = load_stack(name)
    plan = lab_plan(stack)
    for host in stack.hosts:
        ns = plan.ns_of_host(host.name)
        assert host.name in ns and ns.startswith(names.prefix(name))
        addrs = {a.split("/")[0] for link in plan.links if link.ns == ns for a in link.addresses}
        assert host.private_ip in addrs
        assert (host.public_ip in addrs) == (host.public_ip is not None)
        devs = {link.dev for link in plan.links if link.ns == ns}
        assert devs == ({"eth0", "eth1"} if host.public_ip else {"eth1"})


@pytest.mark.parametrize("name", STACKS)
def test_names_fit_and_are_unique(name):
    plan = lab_plan(load_stack(name))
    fabric_devs = [link.fabric_dev for link in plan.links] + [b for b, _ in plan.bridges]
    assert len(fabric_devs) == len(set(fabric_devs))
    assert all(len(d) <= 15 for d in fabric_devs)
    assert len({ns.name for ns in plan.namespaces}) == len(plan.namespaces)


@pytest.mark.parametrize("name", STACKS)
def test_every_actor_has_a_namespace_holding_its_address(name):
    stack = load_stack(name)
    plan = lab_plan(stack)
    for actor in actors(stack):
        ns = plan.ns_of_actor(actor.name)
        addrs = {a.split("/")[0] for link in plan.links if link.ns == ns for a in link.addresses}
        assert actor.address in addrs, (actor, ns)


def test_operator_sits_at_the_admin_address():
    stack = load_stack("wordpress")
    plan = lab_plan(stack)
    assert plan.ns_of_actor("admin") == plan.operator
    admin = next(a for a in actors(stack) if a.name == "admin")
    assert ipaddress.ip_address(admin.address) in ipaddress.ip_network(stack.admin_cidrs[0])


def test_private_only_hosts_route_through_the_gateway():
    stack = load_stack("gateway")
    plan = lab_plan(stack)
    gateway = stack.gateway
    for host in stack.hosts:
        ns = next(n for n in plan.namespaces if n.host == host.name)
        if stack.role(host.role).private_only:
            assert ns.routes == (("default", "via", gateway.private_ip, "dev", "eth1"),)
        assert ns.forwarding == (host.name == gateway.name)


def test_fifty_host_variant_plans():
    stack = load_stack_text("wordpress50", wordpress_variant(50))
    plan = lab_plan(stack)
    assert len(stack.hosts) == 50 and len(plan.host_namespaces) == 50


def test_services_real_daemons_and_named_stand_ins():
    stack = load_stack("wordpress")
    lb = services.host_services(stack, "lb-1", frozenset({"sshd", "haproxy", "nginx"}))
    assert [d.kind for d in lb.daemons] == ["sshd", "haproxy"] and lb.stand_ins == ()
    db = services.host_services(stack, "mysql-1", frozenset({"sshd", "haproxy", "nginx"}))
    assert db.missing == ("mariadb",) and db.stand_ins == (("tcp", 3306),)
    ports = services.listener_ports(stack, "lb-1", lb, (("tcp", 22), ("tcp", 80), ("tcp", 8080), ("udp", 53)))
    assert ports == {"tcp": [8080], "udp": [53]}


def test_artifacts_come_from_cloud_init():
    stack = load_stack("amanda")
    art = host_artifacts(stack, "gateway-1")
    assert art.firewall.startswith("# enclave-firewall")
    assert {"iptables", "enclave", "ssh"} <= set(art.etc_tops())
    assert any(rel == "manifest" for rel, _ in art.payload) and any(f.path == "/etc/enclave/enclave-apply" for f in art.files)


def test_payload_tar_holds_every_file():
    payload = (("ipsets", "a\n"), ("files/etc/haproxy/haproxy.cfg", "b\n"))
    with tarfile.open(fileobj=io.BytesIO(payload_tar(payload))) as tar:
        assert {m.name: tar.extractfile(m).read().decode() for m in tar.getmembers()} == dict(payload)


def test_checks_registry():
    names_ = [c.name for c in checks.lab_checks(load_stack("amanda"))]
    assert len(names_) == 2 and all(n.startswith("amanda helper: tapeserver-1 -> ") for n in names_)
    http = checks.lab_checks(load_stack("wordpress"))
    assert [c.expect for c in http] == [("http-backend",)]
    ok, _ = checks.judge(http[0], [{"outcome": "reached", "data": "HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\n\r\nx"}])
    bad, seen = checks.judge(http[0], [{"outcome": "reached", "data": "HTTP/1.1 503 Service Unavailable\r\n\r\n"}])
    assert ok and not bad and "503" in seen


def _exp(allowed: bool, kind="input", target=None) -> Expectation:
    actor = Actor("net-192.0.2.50/32", "public", "192.0.2.50")
    return Expectation(Probe(actor, "gateway-1", "198.51.100.13", "eth0", "tcp", 50000, kind, target), allowed, "x")


def test_judging_outcomes():
    assert Observation(_exp(True), "reached", "").ok
    assert not Observation(_exp(True), "refused", "").ok
    assert Observation(_exp(False), "dropped", "").ok and Observation(_exp(False), "rejected", "").ok
    assert not Observation(_exp(False), "refused", "").ok  # the packet got through: nothing listened
    forwarded = dnat_packets((_exp(True, "dnat", "tapeserver"),))
    answer = {"outcome": "reached", "data": "enclave-lab tapeserver-1 tcp/50000\n"}
    assert _judge(_exp(False), answer, forwarded)[0] == "forwarded"
    assert _judge(_exp(True, "dnat", "tapeserver"), answer, forwarded)[0] == "reached"
    wrong = {"outcome": "reached", "data": "enclave-lab gateway-1 tcp/50000\n"}
    assert _judge(_exp(True, "dnat", "tapeserver"), wrong, forwarded)[0] == "reached-wrong-host"


def test_report_names_every_mismatch():
    stack = load_stack("evergreen")
    matrix = intended_matrix(stack)
    obs = [Observation(e, "reached" if e.allowed else "dropped", "") for e in matrix]
    obs[0] = Observation(matrix[0], "dropped" if matrix[0].allowed else "reached", "")
    rep = report.build("evergreen", {"timings": {"probe": 1.0}}, obs, [], {"status": "not present"})
    assert rep["result"] == "red" and rep["mismatches"][0].startswith(matrix[0].probe.label())
    assert "MISMATCH" in report.table(obs) and "REHEARSAL RED" in report.summary(rep)
    good = report.build("evergreen", {}, [Observation(e, "reached" if e.allowed else "dropped", "") for e in matrix], [], {})
    assert good["result"] == "green" and len(good["flows"]) == len(matrix)
