"""Registry of launchers for the real daemons the lab runs (lab.services names them by kind).

Each launcher prepares what the daemon needs beyond the rendered files and returns its command
line; the lab runs it in the host's namespace (so /etc is the host's copy). Lab-only settings:
- sshd: a generated host key and the lab client key via `-o AuthorizedKeysFile=` (a real droplet
  gets the stack's keys from cloud-init); everything else from the rendered drop-in;
- nginx: the main nginx.conf is the lab's (/etc/nginx/enclave-lab-nginx.conf) (pid, logs and temp paths in the state folder, one
  worker); it includes the rendered site from sites-available, as the profile's runcmd enables it;
  the lab's copy of Debian's snippets/fastcgi-php.conf drops its file-exists test (no WordPress
  files here), so PHP requests reach lab.php_standin (a named STAND-IN for php-fpm + WordPress);
- haproxy: the rendered haproxy.cfg as it is, in the foreground (`-db`).
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from lab import etc
from lab.system import run

LAB_AUTHORIZED_KEYS = "/etc/ssh/enclave-lab-authorized_keys"


@dataclass(frozen=True)
class HostContext:
    stack: str
    host: str
    ns: str
    etc: Path  # the host's /etc/netns/<ns>
    state: Path  # the lab's state folder
    client_key: Path  # the lab's SSH public key file


class Sshd:
    kind = "sshd"
    watch = ("/etc/ssh/sshd_config.d",)

    def available(self) -> bool:
        return os.path.exists("/usr/sbin/sshd") and shutil.which("ssh-keygen") is not None

    def prepare(self, ctx: HostContext) -> None:
        key = ctx.etc / "ssh" / "ssh_host_ed25519_key"
        if not key.exists():
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{ctx.host}@enclave-lab", "-f", str(key)])
        keys = ctx.etc / "ssh" / Path(LAB_AUTHORIZED_KEYS).name
        keys.write_text(ctx.client_key.read_text())
        os.chmod(keys, 0o600)
        etc.make_dir(Path("/run/sshd"))  # privilege separation folder (Debian's tmpfiles.d makes it)

    def argv(self, ctx: HostContext) -> list[str]:
        return ["/usr/sbin/sshd", "-D", "-e", "-o", f"AuthorizedKeysFile={LAB_AUTHORIZED_KEYS}",
                "-o", "HostKey=/etc/ssh/ssh_host_ed25519_key", "-o", "PidFile=none"]


class Haproxy:
    kind = "haproxy"
    watch = ("/etc/haproxy/haproxy.cfg",)

    def available(self) -> bool:
        return shutil.which("haproxy") is not None

    def prepare(self, ctx: HostContext) -> None:
        pass

    def argv(self, ctx: HostContext) -> list[str]:
        return ["haproxy", "-db", "-f", "/etc/haproxy/haproxy.cfg"]


NGINX_MAIN = """# enclave lab: main nginx.conf for {host} (the rendered site is included as it is)
worker_processes 1;
pid {run}/nginx.pid;
error_log {run}/nginx-error.log;
events {{ worker_connections 256; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log {run}/nginx-access.log;
    client_body_temp_path {run}/body;
    proxy_temp_path {run}/proxy;
    fastcgi_temp_path {run}/fastcgi;
    uwsgi_temp_path {run}/uwsgi;
    scgi_temp_path {run}/scgi;
    include /etc/nginx/conf.d/*.conf;
    include /etc/nginx/sites-available/enclave-*;
}}
"""


MAIN_CONF = "enclave-lab-nginx.conf"


class Nginx:
    kind = "nginx"
    watch = ("/etc/nginx/sites-available",)

    def available(self) -> bool:
        return shutil.which("nginx") is not None

    def _run_dir(self, ctx: HostContext) -> Path:
        return ctx.state / "run" / ctx.host / "nginx"

    def prepare(self, ctx: HostContext) -> None:
        rundir = self._run_dir(ctx)
        rundir.mkdir(parents=True, exist_ok=True)
        os.chmod(rundir, 0o755)
        snippet = ctx.etc / "nginx" / "snippets" / "fastcgi-php.conf"
        if snippet.exists():  # no WordPress files in the lab: let PHP requests reach the stand-in
            snippet.write_text("".join(line for line in snippet.read_text().splitlines(keepends=True)
                                       if "try_files" not in line))
        # in the host's /etc/nginx, so the site's relative includes (snippets/...) resolve there
        (ctx.etc / "nginx" / MAIN_CONF).write_text(NGINX_MAIN.format(host=ctx.host, run=rundir))

    def argv(self, ctx: HostContext) -> list[str]:
        rundir = self._run_dir(ctx)
        return ["nginx", "-e", str(rundir / "nginx-error.log"), "-c", f"/etc/nginx/{MAIN_CONF}", "-g", "daemon off;"]


LAUNCHERS = {launcher.kind: launcher for launcher in (Sshd(), Haproxy(), Nginx())}


def installed() -> frozenset[str]:
    """Kinds of daemons this machine can run for real (the rest become stand-ins)."""
    return frozenset(kind for kind, launcher in LAUNCHERS.items() if launcher.available())
