"""Registry: what cloud-init adds for each service profile on Ubuntu 24.04 (packages, files, commands).

Every profile gets BASE (hardened sshd, the firewall packages, the apply script). A file marked
for phase 2 is peer-dependent: peer sync rewrites it with real addresses and reloads its service.
Profile names are those of `topology.catalog.PROFILES`; a test keeps the two registries in step.
"""
from __future__ import annotations

from dataclasses import dataclass

UBUNTU = {"postgresql": "16", "php": "8.3"}  # versions in Ubuntu 24.04 (noble)
APPLY_SCRIPT = "/etc/enclave/enclave-apply"
HAPROXY_PEM = "/etc/haproxy/certs/enclave.pem"


@dataclass(frozen=True)
class ServiceFile:
    """A config file under /etc rendered from `template` (phase 1: write_files; phase 2: peer sync)."""

    path: str
    template: str
    phases: tuple[int, ...] = (1,)
    service: str = "-"  # systemd unit (without .service) to reload when the file changes
    action: str = "reload"  # reload | restart
    mode: str = "0644"
    defer: bool = False  # written after packages are installed (the package creates its folder)
    copy: bool = False  # the template is copied as it is, not rendered
    compress: bool = False  # stored gzip+base64 in user-data (size: DigitalOcean's 64 KiB limit)

    def __post_init__(self) -> None:
        if not self.path.startswith("/etc/"):
            raise ValueError(f"{self.path}: enclave writes files under /etc only (the lab binds /etc/netns)")


@dataclass(frozen=True)
class ProfileSpec:
    packages: tuple[str, ...] = ()
    files: tuple[ServiceFile, ...] = ()
    debconf: tuple[tuple[str, str], ...] = ()  # (package, template producing debconf-set-selections lines)
    bootcmd: tuple[str, ...] = ()  # idempotent shell lines run at every boot, after the firewall
    runcmd: tuple[str, ...] = ()  # shell lines run once, after packages are installed


BASE = ProfileSpec(
    packages=("iptables", "ipset", "netfilter-persistent", "iptables-persistent", "ipset-persistent"),
    files=(
        ServiceFile("/etc/ssh/sshd_config.d/10-enclave.conf", "base.sshd.conf.j2", service="ssh"),
        ServiceFile(APPLY_SCRIPT, "enclave-apply.sh", mode="0755", copy=True, compress=True),
    ),
    debconf=(("iptables-persistent", "base.debconf.j2"),),
    runcmd=(
        "systemctl enable netfilter-persistent.service",
        # socket-activated ssh (24.04): a running sshd reloads the drop-in; otherwise the next start reads it
        "systemctl try-reload-or-restart ssh.service",
    ),
)

_NGINX_RELOAD = "systemctl reload-or-restart nginx.service"
_PG = f"/etc/postgresql/{UBUNTU['postgresql']}/main"

