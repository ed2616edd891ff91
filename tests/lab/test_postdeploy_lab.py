"""The post-deploy suite against the wordpress lab: green as built; red, for exactly the planted
reasons, once one host has an extra open port and another a missing set member."""
from __future__ import annotations

import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from lab import names
from lab.postdeploy import SUITE, counts, suite_argv

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # tests/lab is not a package: make tests.postdeploy importable
    sys.path.insert(0, str(ROOT))
from tests.postdeploy import fleet as F  # noqa: E402

pytestmark = pytest.mark.lab
STACK = "wordpress"
ENCLAVE = [sys.executable, "-c", "import sys; from enclave_cli.main import main; sys.exit(main())"]


def _lab(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(ENCLAVE + ["lab", *args, "--stack", STACK], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


@pytest.fixture(scope="module")
def lab(lab_ready):
    try:
        up = _lab("up")
        assert up.returncode == 0, f"enclave lab up failed:\n{up.stdout[-2000:]}\n{up.stderr[-2000:]}"
        yield names.state_dir(STACK)
    finally:
        down = _lab("down", timeout=120)
        assert down.returncode == 0, down.stdout + down.stderr
        assert not any(ns.startswith(names.prefix(STACK)) for ns in
                       subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split())


def _suite(state: Path) -> tuple[int, str, dict, float]:
    start = time.monotonic()
    done = subprocess.run(suite_argv(names.operator_ns(STACK), state), capture_output=True, text=True,
                          timeout=300, cwd=ROOT)
    output = done.stdout + done.stderr
    return done.returncode, output, counts(output), time.monotonic() - start


def _failed_ids(output: str) -> set[str]:
    return {line.split()[1].split("::", 1)[1] for line in output.splitlines() if line.startswith("FAILED ")}


def _ns(host: str, *argv: str) -> None:
    subprocess.run(["ip", "netns", "exec", names.host_ns(STACK, host), *argv], check=True, capture_output=True)


def _expected_total(fleet: F.Fleet) -> int:
    hosts = len(fleet.hosts)
    sets = sum(len(F.parse_ipsets(fleet.generated(h).ipsets)) for h in fleet.hosts)
    return hosts * 4 + hosts * 3 + sets + len(F.listeners(fleet)) + len(F.attempts(fleet))


def test_suite_is_green_on_the_lab_and_fails_for_planted_faults(lab):
    fleet = F.load_fleet(lab / "inventory.json")
    assert fleet.lab_services is not None, "the suite must see the lab's lab.json (stand-ins)"

    code, output, got, seconds = _suite(lab)
    assert code == 0, output[-6000:]
    assert got == {"passed": _expected_total(fleet), "deselected": 2 * len(fleet.hosts)}, output[-1000:]
    assert seconds < 60, f"the suite took {seconds:.1f}s against the lab"

    wordpress_1 = fleet.private_ips["wordpress-1"]
    listener = None
    try:
        # wordpress-1: an undeclared port opened, with something listening on it
        _ns("wordpress-1", "iptables", "-I", "enclave-input", "4", "-i", "eth1", "-p", "tcp", "--dport", "8080",
            "-j", "ACCEPT")
        held = subprocess.run(["ip", "netns", "exec", names.host_ns(STACK, "wordpress-1"), "ss", "-H", "-ltn",
                               "sport = :8080"], capture_output=True, text=True).stdout.strip()
        if not held:
            listener = subprocess.Popen(["ip", "netns", "exec", names.host_ns(STACK, "wordpress-1"), sys.executable,
                                         "-m", "http.server", "8080", "--bind", wordpress_1],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.5)
        # mysql-1: wordpress-1 missing from the wordpress peers' set
        _ns("mysql-1", "ipset", "del", "enclave-wordpress", wordpress_1)

        code, output, got, _ = _suite(lab)
        assert code == 1, output[-6000:]
        opened = {a.id for a in F.attempts(fleet) if a.probe.dest == "wordpress-1" and a.probe.port == 8080}
        assert len(opened) == len(fleet.hosts) - 1
        expected = {
            "test_live_rules_equal_generated[wordpress-1]", "test_persisted_rules_equal_live[wordpress-1]",
            "test_live_rules_equal_generated[mysql-1]", "test_persisted_rules_equal_live[mysql-1]",
            "test_ipset_members[mysql-1:enclave-wordpress]", "test_reachability[wordpress-1->mysql-1:tcp/3306]",
        } | {f"test_reachability[{i}]" for i in opened}
        assert _failed_ids(output) == expected, output[-6000:]
        assert got["failed"] == len(expected)

        accept = "enclave-input rule 4: -A enclave-input -i eth1 -p tcp -m tcp --dport 8080 -j ACCEPT"
        deny = "enclave-deny rule 2: -A enclave-deny -j DROP"
        for line in (
            # the extra port: host, flow, the live rule that admits it
            f"wordpress-1: flow mysql-1 -> wordpress-1(eth1) tcp/8080 [no flow admits it]: live ACCEPT by {accept}; "
            f"generated DROP by {deny}",
            f"mysql-1 -> wordpress-1: flow mysql-1 -> wordpress-1(eth1) tcp/8080 intended closed [no flow admits it] "
            f"but reached; wordpress-1's live INPUT: ACCEPT by {accept}",
            # the missing member: host, set, peer, the rule that uses it, the flow it breaks
            f"mysql-1: live ipset enclave-wordpress lacks {wordpress_1} (wordpress-1): flows from it to mysql-1 are "
            "dropped (rules: enclave-input rule 5: -A enclave-input -i eth1 -p tcp -m set --match-set "
            "enclave-wordpress src -m tcp --dport 3306 -j ACCEPT)",
            "wordpress-1 -> mysql-1: flow wordpress-1 -> mysql-1(eth1) tcp/3306 intended open "
            f"[enclave:flows[3]: wordpress -> mysql tcp/3306 via eth1] but dropped; mysql-1's live INPUT: DROP by {deny}",
        ):
            assert line in output, f"missing from the suite's output: {line}\n{output[-6000:]}"
    finally:
        if listener is not None:
            listener.terminate()
            listener.wait(timeout=10)

    # restored by hand, the same lab is green again
    _ns("wordpress-1", "iptables", "-D", "enclave-input", "-i", "eth1", "-p", "tcp", "--dport", "8080", "-j", "ACCEPT")
    _ns("mysql-1", "ipset", "add", "enclave-wordpress", wordpress_1)
    code, output, got, _ = _suite(lab)
    assert code == 0 and got["passed"] == _expected_total(fleet), output[-6000:]


def test_suite_is_not_in_the_default_test_paths():
    with open(ROOT / "pyproject.toml", "rb") as f:
        paths = tomllib.load(f)["tool"]["pytest"]["ini_options"]["testpaths"]
    assert SUITE.is_dir() and not any(SUITE == (ROOT / p).resolve() or SUITE.is_relative_to((ROOT / p).resolve())
                                      for p in paths), paths
