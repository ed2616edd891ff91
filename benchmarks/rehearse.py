"""Rehearsal time per phase: the wordpress stack and a 50-host wordpress variant (as root).

Usage: .venv/bin/python benchmarks/rehearse.py [--hosts 50] [--out FILE]
Goals: wordpress end to end <= 30 s; 50 hosts <= 120 s.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lab.rehearse import rehearse  # noqa: E402
from topology.load import load_stack, load_stack_text, stack_path  # noqa: E402

GOALS = {"wordpress": 30.0, "wordpress50": 120.0}
PHASES = ("network", "render", "phase1", "phase2", "probe", "checks", "postdeploy", "down", "total")


def variant(hosts: int) -> str:
    """The wordpress stack file with `hosts` hosts: tunnel, lb, then half web servers, half MySQL."""
    text = stack_path("wordpress").read_text()
    web = (hosts - 2) // 2
    return (text.replace("wordpress: {count: 2, profile: wordpress}", f"wordpress: {{count: {web}, profile: wordpress}}")
                .replace("mysql: {count: 2, profile: mysql}", f"mysql: {{count: {hosts - 2 - web}, profile: mysql}}"))


def measure(stack) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "report.json"
        code = rehearse(stack, report_path=path, progress=lambda _: None)
        rep = json.loads(path.read_text())
    return {"stack": stack.name, "hosts": len(stack.hosts), "probes": rep["probes"], "result": rep["result"],
            "exit": code, "timings": rep["timings"], "mismatches": len(rep["mismatches"])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    name = f"wordpress{args.hosts}"
    with tempfile.TemporaryDirectory() as stacks:
        # the post-deploy suite (a subprocess) loads the stack by name: give it the variant's file
        (Path(stacks) / f"Pulumi.{name}.yaml").write_text(variant(args.hosts))
        (Path(stacks) / "Pulumi.wordpress.yaml").write_text(stack_path("wordpress").read_text())
        os.environ["ENCLAVE_STACKS_DIR"] = stacks
        runs = [measure(load_stack("wordpress")), measure(load_stack_text(name, variant(args.hosts)))]
    print(f"{'stack':<13}{'hosts':>6}{'probes':>8}  " + "".join(f"{p:>11}" for p in PHASES) + "   result")
    for r in runs:
        goal = GOALS.get(r["stack"])
        total = r["timings"].get("total", 0.0)
        verdict = f"{r['result']}, {'within' if goal and total <= goal else 'OVER'} goal {goal:.0f}s" if goal else r["result"]
        print(f"{r['stack']:<13}{r['hosts']:>6}{r['probes']:>8}  "
              + "".join(f"{r['timings'].get(p, 0.0):>10.1f}s" for p in PHASES) + f"   {verdict}")
    if args.out:
        args.out.write_text(json.dumps(runs, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
