"""Render time of wordpress stacks of 10, 100 and 1000 hosts.

Two numbers per size: the policy core (validate the config, compile every host's rules.v4,
rules.v6 and ipsets, write the inventory) and the whole `enclave render` tree (adds each
host's cloud-init user-data and peer-sync payload). Prints numbers; asserts nothing.
Usage: .venv/bin/python -m benchmarks.render [--repeat N]
"""
from __future__ import annotations

import argparse
import time

from artifacts import render_stack_files
from benchmarks.variants import wordpress_variant
from firewall.compile import Compiler
from topology.inventory import inventory_json

SIZES = (10, 100, 1000)


def policy_core(total: int) -> int:
    stack = wordpress_variant(total)
    compiled = Compiler(stack).all_hosts()
    return sum(len(fw.rules_v4) + len(fw.rules_v6) + len(fw.ipsets) for fw in compiled.values()) + len(inventory_json(stack))


def whole_render(total: int) -> int:
    return sum(len(text) for text in render_stack_files(wordpress_variant(total)).values())


def best_of(repeat: int, work, total: int) -> tuple[float, int]:
    best, size = float("inf"), 0
    for _ in range(repeat):
        start = time.perf_counter()
        size = work(total)
        best = min(best, time.perf_counter() - start)
    return best, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"{'hosts':>6} {'core s':>8} {'core ms/host':>13} {'core MiB':>9} {'render s':>9} {'render ms/host':>15} {'render MiB':>11}")
    for total in SIZES:
        core, core_size = best_of(args.repeat, policy_core, total)
        full, full_size = best_of(args.repeat, whole_render, total)
        print(f"{total:>6} {core:>8.3f} {1000 * core / total:>13.3f} {core_size / 2**20:>9.2f} "
              f"{full:>9.3f} {1000 * full / total:>15.3f} {full_size / 2**20:>11.2f}")


if __name__ == "__main__":
    main()
