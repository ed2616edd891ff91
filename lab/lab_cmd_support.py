"""What the lab needs from the machine, checked before anything is made."""
from __future__ import annotations

import os
import shutil

TOOLS = ("ip", "iptables-restore", "ip6tables-restore", "ipset", "sshd", "ssh", "ssh-keygen", "sysctl")


def require_root() -> str | None:
    """None when the lab can run here, else the reason."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, iptables): run as root"
    path = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    missing = [t for t in TOOLS if shutil.which(t, path=path) is None]
    if missing:
        return f"missing tools: {', '.join(missing)} (bash scripts/setup.sh installs them)"
    return None
