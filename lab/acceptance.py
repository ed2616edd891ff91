"""Does the kernel accept what enclave rendered? Each host's ipsets, rules.v4 and rules.v6 are
loaded for real (`ipset restore`, `iptables-restore --test`, `ip6tables-restore --test`) in a
scratch namespace. Usage: python -m lab.acceptance RENDER_DIR
"""
from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from lab.scratch import run_in, scratch_namespace


@dataclass(frozen=True)
class Rejection:
    host: str
    file: str
    error: str

    def __str__(self) -> str:
        return f"{self.host}/{self.file}: {self.error}"


def check_host(ns: str, host_dir: Path) -> list[Rejection]:
    host = host_dir.name
    out = []
    run_in(ns, ["ipset", "destroy"], check=False)
    steps = (
        ("ipsets", ["ipset", "restore"]),
        ("rules.v4", ["iptables-restore", "--test"]),
        ("rules.v6", ["ip6tables-restore", "--test"]),
    )
    for name, argv in steps:
        result = run_in(ns, argv, stdin=(host_dir / name).read_text(), check=False)
        if result.returncode != 0:
            out.append(Rejection(host, name, (result.stderr or result.stdout).strip()))
    return out


def check_tree(render_dir: Path) -> tuple[int, list[Rejection]]:
    """(hosts checked, rejections) for every host folder under render_dir."""
    hosts = sorted(p for p in render_dir.iterdir() if p.is_dir())
    rejections: list[Rejection] = []
    with scratch_namespace("enc-accept") as ns:
        for host_dir in hosts:
            rejections += check_host(ns, host_dir)
    return len(hosts), rejections


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m lab.acceptance RENDER_DIR", file=sys.stderr)
        return 2
    try:
        count, rejections = check_tree(Path(argv[0]))
    except (OSError, subprocess.CalledProcessError) as error:
        print(f"acceptance: cannot run the check: {error}", file=sys.stderr)
        return 2
    for r in rejections:
        print(f"REJECTED {r}")
    print(f"{count} hosts: ipsets, rules.v4 and rules.v6 {'accepted' if not rejections else 'NOT all accepted'} by the kernel")
    return 1 if rejections else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
