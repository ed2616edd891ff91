"""The on-host apply script and the firewall bootcmd, run for real (sh, ipset, iptables-nft).

Each test gets a fresh network namespace (its own netfilter and ipsets) and a private mount
namespace whose /etc is an overlay on a tmpfs: the script writes /etc/enclave, /etc/iptables and
service files exactly as on a droplet, and nothing reaches the machine's own /etc. A holder
process keeps both namespaces alive; commands enter them with nsenter. Teardown kills every
process left in the namespace (the rollback timer included) and the holder.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from cloudinit.render import firewall_bootcmd, peer_sync_payload, service_files, user_data
from cloudinit.secrets import Secrets
from topology.load import load_stack

pytestmark = pytest.mark.lab
SECRETS = Secrets.placeholders()
APPLY = "/etc/enclave/enclave-apply"


class Box:
    """A network + mount namespace with an overlaid /etc, entered by nsenter."""

    def __init__(self, root: Path):
        self.root = root
        root.mkdir()
        script = (f"mount -t tmpfs tmpfs {root} && mkdir {root}/upper {root}/work && "
                  f"mount -t overlay overlay -o lowerdir=/etc,upperdir={root}/upper,workdir={root}/work /etc && "
                  "ip link set lo up && echo ready && exec sleep 3600")
        self.holder = subprocess.Popen(["unshare", "--net", "--mount", "--propagation", "private", "sh", "-c", script],
                                       stdout=subprocess.PIPE, text=True)
        assert self.holder.stdout.readline().strip() == "ready", "could not build the namespace"

    def run(self, command: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess:
        done = subprocess.run(["nsenter", "-t", str(self.holder.pid), "-n", "-m", "sh", "-c", command],
                              input=stdin, capture_output=True, text=True, timeout=60)
        if check and done.returncode != 0:
            raise AssertionError(f"{command!r} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        return done

    def write(self, path: str, text: str, mode: str = "0644") -> None:
        self.run(f"mkdir -p \"$(dirname {path})\" && cat > {path} && chmod {mode} {path}", stdin=text)

    def read(self, path: str) -> str:
        return self.run(f"cat {path}").stdout

    def ruleset(self) -> str:
        """Both families' live rules, without comments and counters (comparable)."""
        out = self.run("iptables-save; ip6tables-save").stdout
        return "\n".join(line.split(" [")[0] for line in out.splitlines() if not line.startswith("#"))

    def members(self, name: str) -> list[str]:
        out = self.run(f"ipset list {name}").stdout
        return sorted(out.split("Members:\n", 1)[1].split())

    def pids(self) -> list[int]:
        """Processes in the namespace other than the holder (a leftover rollback timer, say)."""
        own = os.readlink(f"/proc/{self.holder.pid}/ns/net")
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit() and int(entry) != self.holder.pid:
                try:
                    if os.readlink(f"/proc/{entry}/ns/net") == own:
                        found.append(int(entry))
                except OSError:
                    pass
        return found

    def close(self) -> None:
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.holder.kill()
        self.holder.wait()
        self.root.rmdir()


@pytest.fixture
def box(tmp_path, lab_ready):
    b = Box(tmp_path / "ns")
    try:
        yield b
    finally:
        b.close()


def boot(box: Box, stack, host: str) -> None:
    """What cloud-init does first on a droplet: the firewall bootcmd, then write_files."""
    box.run(firewall_bootcmd(user_data(stack, host, secrets=SECRETS)))
    for path, text in service_files(stack, host, secrets=SECRETS).items():
        box.write(path, text, "0755" if path == APPLY else "0644")
    box.write("/etc/enclave/no-reload", "")  # no systemd here: the lab reloads its own daemons


def put_payload(box: Box, folder: str, payload: dict[str, str]) -> str:
    for rel, text in payload.items():
        box.write(f"{folder}/{rel}", text)
    return folder


