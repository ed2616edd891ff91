"""Builds a LabPlan's namespaces, bridges and veths, and removes everything a stack's lab made.

Every device is created from inside the fabric namespace (`ip -n <fabric> link add ... peer
name ethX netns <host>`), so nothing ever appears in the root namespace; deleting the lab's
namespaces removes every veth and bridge with them.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from concurrent.futures import ThreadPoolExecutor

from lab import names
from lab.plan import LabPlan
from lab.system import ip_batch, kill_pids, list_netns, netns_pids, run, run_in

# Per-namespace sysctls: no ICMP rate limit (a REJECT must always answer), no DAD delay.
SYSCTLS = (
    "net.ipv4.icmp_ratelimit=0",
    "net.ipv6.icmp.ratelimit=0",
    "net.ipv6.conf.all.accept_dad=0",
    "net.ipv6.conf.default.accept_dad=0",
)
FORWARDING = ("net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")


def _addr(address: str, dev: str) -> str:
    return f"addr add {address} dev {dev}" + (" nodad" if ":" in address else "")


def build(plan: LabPlan, workers: int = 8) -> None:
    """Create the whole network of the plan (the namespaces must not exist yet)."""
    ip_batch(None, [f"netns add {ns.name}" for ns in plan.namespaces])
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(_sysctls, plan.namespaces))
    fabric = []
    for bridge, addresses in plan.bridges:
        fabric += [f"link add {bridge} type bridge stp_state 0 forward_delay 0", f"link set {bridge} up"]
        fabric += [_addr(a, bridge) for a in addresses]
    for link in plan.links:
        fabric.append(f"link add {link.fabric_dev} type veth peer name {link.dev} netns {link.ns}")
        if link.bridge:
            fabric.append(f"link set {link.fabric_dev} master {link.bridge}")
        fabric += [_addr(a, link.fabric_dev) for a in link.fabric_addresses]
        fabric.append(f"link set {link.fabric_dev} up")
    ip_batch(plan.fabric, fabric)
    by_ns: dict[str, list[str]] = {ns.name: ["link set lo up"] for ns in plan.namespaces}
    for link in plan.links:
        by_ns[link.ns] += [_addr(a, link.dev) for a in link.addresses] + [f"link set {link.dev} up"]
    for ns in plan.namespaces:
        by_ns[ns.name] += ["route add " + " ".join(r) for r in ns.routes]
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda item: ip_batch(item[0], item[1]), by_ns.items()))


# The neighbour (ARP/NDP) table is one for the whole kernel, its limits set in the root namespace
# only: a big lab (every host probing every other) outgrows the default gc_thresh3 of 1024.
NEIGH = tuple(f"/proc/sys/net/{family}/neigh/default/gc_thresh{i}" for family in ("ipv4", "ipv6") for i in (1, 2, 3))
NEIGH_RECORD = "neigh-limits.json"


def neighbour_entries(plan: LabPlan) -> int:
    """A bound on the neighbour entries the lab needs: every namespace may learn every peer."""
    hosts = len(plan.host_namespaces) + 2
    return 2 * hosts * hosts + 256


def raise_neighbour_limits(plan: LabPlan) -> dict[str, int] | None:
    """Raise the kernel's neighbour limits when the lab needs more; the old values are recorded
    (state root) and restored by `restore_neighbour_limits` once no lab runs."""
    need = neighbour_entries(plan)
    current = {p: int(Path(p).read_text()) for p in NEIGH}
    if all(current[p] >= need for p in NEIGH if p.endswith("3")):
        return None
    record = names.state_root() / NEIGH_RECORD
    record.parent.mkdir(parents=True, exist_ok=True)
    if not record.exists():
        record.write_text(json.dumps(current))
    for p in NEIGH:
        wanted = {"1": need // 4, "2": need // 2, "3": need}[p[-1]]
        if current[p] < wanted:
            Path(p).write_text(str(wanted))
    return current


def restore_neighbour_limits() -> bool:
    record = names.state_root() / NEIGH_RECORD
    if not record.exists() or any(p.is_dir() for p in names.state_root().iterdir()):
        return False
    for p, value in sorted(json.loads(record.read_text()).items(), key=lambda kv: kv[0][-1]):
        Path(p).write_text(str(value))  # thresh1 before 2 before 3 keeps them ordered
    record.unlink()
    return True


def _sysctls(ns) -> None:
    values = SYSCTLS + (FORWARDING if ns.forwarding else ())
    run_in(ns.name, ["sysctl", "-q", "-w", *values])


def leftovers(stack: str) -> list[str]:
    """The namespaces of this stack's lab that exist now (found by the lab's name prefix)."""
    return [ns for ns in list_netns() if ns.startswith(names.prefix(stack))]


def teardown(stack: str, extra_pids: list[int] | None = None) -> list[str]:
    """Kill every process in the stack's namespaces, delete them and their /etc/netns folders."""
    spaces = leftovers(stack)
    pids = list(extra_pids or [])
    for ns in spaces:
        pids += netns_pids(ns)
    kill_pids(pids)
    for ns in spaces:  # a process may have been forked meanwhile: once more, then delete
        kill_pids(netns_pids(ns), grace=0.5)
    if spaces:
        ip_batch(None, [f"netns del {ns}" for ns in spaces])
    if names.NETNS_ETC.is_dir():
        for entry in names.NETNS_ETC.iterdir():
            if entry.name.startswith(names.prefix(stack)):
                shutil.rmtree(entry, ignore_errors=True)
        if not any(names.NETNS_ETC.iterdir()):
            names.NETNS_ETC.rmdir()  # nothing else uses it: leave /etc as the lab found it
    still = leftovers(stack)
    for ns in still:
        run(["ip", "netns", "del", ns], check=False)
    return spaces
