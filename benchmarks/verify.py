"""Time of `enclave verify` on wordpress stacks of 10, 100 and 1000 hosts.

Per size: probes evaluated (input, DNAT and forward-out, phase 2), the sources used (every host
up to 60 hosts, one per role above), seconds for the whole verification (compile phases 1 and 2,
parse back, matrix, evaluation, anti-lockout, shadow analysis; the stack is loaded before the
clock starts) and hosts per second. Prints numbers; asserts nothing. Goal: 1000 hosts <= 2 s.
Usage: .venv/bin/python -m benchmarks.verify [--repeat N]
"""
from __future__ import annotations

import argparse
import time

from benchmarks.variants import wordpress_variant
from firewall.verify import verify_stack

SIZES = (10, 100, 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs (default 3)")
    args = parser.parse_args()
    print(f"{'hosts':>6} {'probes':>8} {'sources':>8} {'seconds':>8} {'hosts/s':>8} {'us/probe':>9} {'ok':>3}")
    for total in SIZES:
        stack = wordpress_variant(total)
        best, report = float("inf"), None
        for _ in range(args.repeat):
            start = time.perf_counter()
            report = verify_stack(stack)
            best = min(best, time.perf_counter() - start)
        sources = "roles" if report.representatives else "all"
        print(f"{total:>6} {report.probes:>8} {sources:>8} {best:>8.3f} {total / best:>8.0f} "
              f"{1e6 * best / report.probes:>9.2f} {'yes' if report.ok() else 'NO':>3}")


if __name__ == "__main__":
    main()