def foreign_rules(box: Box) -> None:
    """Chains enclave does not own, as fail2ban and docker would add them."""
    box.run("iptables -N f2b-sshd && iptables -A f2b-sshd -s 192.0.2.9 -j DROP && iptables -I INPUT 1 -j f2b-sshd"
            " && iptables -t nat -N DOCKER && iptables -t nat -A DOCKER -i docker0 -j RETURN"
            " && iptables -t nat -A PREROUTING -j DOCKER")


def test_bootcmd_loads_phase_one_and_is_idempotent(box):
    stack = load_stack("wordpress")
    boot(box, stack, "mysql-1")
    first = box.ruleset()
    assert "-A enclave-input -i eth1 -p tcp -m set --match-set enclave-tunnel src -m tcp --dport 22 -j ACCEPT" in first
    assert ":INPUT DROP" in first
    assert box.members("enclave-tunnel") == ["10.10.10.2"]
    assert box.members("enclave-wordpress") == []  # fail closed until peer sync
    box.run(firewall_bootcmd(user_data(stack, "mysql-1", secrets=SECRETS)))  # a reboot runs it again
    assert box.ruleset() == first


def test_apply_confirm_keeps_foreign_chains(box, tmp_path):
    stack = load_stack("wordpress")
    boot(box, stack, "mysql-1")
    foreign_rules(box)
    payload = peer_sync_payload(stack, "mysql-1", secrets=SECRETS)
    folder = put_payload(box, str(tmp_path / "p1"), payload)

    done = box.run(f"{APPLY} apply --timeout 30 {folder}")
    assert "not reloading mariadb" in done.stderr
    live = box.ruleset()
    assert box.members("enclave-wordpress") == ["10.10.10.4", "10.10.10.5"]
    assert "-A f2b-sshd -s 192.0.2.9/32 -j DROP" in live and "-A INPUT -j f2b-sshd" in live
    assert "-A DOCKER -i docker0 -j RETURN" in live and "-A PREROUTING -j DOCKER" in live
    assert live.count("-A INPUT -j enclave-input") == 2  # one per family, not one more per apply
    assert box.read("/etc/iptables/ipsets") == payload["ipsets"]
    assert box.read("/etc/iptables/rules.v4") == payload["rules.v4"]
    cnf = "/etc/mysql/mariadb.conf.d/60-enclave.cnf"
    assert box.read(cnf) == payload["files" + cnf] and "bind-address = 10.10.10.6" in box.read(cnf)
    assert "state: pending" in box.run(f"{APPLY} status").stdout
    assert len(box.pids()) == 2  # the rollback timer: its shell and its sleep

    box.run(f"{APPLY} confirm")
    status = box.run(f"{APPLY} status").stdout
    assert "state: confirmed" in status and "guard rule: live" in status and "2 members" not in status
    assert box.pids() == []
    box.run(f"{APPLY} apply --timeout 0 {folder}")  # the same payload again changes nothing
    assert box.ruleset() == live


def test_unconfirmed_update_rolls_back(box, tmp_path):
    stack = load_stack("wordpress")
    boot(box, stack, "mysql-1")
    first = peer_sync_payload(stack, "mysql-1", secrets=SECRETS)
    box.run(f"{APPLY} apply --timeout 0 {put_payload(box, str(tmp_path / 'p1'), first)}")
    confirmed = box.ruleset()

    moved = {"wordpress-1": "10.10.10.40", "mysql-1": "10.10.10.60"}
    second = peer_sync_payload(stack, "mysql-1", private_ips=moved, secrets=SECRETS)
    box.run(f"{APPLY} apply --timeout 2 {put_payload(box, str(tmp_path / 'p2'), second)}")
    assert box.members("enclave-wordpress") == ["10.10.10.40", "10.10.10.5"]
    assert "bind-address = 10.10.10.60" in box.read("/etc/mysql/mariadb.conf.d/60-enclave.cnf")

    deadline = time.monotonic() + 15
    while box.pids() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert box.pids() == [], "the rollback timer did not finish"
    assert box.members("enclave-wordpress") == ["10.10.10.4", "10.10.10.5"]
    assert box.ruleset() == confirmed
    assert box.read("/etc/iptables/ipsets") == first["ipsets"]
    assert "bind-address = 10.10.10.6\n" in box.read("/etc/mysql/mariadb.conf.d/60-enclave.cnf")
    assert "not confirmed within 2 s" in box.read("/etc/enclave/rollback.log")


