"""Phase 2 in the lab, the real peer-sync path: from the operator namespace, SSH through the
tunnel (ProxyJump) to each host, copy its payload, run the on-host enclave-apply, and confirm
with a second, new SSH round trip (as the deploy does; an unconfirmed apply rolls back).
"""
from __future__ import annotations

import io
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from lab.artifacts import APPLY
from lab.ssh import check, ssh

PAYLOAD_DIR = "/etc/enclave/peer-sync"  # on the host (the lab's per-host /etc)
CONFIRM_WITHIN = 60  # seconds before enclave-apply rolls back on its own


@dataclass(frozen=True)
class SyncResult:
    host: str
    seconds: float
    output: str


def payload_tar(payload: tuple[tuple[str, str], ...]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for rel, text in payload:
            data = text.encode()
            info = tarfile.TarInfo(rel)
            info.size = len(data)
            info.mode = 0o600
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def sync_host(operator: str, state: Path, host: str, payload: tuple[tuple[str, str], ...]) -> SyncResult:
    start = time.monotonic()
    command = (f"set -e; rm -rf {PAYLOAD_DIR}; mkdir -p {PAYLOAD_DIR}; tar -xf - -C {PAYLOAD_DIR}; "
               f"{APPLY} apply --timeout {CONFIRM_WITHIN} {PAYLOAD_DIR}")
    out = check(ssh(operator, state, host, command, payload_tar(payload)), f"peer sync to {host} (copy + apply)")
    out += check(ssh(operator, state, host, f"{APPLY} confirm && {APPLY} status"), f"peer sync to {host} (confirm)")
    return SyncResult(host, time.monotonic() - start, out)


def sync_all(operator: str, state: Path, payloads: dict[str, tuple[tuple[str, str], ...]], tunnel: str,
             workers: int = 6, progress=None) -> list[SyncResult]:
    """The tunnel first (every other host is reached through it), then the rest in parallel."""
    results = [sync_host(operator, state, tunnel, payloads[tunnel])]
    if progress:
        progress(f"  phase 2: {tunnel} applied and confirmed ({results[0].seconds:.1f}s)")
    rest = [h for h in payloads if h != tunnel]

    def one(host):
        result = sync_host(operator, state, host, payloads[host])
        if progress:
            progress(f"  phase 2: {host} applied and confirmed ({result.seconds:.1f}s)")
        return result

    with ThreadPoolExecutor(workers) as pool:
        results += list(pool.map(one, rest))
    return results
