"""Rehearsals in real network namespaces (root): wordpress and amanda end to end, cleanup after
a crash and after Ctrl-C. Under CI=true these fail, never skip, when namespaces are unavailable."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lab import names, network
from lab.lab import Lab
from lab.rehearse import rehearse
from topology.load import load_stack

pytestmark = pytest.mark.lab
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", autouse=True)
def lab_machine(lab_ready):
    """Every test here needs root and namespaces (tests/lab/conftest.py: fail under CI=true)."""


def _assert_clean(stack: str) -> None:
    assert network.leftovers(stack) == []
    assert not names.state_dir(stack).exists()
    assert not any(p.name.startswith(names.prefix(stack)) for p in names.NETNS_ETC.glob("*"))


@pytest.mark.parametrize("stack", ["wordpress", "amanda"])
def test_rehearsal_is_green_and_leaves_nothing(stack, tmp_path):
    report_path = tmp_path / "report.json"
    code = rehearse(load_stack(stack), report_path=report_path, progress=lambda _: None)
    rep = json.loads(report_path.read_text())
    assert rep["mismatches"] == [] and rep["failed_checks"] == [], rep["mismatches"] + rep["failed_checks"]
    assert code == 0 and rep["result"] == "green"
    assert rep["probes"] > 500 and all(f["verdict"] == "ok" for f in rep["flows"])
    assert {"network", "phase1", "phase2", "probe", "down"} <= set(rep["timings"])
    _assert_clean(stack)


def test_up_after_a_crash_cleans_the_leftovers():
    stack = load_stack("evergreen")
    crashed = Lab(stack, progress=lambda _: None)
    crashed.up()  # no down: as if the process had died here
    pids = list(crashed.info["pids"].values())
    assert network.leftovers("evergreen")
    again = Lab(stack, progress=lambda _: None)
    try:
        again.up()
        assert not any(os.path.exists(f"/proc/{p}") and Path(f"/proc/{p}/stat").read_text().split()[2] != "Z"
                       for p in pids), "processes of the crashed run survived"
        assert sorted(network.leftovers("evergreen")) == sorted(ns.name for ns in again.plan.namespaces)
    finally:
        again.down()
    _assert_clean("evergreen")


def test_ctrl_c_tears_everything_down():
    proc = subprocess.Popen([sys.executable, "-m", "enclave_cli.main", "rehearse", "--stack", "gateway"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 30
    while not network.leftovers("gateway") and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # somewhere in phase 1 or 2
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode != 0, out
    assert "lab down" in out
    _assert_clean("gateway")
