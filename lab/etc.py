"""Each lab host's own /etc, under /etc/netns/<ns>/ (`ip netns exec` binds every entry there over
/etc/<entry> for the processes it starts: the firewall bootcmd, the daemons, SSH sessions).

A top-level folder a host writes (ssh, haproxy, iptables, enclave, ...) is a copy of the machine's
(without its SSH host keys), or empty if the machine has none; in that case an empty mount point
/etc/<entry> is made on the machine and recorded, and removed by `down` once no lab uses it.
Each folder carries a marker naming the namespace, checked before any lab script writes to /etc.
"""
from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path

from lab import names
from lab.artifacts import WrittenFile

MARKER = ".enclave-lab-ns"
MOUNT_POINTS = "mount-points.json"  # in the state root: mount points the lab made on the machine
SKIP = {"ssh": shutil.ignore_patterns("ssh_host_*")}
ETC = Path("/etc")
_lock = threading.Lock()


def host_etc(ns: str) -> Path:
    return names.NETNS_ETC / ns


def _record_mount_point(path: Path) -> None:
    with _lock:
        _record(path)


def _record(path: Path) -> None:
    record = names.state_root() / MOUNT_POINTS
    record.parent.mkdir(parents=True, exist_ok=True)
    made = json.loads(record.read_text()) if record.exists() else []
    if str(path) not in made:
        made.append(str(path))
        record.write_text(json.dumps(made))


def prepare(ns: str, tops: tuple[str, ...]) -> Path:
    """The host's /etc/netns/<ns>/ with a copy (or an empty folder) for each top-level entry."""
    root = host_etc(ns)
    root.mkdir(parents=True, exist_ok=True)
    for top in tops:
        target = root / top
        source = ETC / top
        if source.is_dir():
            shutil.copytree(source, target, symlinks=True, ignore=SKIP.get(top), dirs_exist_ok=True)
        else:
            if not source.exists():
                try:
                    source.mkdir(mode=0o755)
                    _record_mount_point(source)
                except FileExistsError:  # made by a parallel host a moment ago
                    pass
            target.mkdir(parents=True, exist_ok=True)
        (target / MARKER).write_text(ns + "\n")
    return root


def write(ns: str, files: tuple[WrittenFile, ...]) -> None:
    root = host_etc(ns)
    for f in files:
        path = root / f.path.removeprefix("/etc/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f.content)
        os.chmod(path, f.mode)


def guard_script(ns: str, tops: tuple[str, ...]) -> str:
    """sh lines refusing to run unless /etc/<top> is this namespace's copy (the bind took effect)."""
    checks = " && ".join(f'[ "$(cat /etc/{t}/{MARKER} 2>/dev/null)" = "{ns}" ]' for t in tops)
    return f'{checks} || {{ echo "enclave-lab: /etc is not the lab copy of {ns}: refusing" >&2; exit 97; }}\n'


def make_dir(path: Path) -> None:
    """Make a folder the daemons need on the machine (e.g. /run/sshd), recorded for `down`."""
    if not path.exists():
        try:
            path.mkdir(parents=True, mode=0o755)
            _record_mount_point(path)
        except FileExistsError:
            pass


def record_file(path: Path) -> None:
    """A file the lab makes on the machine (a stand-in's socket), removed by `down`."""
    _record_mount_point(path)


def remove_mount_points() -> list[str]:
    """Remove what the lab made on the machine (empty folders, sockets) once no lab remains."""
    root = names.state_root()
    record = root / MOUNT_POINTS
    if not record.exists():
        return []
    if any(p.is_dir() for p in root.iterdir()):
        return []  # another stack's lab still runs
    removed = []
    for path in reversed(json.loads(record.read_text())):
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                os.rmdir(path)  # only if empty
            else:
                os.unlink(path)
            removed.append(path)
        except OSError:
            pass
    record.unlink()
    try:
        root.rmdir()
    except OSError:
        pass
    return removed
