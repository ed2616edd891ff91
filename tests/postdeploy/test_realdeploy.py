"""Only on a real deploy (--real-deploy): packages installed, systemd units active and enabled."""
from __future__ import annotations

import pytest

from tests.postdeploy import fleet as F

pytestmark = pytest.mark.realdeploy


def test_packages_installed(side, hostname):
    missing = [p for p in F.packages(side.fleet, hostname) if not side.hosts[hostname].package(p).is_installed]
    assert not missing, f"{hostname}: packages not installed: {', '.join(missing)}"


def test_units_active_and_enabled(side, hostname):
    problems = []
    for unit in F.units(side.fleet, hostname):
        service = side.hosts[hostname].service(unit)
        if not service.is_running:
            problems.append(f"{unit} is not active")
        enabled = service.is_enabled or (unit == "ssh" and side.hosts[hostname].service("ssh.socket").is_enabled)
        if not enabled:
            problems.append(f"{unit} is not enabled")
    assert not problems, f"{hostname}: " + "; ".join(problems)
