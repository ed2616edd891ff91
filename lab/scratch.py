"""A scratch network namespace: made for one check, removed afterwards whatever happens."""
from __future__ import annotations

import contextlib
import os
import subprocess
import uuid
from typing import Iterator


def run_in(ns: str, argv: list[str], stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run argv inside namespace `ns`, capturing text output."""
    return subprocess.run(["ip", "netns", "exec", ns, *argv], input=stdin, text=True, capture_output=True, check=check)


@contextlib.contextmanager
def scratch_namespace(prefix: str = "enc-scratch") -> Iterator[str]:
    """A fresh, empty namespace name; deleted on exit, also after an exception."""
    name = f"{prefix}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