PROFILE_SPECS: dict[str, ProfileSpec] = {
    "tunnel": ProfileSpec(),
    "generic": ProfileSpec(),
    "haproxy": ProfileSpec(
        packages=("haproxy",),
        files=(ServiceFile("/etc/haproxy/haproxy.cfg", "haproxy.cfg.j2", phases=(1, 2), service="haproxy"),),
        bootcmd=(
            # a self-signed certificate for :443 until a real one is installed, before haproxy exists
            f"[ -s {HAPROXY_PEM} ] || {{ mkdir -p -m 0700 /etc/haproxy/certs && openssl req -x509 -newkey rsa:2048 "
            f"-nodes -days 825 -subj /CN=$(hostname) -keyout {HAPROXY_PEM} -out {HAPROXY_PEM}.crt 2>/dev/null "
            f"&& cat {HAPROXY_PEM}.crt >> {HAPROXY_PEM} && rm -f {HAPROXY_PEM}.crt; }}",
        ),
    ),
    "wordpress": ProfileSpec(
        packages=("nginx", f"php{UBUNTU['php']}-fpm", f"php{UBUNTU['php']}-mysql", "wordpress", "glusterfs-server"),
        files=(
            ServiceFile("/etc/nginx/sites-available/enclave-wordpress", "wordpress.nginx.conf.j2", service="nginx"),
            ServiceFile("/etc/wordpress/config-default.php", "wordpress.config.php.j2", phases=(2,), mode="0640"),
        ),
        runcmd=(
            "ln -sf /etc/nginx/sites-available/enclave-wordpress /etc/nginx/sites-enabled/enclave-wordpress",
            "rm -f /etc/nginx/sites-enabled/default",
            _NGINX_RELOAD,
        ),
    ),
    "mysql": ProfileSpec(
        packages=("mariadb-server",),
        files=(
            ServiceFile("/etc/mysql/mariadb.conf.d/60-enclave.cnf", "mysql.server.cnf.j2", phases=(1, 2),
                        service="mariadb", action="restart"),
            ServiceFile("/etc/enclave/mysql/init.sql", "mysql.init.sql.j2", mode="0600"),
            ServiceFile("/etc/enclave/mysql/replication.sql", "mysql.replication.sql.j2", phases=(2,), mode="0600"),
        ),
        runcmd=(
            "systemctl restart mariadb.service",
            "mariadb --user=root < /etc/enclave/mysql/init.sql && rm -f /etc/enclave/mysql/init.sql",
        ),
    ),
    "postgresql": ProfileSpec(
        packages=("postgresql",),
        files=(
            ServiceFile(f"{_PG}/conf.d/60-enclave.conf", "postgresql.conf.j2", phases=(1, 2), service="postgresql",
                        action="restart", defer=True),
            ServiceFile(f"{_PG}/pg_hba.conf", "postgresql.pg_hba.conf.j2", phases=(1, 2), service="postgresql",
                        mode="0640", defer=True),
            ServiceFile("/etc/enclave/postgresql/init.sql", "postgresql.init.sql.j2", mode="0600"),
        ),
        runcmd=(
            f"chown postgres:postgres {_PG}/pg_hba.conf {_PG}/conf.d/60-enclave.conf",
            "systemctl restart postgresql.service",
            "runuser -u postgres -- psql -v ON_ERROR_STOP=1 -f - < /etc/enclave/postgresql/init.sql"
            " && rm -f /etc/enclave/postgresql/init.sql",
        ),
    ),
    "evergreen-app": ProfileSpec(
        packages=("nginx", "postgresql-client"),
        files=(ServiceFile("/etc/enclave/evergreen/db.env", "evergreen.db.env.j2", phases=(2,), mode="0600"),),
    ),
    "mail": ProfileSpec(
        packages=("postfix", "dovecot-imapd"),
        debconf=(("postfix", "mail.debconf.j2"),),
        files=(
            ServiceFile("/etc/dovecot/conf.d/99-enclave.conf", "mail.dovecot.conf.j2", service="dovecot"),
            ServiceFile("/etc/enclave/postfix/postconf", "mail.postconf.j2"),
        ),
        runcmd=(
            "xargs -r -d '\\n' postconf -e < /etc/enclave/postfix/postconf",
            "postconf -M 'submission/inet=submission inet n - y - - smtpd'",
            "postconf -P 'submission/inet/smtpd_tls_security_level=encrypt' 'submission/inet/smtpd_sasl_auth_enable=yes'",
            "systemctl restart postfix.service dovecot.service",
        ),
    ),
    "web": ProfileSpec(
        packages=("nginx", "ssl-cert"),
        files=(ServiceFile("/etc/nginx/sites-available/enclave-web", "web.nginx.conf.j2", service="nginx"),),
        runcmd=(
            "ln -sf /etc/nginx/sites-available/enclave-web /etc/nginx/sites-enabled/enclave-web",
            "rm -f /etc/nginx/sites-enabled/default",
            _NGINX_RELOAD,
        ),
    ),
    "dns": ProfileSpec(
        packages=("bind9",),
        files=(ServiceFile("/etc/bind/named.conf.options", "dns.named.conf.options.j2", service="named"),),
    ),
    "amanda-server": ProfileSpec(
        packages=("amanda-server",),
        files=(
            ServiceFile("/etc/sysctl.d/60-enclave-amanda.conf", "amanda.sysctl.conf.j2"),
            ServiceFile("/etc/amanda/enclave/disklist", "amanda.disklist.j2", phases=(2,)),
        ),
        runcmd=("sysctl -p /etc/sysctl.d/60-enclave-amanda.conf",),
    ),
    "amanda-client": ProfileSpec(
        packages=("amanda-client",),
        files=(
            ServiceFile("/etc/sysctl.d/60-enclave-amanda.conf", "amanda.sysctl.conf.j2"),
            ServiceFile("/etc/amanda/amanda-client.conf", "amanda.client.conf.j2", phases=(2,)),
        ),
        runcmd=("sysctl -p /etc/sysctl.d/60-enclave-amanda.conf",),
    ),
    "gateway": ProfileSpec(
        files=(ServiceFile("/etc/sysctl.d/60-enclave-forward.conf", "gateway.sysctl.conf.j2"),),
    ),
}


def spec_parts(profile: str) -> tuple[ProfileSpec, ProfileSpec]:
    """BASE and the profile's own spec, in the order their parts are emitted."""
    return BASE, PROFILE_SPECS[profile]
