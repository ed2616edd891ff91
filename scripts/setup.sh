#!/usr/bin/env bash
# Installs what enclave needs on a fresh Debian machine (run as root): the Debian packages in
# scripts/apt-packages.txt and a virtualenv (.venv) with the pinned Python packages.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=$(grep -v '^\s*#' scripts/apt-packages.txt | grep -v '^\s*$' | tr '\n' ' ')
missing=$(dpkg-query -W -f='${Package} ${db:Status-Status}\n' $packages 2>/dev/null | awk '$2 != "installed" {print $1}' || true)
# dpkg-query omits unknown packages: compare counts to catch those too
if [ -n "$missing" ] || [ "$(dpkg-query -W -f='${db:Status-Status}\n' $packages 2>/dev/null | grep -c '^installed$')" -ne "$(echo $packages | wc -w)" ]; then
  echo "setup: installing Debian packages: $packages" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Debian's daemons must not start on the machine itself: the lab runs its own copies in namespaces.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  apt-get install -y -qq --no-install-recommends $packages >/dev/null
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]'
echo "setup: ready (.venv/bin/enclave)" >&2
