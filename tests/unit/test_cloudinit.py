"""Per-host cloud-config: valid for the real cloud-init, small enough, firewall first, no secrets.

`cloud-init schema --config-file` is Debian's cloud-init (scripts/apt-packages.txt), run as a
subprocess on every user-data of every stack, several at a time.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jinja2
import pytest
import yaml

from cloudinit import profiles
from cloudinit.render import (USER_DATA_LIMIT, firewall_bootcmd, payload_hash, peer_sync_payload, service_files,
                              user_data)
from cloudinit.secrets import Secrets
from cloudinit.templating import TEMPLATES_DIR, Templates, TemplateVariableError
from tests.unit.stackdata import wordpress_document
from topology.catalog import PROFILES
from topology.errors import ConfigError
from topology.load import available_stacks, load_stack, load_stack_text

SECRETS = Secrets.placeholders()
STACKS = available_stacks()
# modules that start, install or run things; bootcmd and write_files must come before them all
LATER_MODULES = ("package-update-upgrade-install", "runcmd", "scripts-user", "write-files-deferred")


def all_user_data() -> dict[str, str]:
    out = {}
    for name in STACKS:
        stack = load_stack(name)
        for host in stack.hosts:
            out[f"{name}/{host.name}"] = user_data(stack, host.name, secrets=SECRETS)
    return out


@pytest.fixture(scope="module")
def rendered() -> dict[str, str]:
    return all_user_data()


def scaled_wordpress(count: int) -> object:
    doc = wordpress_document()
    doc["config"]["enclave:roles"]["wordpress"]["count"] = count
    doc["config"]["enclave:vpc_cidr"] = "10.10.0.0/16"
    return load_stack_text("wordpress", yaml.safe_dump(doc))


def test_every_host_of_every_stack_renders(rendered):
    assert len(rendered) == sum(len(load_stack(s).hosts) for s in STACKS)
    for key, text in rendered.items():
        assert text.startswith("#cloud-config\n"), key
        assert isinstance(yaml.safe_load(text), dict), key


def test_real_cloud_init_schema_accepts_every_user_data(rendered, tmp_path):
    tool = shutil.which("cloud-init")
    if tool is None:
        pytest.fail("cloud-init is not installed (scripts/setup.sh installs Debian's cloud-init)")
    paths = []
    for key, text in rendered.items():
        path = tmp_path / key.replace("/", "__")
        path.write_text(text)
        paths.append(path)

    def check(path: Path) -> tuple[Path, subprocess.CompletedProcess]:
        return path, subprocess.run([tool, "schema", "--config-file", str(path)], capture_output=True, text=True)

    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        results = list(pool.map(check, paths))
    failures = [f"{p.name}: {r.stdout}{r.stderr}" for p, r in results if r.returncode != 0 or "Valid" not in r.stdout]
    assert not failures, "\n".join(failures)


def test_schema_check_can_fail(tmp_path):
    """The same command rejects a broken config, so the test above can fail."""
    text = user_data(load_stack("wordpress"), "lb-1", secrets=SECRETS).replace("package_update: true",
                                                                                "package_update: maybe")
    path = tmp_path / "bad"
    path.write_text(text)
    done = subprocess.run(["cloud-init", "schema", "--config-file", str(path)], capture_output=True, text=True)
    assert done.returncode != 0 and "package_update" in done.stdout + done.stderr


def test_sizes_within_digitalocean_limit(rendered):
    too_big = {k: len(t.encode()) for k, t in rendered.items() if len(t.encode()) > USER_DATA_LIMIT}
    assert not too_big


def test_two_hundred_wordpress_hosts_stay_under_16_kib():
    stack = scaled_wordpress(200)
    sizes = {h.name: len(user_data(stack, h.name, secrets=SECRETS).encode()) for h in stack.hosts}
    assert len(sizes) == 204  # tunnel, lb, 200 wordpress, 2 mysql
    assert max(sizes.values()) < 16 * 1024, max(sizes.items(), key=lambda kv: kv[1])


def test_oversized_user_data_is_an_error_naming_the_host():
    doc = wordpress_document()
    # hundreds of single-address sources: each is a rule line in the db role's rules
    doc["config"]["enclave:flows"] += [{"from": f"198.18.{i // 250}.{i % 250 + 1}/32", "to": "mysql", "proto": "tcp",
                                        "ports": 3306} for i in range(900)]
    stack = load_stack_text("wordpress", yaml.safe_dump(doc))
    with pytest.raises(ConfigError) as caught:
        user_data(stack, "mysql-2", secrets=SECRETS)
    assert [p.path for p in caught.value.problems] == ["host mysql-2"]
    assert "64" in caught.value.report() or "65536" in caught.value.report()


def test_firewall_is_first_bootcmd_and_nothing_starts_before_it(rendered):
    order = yaml.safe_load(Path("/etc/cloud/cloud.cfg").read_text())
    modules = [m if isinstance(m, str) else m[0] for stage in ("cloud_init_modules", "cloud_config_modules",
                                                               "cloud_final_modules") for m in order[stage]]
    modules = [m.replace("_", "-") for m in modules]
    for later in LATER_MODULES:
        assert modules.index("bootcmd") < modules.index("write-files") < modules.index(later)
    for key, text in rendered.items():
        data = yaml.safe_load(text)
        script = firewall_bootcmd(text)
        assert script.startswith("# enclave-firewall\n"), key
        assert data["bootcmd"][0] == ["sh", "-c", script], key
        for line in ("ipset restore -exist < /etc/iptables/ipsets", "iptables-restore < /etc/iptables/rules.v4",
                     "ip6tables-restore < /etc/iptables/rules.v6"):
            assert line in script, (key, line)
        for item in data["bootcmd"]:  # nothing in bootcmd starts or installs a service
            assert not re.search(r"systemctl|service |apt-get|apt |dpkg", " ".join(item)), (key, item)


def test_firewall_bootcmd_refuses_other_user_data():
    with pytest.raises(ValueError):
        firewall_bootcmd("#cloud-config\nbootcmd:\n- [sh, -c, 'echo hi']\n")


def test_autosave_preseed_and_persistence_packages(rendered):
    for key, text in rendered.items():
        data = yaml.safe_load(text)
        selections = data["apt"]["debconf_selections"]["iptables-persistent"]
        assert "iptables-persistent/autosave_v4 boolean false" in selections, key
        assert "iptables-persistent/autosave_v6 boolean false" in selections, key
        assert {"iptables-persistent", "ipset-persistent"} <= set(data["packages"]), key
        assert data["ssh_pwauth"] is False, key


def test_sshd_hardening_drop_in_sorts_first():
    files = service_files(load_stack("wordpress"), "mysql-1", secrets=SECRETS)
    sshd = files["/etc/ssh/sshd_config.d/10-enclave.conf"]
    for line in ("PasswordAuthentication no", "PermitRootLogin prohibit-password", "KbdInteractiveAuthentication no",
                 "AllowTcpForwarding no"):
        assert line in sshd.splitlines()
    tunnel = service_files(load_stack("wordpress"), "tunnel-1", secrets=SECRETS)
    assert "AllowTcpForwarding yes" in tunnel["/etc/ssh/sshd_config.d/10-enclave.conf"].splitlines()


def test_real_sshd_accepts_the_drop_in(tmp_path):
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    drop_in = service_files(load_stack("wordpress"), "tunnel-1", secrets=SECRETS)["/etc/ssh/sshd_config.d/10-enclave.conf"]
    key = tmp_path / "hostkey"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    config = tmp_path / "sshd_config"

    def check() -> subprocess.CompletedProcess:
        # sshd -t wants /run/sshd: give it one in a private mount namespace, not on the machine
        script = f"mount -t tmpfs tmpfs /run && mkdir /run/sshd && exec {sshd} -t -f {config}"
        return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                              capture_output=True, text=True)

    config.write_text(drop_in + f"HostKey {key}\n")
    done = check()
    assert done.returncode == 0, done.stderr
    config.write_text(drop_in + f"HostKey {key}\nNoSuchOption yes\n")
    assert check().returncode != 0


def test_real_haproxy_accepts_both_phases(tmp_path):
    stack = load_stack("wordpress")
    pem = tmp_path / "enclave.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=t",
                    "-keyout", str(pem), "-out", str(tmp_path / "c")], check=True, capture_output=True)
    pem.write_text(pem.read_text() + (tmp_path / "c").read_text())
    phase1 = service_files(stack, "lb-1", secrets=SECRETS)["/etc/haproxy/haproxy.cfg"]
    phase2 = peer_sync_payload(stack, "lb-1", secrets=SECRETS)["files/etc/haproxy/haproxy.cfg"]
    assert "server wordpress-2 10.10.10.5:80 check" in phase2 and "server " + "wordpress" not in phase1
    for text in (phase1, phase2):
        cfg = tmp_path / "haproxy.cfg"
        cfg.write_text(text.replace(profiles.HAPROXY_PEM, str(pem)))
        done = subprocess.run(["haproxy", "-c", "-f", str(cfg)], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr


def test_peer_dependent_files_use_real_addresses():
    stack = load_stack("wordpress")
    ips = {"mysql-1": "10.10.10.99", "wordpress-1": "10.10.10.77"}
    mysql = peer_sync_payload(stack, "mysql-1", private_ips=ips, secrets=SECRETS)
    assert "bind-address = 10.10.10.99" in mysql["files/etc/mysql/mariadb.conf.d/60-enclave.cnf"]
    assert "add enclave-wordpress 10.10.10.77" in mysql["ipsets"]
    phase1 = service_files(stack, "mysql-1", secrets=SECRETS)["/etc/mysql/mariadb.conf.d/60-enclave.cnf"]
    assert "bind-address = 127.0.0.1" in phase1  # nothing on the private side before peer sync
    evergreen = load_stack("evergreen")
    db = peer_sync_payload(evergreen, "db-1", private_ips={"app-1": "10.40.0.50"}, secrets=SECRETS)
    hba = db["files/etc/postgresql/16/main/pg_hba.conf"]
    assert re.search(r"^host\s+all\s+all\s+10\.40\.0\.50/32\s+scram-sha-256", hba, re.M)
    assert "listen_addresses = 'localhost,10.40.0.3'" in db["files/etc/postgresql/16/main/conf.d/60-enclave.conf"]
    manifest = db["manifest"].splitlines()[1:]
    assert all(len(line.split()) == 5 and line.split()[1].startswith("/etc/") for line in manifest)
    assert all(line.split()[0] in db for line in manifest)


def test_payload_hash_is_stable_and_tracks_membership():
    stack = load_stack("wordpress")
    one = peer_sync_payload(stack, "lb-1", secrets=SECRETS)
    assert payload_hash(one) == payload_hash(dict(reversed(list(one.items()))))
    assert re.fullmatch(r"[0-9a-f]{64}", payload_hash(one))
    moved = peer_sync_payload(stack, "lb-1", private_ips={"wordpress-2": "10.10.10.200"}, secrets=SECRETS)
    assert payload_hash(moved) != payload_hash(one)


def test_tunnel_address_reaches_the_phase_one_set():
    stack = load_stack("wordpress")
    text = user_data(stack, "mysql-1", tunnel_private_ip="10.10.10.123", secrets=SECRETS)
    script = firewall_bootcmd(text)
    assert "add enclave-tunnel 10.10.10.123" in script and "add enclave-tunnel 10.10.10.2" not in script
    assert "add enclave-wordpress" not in script  # role sets are empty until peer sync


def test_secrets_enter_as_parameters_and_never_leak_into_commits(rendered):
    real = Secrets(db_password="s3cr3t-db-x", replication_password="s3cr3t-repl-y")
    stack = load_stack("wordpress")
    files = service_files(stack, "mysql-1", secrets=real)
    assert "s3cr3t-db-x" in files["/etc/enclave/mysql/init.sql"]
    assert "s3cr3t-repl-y" in files["/etc/enclave/mysql/init.sql"]
    assert "s3cr3t-db-x" in peer_sync_payload(stack, "wordpress-1", secrets=real)["files/etc/wordpress/config-default.php"]
    assert "s3cr3t" not in repr(real)
    assert "PLACEHOLDER-db-password" in rendered["wordpress/mysql-1"]
    committed = list(Path("stacks").glob("*.yaml")) + list(Path("tests/golden").rglob("*"))
    for path in committed:
        if path.is_file():
            assert "s3cr3t" not in path.read_text(errors="replace"), path


def test_missing_template_variable_names_template_and_variable():
    templates = Templates(jinja2.DictLoader({"demo.conf.j2": "listen {{ h.name }}:{{ port }}\n"}))
    with pytest.raises(TemplateVariableError) as caught:
        templates.render("demo.conf.j2", h={"name": "web-1"})
    assert (caught.value.template, caught.value.variable) == ("demo.conf.j2", "port")
    assert caught.value.report() == "template demo.conf.j2: undefined variable 'port'"
    assert templates.render("demo.conf.j2", h={"name": "web-1"}, port=80) == "listen web-1:80\n"


def test_every_registered_template_renders_with_the_real_context():
    """StrictUndefined: a profile template naming a variable the renderer does not give fails here."""
    used = {f.template for spec in profiles.PROFILE_SPECS.values() for f in spec.files}
    used |= {f.template for f in profiles.BASE.files}
    assert used <= {p.name for p in TEMPLATES_DIR.iterdir()}
    unused = {p.name for p in TEMPLATES_DIR.iterdir()} - used - {"firewall.bootcmd.sh.j2", "base.debconf.j2",
                                                                 "mail.debconf.j2"}
    assert not unused, f"templates nothing uses: {unused}"


def test_profile_registry_matches_the_catalog():
    assert set(profiles.PROFILE_SPECS) == set(PROFILES)
    for spec in list(profiles.PROFILE_SPECS.values()) + [profiles.BASE]:
        for f in spec.files:
            assert f.path.startswith("/etc/")
    with pytest.raises(ValueError):
        profiles.ServiceFile("/var/lib/x", "x.j2")


def test_render_is_fast_and_byte_stable():
    import time
    start = time.perf_counter()
    first = all_user_data()
    elapsed = time.perf_counter() - start
    assert first == all_user_data()
    assert elapsed < 10, f"rendering every stack took {elapsed:.1f} s"