def test_rollback_command_restores_at_once(box, tmp_path):
    stack = load_stack("wordpress")
    boot(box, stack, "lb-1")
    before = box.ruleset()
    payload = peer_sync_payload(stack, "lb-1", secrets=SECRETS)
    box.run(f"{APPLY} apply {put_payload(box, str(tmp_path / 'p'), payload)}")
    assert "server wordpress-1 10.10.10.4:80" in box.read("/etc/haproxy/haproxy.cfg")
    box.run(f"{APPLY} rollback")
    assert box.pids() == []
    assert box.ruleset() == before
    assert "server wordpress-1" not in box.read("/etc/haproxy/haproxy.cfg")  # the phase-1 file is back


@pytest.mark.parametrize("breakage, message", [
    (lambda p: {**p, "rules.v4": p["rules.v4"].replace("--dport 22 -j ACCEPT", "--dport 2222 -j ACCEPT")},
     "lacks the tunnel SSH rule"),
    (lambda p: {**p, "ipsets": "\n".join(l for l in p["ipsets"].splitlines() if not l.startswith("add enclave-tunnel"))},
     "would be empty"),
    (lambda p: {**p, "rules.v4": p["rules.v4"].replace("-j enclave-deny\n", "-j enclave-nosuchchain\n", 1)},
     "does not load into an empty network namespace"),
    (lambda p: {**p, "rules.v6": p["rules.v6"].replace("--icmpv6-type 133", "--icmpv6-type bogus")},
     "does not load into an empty network namespace"),
    (lambda p: {**p, "ipsets": p["ipsets"].replace("hash:ip", "hash:nosuchtype", 1)},
     "does not load into an empty network namespace"),
    # valid alone, but the live set cannot be swapped for it: fails half-way, restores the last files
    (lambda p: {**p, "ipsets": p["ipsets"].replace("create enclave-lb hash:ip", "create enclave-lb hash:net")},
     "failed half-way: going back"),
])
def test_refuses_bad_payloads_and_changes_nothing(box, tmp_path, breakage, message):
    stack = load_stack("wordpress")
    boot(box, stack, "wordpress-1")
    foreign_rules(box)
    before, sets_before = box.ruleset(), box.run("ipset list -n").stdout
    payload = breakage(peer_sync_payload(stack, "wordpress-1", secrets=SECRETS))
    done = box.run(f"{APPLY} apply {put_payload(box, str(tmp_path / 'bad'), payload)}", check=False)
    assert done.returncode != 0
    assert message in done.stderr
    assert box.ruleset() == before
    assert box.run("ipset list -n").stdout == sets_before
    assert box.members("enclave-wordpress") == []
    assert box.pids() == []


def test_gateway_nat_update_keeps_docker_chains(box, tmp_path):
    stack = load_stack("amanda")
    boot(box, stack, "gateway-1")
    foreign_rules(box)
    payload = peer_sync_payload(stack, "gateway-1", secrets=SECRETS)
    box.run(f"{APPLY} apply --timeout 0 {put_payload(box, str(tmp_path / 'p'), payload)}")
    live = box.ruleset()
    assert "-j DNAT --to-destination 10.50.0.4" in live
    assert "-A PREROUTING -j DOCKER" in live and live.count("-A PREROUTING -j enclave-prerouting") == 1
    assert "-A enclave-helpers -p udp -m udp --dport 10080 -j CT --helper amanda" in live
