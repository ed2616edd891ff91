"""Names of what enclave owns in netfilter: its chains and its ipsets.

Built-in chains only jump into enclave's chains, so an update can refill enclave's chains
(`iptables-restore --noflush`) without touching foreign chains such as fail2ban's or docker's.
"""
from __future__ import annotations

INPUT = "enclave-input"
FORWARD = "enclave-forward"
OUTPUT = "enclave-output"
DENY = "enclave-deny"  # rate-limited LOG, then DROP or REJECT
HELPERS = "enclave-helpers"  # raw table: CT --helper assignments
PREROUTING = "enclave-prerouting"  # nat table: DNAT
POSTROUTING = "enclave-postrouting"  # nat table: masquerade

ADMIN_SET = "enclave-admin"
ADMIN_SET6 = "enclave-admin6"


def role_set(role: str) -> str:
    """The ipset holding the private addresses of every host of `role`."""
    return f"enclave-{role}"
