#!/bin/sh
# enclave-apply: apply a peer-sync payload atomically, and roll it back unless confirmed.
# Installed by cloud-init at /etc/enclave/enclave-apply (see docs/cloud-init.md).
#   enclave-apply apply [--timeout N] DIR   validate, apply, persist; roll back after N s (30)
#   enclave-apply confirm                   keep what was applied: cancel the pending rollback
#   enclave-apply rollback                  go back to the last confirmed files now
#   enclave-apply status                    pending rollback? guard rule and tunnel set live?
# DIR holds ipsets, rules.v4, rules.v6 and a manifest: "<file> <dest> <mode> <service|-> <reload|restart|->".
# Only chains named enclave-* are flushed (iptables-restore --noflush); built-in chains only get
# enclave's jumps when missing, so other tools' chains (fail2ban, docker) stay as they are.
set -u
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
STATE=/etc/enclave
LIVE=/etc/iptables
WORK=$STATE/work
PREV=$STATE/previous
HELD=

say() { echo "enclave-apply: $*" >&2; }
die() { say "$*"; exit 1; }

unlock() { [ -n "$HELD" ] && rm -rf "$STATE/lock"; HELD=; }
lock() {
  mkdir -p "$STATE"
  tries=0
  until mkdir "$STATE/lock" 2>/dev/null; do
    owner=$(cat "$STATE/lock/pid" 2>/dev/null || true)
    if [ -n "$owner" ] && ! kill -0 "$owner" 2>/dev/null; then rm -rf "$STATE/lock"; continue; fi
    tries=$((tries + 1))
    [ "$tries" -gt 60 ] && die "another enclave-apply holds $STATE/lock"
    sleep 1
  done
  echo $$ > "$STATE/lock/pid"
  HELD=1
  trap 'unlock' EXIT
  trap 'unlock; exit 1' INT TERM HUP
}

guard() {  # refuse files that would lock the tunnel out: $1 = folder with rules.v4 and ipsets
  [ -s "$STATE/guard" ] || die "no $STATE/guard (written by cloud-init's firewall bootcmd): refusing"
  gset=$(sed -n 1p "$STATE/guard"); grule=$(sed -n 2p "$STATE/guard")
  grep -qxF -- "$grule" "$1/rules.v4" || die "refusing $1: rules.v4 lacks the tunnel SSH rule: $grule"
  grep -q "^create $gset " "$1/ipsets" || die "refusing $1: ipsets does not create $gset"
  grep -q "^add $gset " "$1/ipsets" || die "refusing $1: ipset $gset (the tunnel's) would be empty"
}

noflush() {  # $1 family tool prefix (iptables|ip6tables), $2 input file, $3 output file
  { echo "# live"; "$1-save" 2>/dev/null; } > "$WORK/kernel.save"
  awk '
    FNR == 1 { part++ }
    part == 1 {
      if ($0 ~ /^\*/) t = substr($0, 2)
      else if ($0 ~ /^:enclave-/) { split($0, a, " "); live[t, substr(a[1], 2)] = 1 }
      else if ($0 ~ /^-A /) have[t, $0] = 1
      next
    }
    part == 2 {
      if ($0 ~ /^\*/) t = substr($0, 2)
      else if ($0 ~ /^:/) { split($0, a, " "); mine[t, substr(a[1], 2)] = 1 }
      next
    }
    /^\*/ {
      t = substr($0, 2); print
      for (k in live) { split(k, p, SUBSEP); if (p[1] == t && !((t, p[2]) in mine)) print ":" p[2] " - [0:0]" }
      next
    }
    /^:/ { split($0, a, " "); if (a[1] ~ /^:enclave-/ || a[2] != "-") print; next }
    /^-A / { split($0, a, " "); if (a[2] ~ /^enclave-/ || !((t, $0) in have)) print; next }
    /^#/ || /^[ \t]*$/ { next }
    { print }
  ' "$WORK/kernel.save" "$2" "$2" > "$3"
}

tmp_sets() {  # drop leftovers of an interrupted run
  ipset list -n 2>/dev/null | grep '^enclave-tmp-' | while read -r s; do ipset destroy "$s"; done
}

reject() {  # validation failed: drop the temporary and the just-created (unreferenced) sets
  tmp_sets
  [ -f "$WORK/ipsets.new" ] && while read -r s; do ipset destroy "$s" 2>/dev/null; done < "$WORK/ipsets.new"
  die "$*"
}

load_sets() {  # $1 ipsets file: fill temporary sets, then swap (existing) or rename (new) them in
  tmp_sets
  awk '$1 == "create" { n++; map[$2] = "enclave-tmp-" n; print $2, map[$2] > "/dev/stderr" }
       $1 == "create" || $1 == "add" { $2 = map[$2]; print }' "$1" > "$WORK/ipsets.tmp" 2> "$WORK/ipsets.map" \
    || die "cannot read $1"
  ipset restore < "$WORK/ipsets.tmp" || { tmp_sets; die "ipset restore rejected $1"; }
  while read -r name tmp; do
    if ipset list -n | grep -qxF "$name"; then
      echo "$name $tmp" >> "$WORK/ipsets.swap"
    else
      ipset rename "$tmp" "$name" || die "cannot create set $name"
      echo "$name" >> "$WORK/ipsets.new"
    fi
  done < "$WORK/ipsets.map"
}

swap_sets() {
  [ -f "$WORK/ipsets.swap" ] || return 0
  while read -r name tmp; do
    ipset swap "$tmp" "$name" && ipset destroy "$tmp" || return 1
  done < "$WORK/ipsets.swap"
}

install_files() {  # $1 folder with a manifest: install changed files, note services to reload
  : > "$WORK/actions"
  [ -f "$1/manifest" ] || return 0
  while read -r rel dest mode service action; do
    case "$rel" in ''|'#'*) continue ;; esac
    case "$dest" in /etc/*) ;; *) die "manifest: $dest is not under /etc" ;; esac
    if [ "$rel" = "-" ]; then
      [ -e "$dest" ] || continue
      rm -f "$dest"
    else
      cmp -s "$1/$rel" "$dest" && continue
      mkdir -p "$(dirname "$dest")"
      cp "$1/$rel" "$dest.enclave-new" && chmod "$mode" "$dest.enclave-new" && mv -f "$dest.enclave-new" "$dest" \
        || die "cannot install $dest"
    fi
    say "updated $dest"
    [ "$service" = "-" ] || echo "$service $action" >> "$WORK/actions"
  done < "$1/manifest"
}

reload_services() {
  sort -u "$WORK/actions" | awk '{ a[$1] = (a[$1] == "restart" || $2 == "restart") ? "restart" : $2 }
                                 END { for (s in a) print s, a[s] }' | sort |
  while read -r service action; do
    if [ -e "$STATE/no-reload" ]; then
      say "$STATE/no-reload is set: not reloading $service ($action); reload it yourself"
    elif [ ! -d /run/systemd/system ] || ! command -v systemctl > /dev/null; then
      say "no systemd here: not reloading $service ($action); reload it yourself"
    elif ! systemctl cat "$service.service" > /dev/null 2>&1; then
      say "no unit $service.service: skipped $action"
    elif [ "$action" = restart ]; then
      systemctl restart "$service" || say "restart of $service failed"
    else
      systemctl reload-or-restart "$service" || say "reload of $service failed"
    fi
  done
}

snapshot() {  # the live files, and the current version of every file the payload $1 replaces
  for f in ipsets rules.v4 rules.v6; do
    [ -s "$LIVE/$f" ] || die "no $LIVE/$f to fall back to (has cloud-init's firewall run?)"
  done
  rm -rf "$PREV.new"; mkdir -p "$PREV.new/files"
  cp "$LIVE/ipsets" "$LIVE/rules.v4" "$LIVE/rules.v6" "$PREV.new/"
  : > "$PREV.new/manifest"
  i=0
  if [ -f "$1/manifest" ]; then
    while read -r rel dest mode service action; do
      case "$rel" in ''|'#'*) continue ;; esac
      i=$((i + 1))
      if [ -f "$dest" ]; then
        cp "$dest" "$PREV.new/files/$i"
        echo "files/$i $dest $(stat -c %a "$dest") $service $action" >> "$PREV.new/manifest"
      else
        echo "- $dest $mode $service $action" >> "$PREV.new/manifest"
      fi
    done < "$1/manifest"
  fi
  rm -rf "$PREV"; mv "$PREV.new" "$PREV"
}

persist() {
  for f in ipsets rules.v4 rules.v6; do
    cp "$1/$f" "$LIVE/$f.enclave-new" && chmod 0640 "$LIVE/$f.enclave-new" && mv -f "$LIVE/$f.enclave-new" "$LIVE/$f" \
      || die "cannot persist $LIVE/$f"
  done
}

trial() {  # load the whole folder into a throwaway network namespace: catches what --test misses
  if ! unshare -n true 2>/dev/null; then say "cannot unshare a network namespace: trial load skipped"; return 0; fi
  unshare -n sh -c 'ipset restore < "$1/ipsets" && iptables-restore < "$1/rules.v4" && ip6tables-restore < "$1/rules.v6"' \
    trial "$1"
}

load() {  # $1 folder: validate and load it; leaves the kernel unchanged when validation fails
  for f in ipsets rules.v4 rules.v6; do [ -f "$1/$f" ] || die "$1/$f is missing"; done
  guard "$1"
  rm -rf "$WORK"; mkdir -p "$WORK"
  noflush iptables "$1/rules.v4" "$WORK/rules.v4"
  noflush ip6tables "$1/rules.v6" "$WORK/rules.v6"
  trial "$1" || die "rejected $1: it does not load into an empty network namespace (see above)"
  load_sets "$1/ipsets"
  iptables-restore --test --noflush < "$WORK/rules.v4" || reject "iptables-restore --test rejected $1/rules.v4"
  ip6tables-restore --test --noflush < "$WORK/rules.v6" || reject "ip6tables-restore --test rejected $1/rules.v6"
  [ -n "${2:-}" ] && snapshot "$1"
  swap_sets || return 1
  iptables-restore --noflush < "$WORK/rules.v4" || return 1
  ip6tables-restore --noflush < "$WORK/rules.v6" || return 1
  install_files "$1"
  persist "$1"
  reload_services
}

timer_pid() {
  pid=$(cat "$STATE/rollback.pid" 2>/dev/null) || return 1
  grep -q enclave-apply "/proc/$pid/cmdline" 2>/dev/null && echo "$pid"
}

disarm() {
  pid=$(timer_pid) && kill -TERM "-$pid" 2>/dev/null
  rm -f "$STATE/rollback.pid"
}

arm() {  # a detached process (own session) that rolls back after $1 seconds
  rm -f "$STATE/rollback.pid"
  date -d "+$1 seconds" '+%s' > "$STATE/rollback.pending" 2>/dev/null || echo "$1" > "$STATE/rollback.pending"
  setsid sh "$0" _expire "$1" < /dev/null >> "$STATE/rollback.log" 2>&1 &
  n=0
  while [ ! -s "$STATE/rollback.pid" ] && [ "$n" -lt 50 ]; do sleep 0.1; n=$((n + 1)); done
  say "applied; rolling back in $1 s unless 'enclave-apply confirm' (pid $(cat "$STATE/rollback.pid" 2>/dev/null))"
}

roll_back() {
  [ -f "$STATE/rollback.pending" ] && [ -d "$PREV" ] || { say "nothing to roll back"; return 1; }
  load "$PREV" || die "rollback failed to load $PREV"
  rm -f "$STATE/rollback.pending"
  rm -rf "$PREV"
  say "rolled back to the last confirmed files"
}

cmd_apply() {
  timeout=30
  while [ $# -gt 1 ]; do
    case "$1" in
      --timeout) timeout=$2; shift 2 ;;
      --timeout=*) timeout=${1#--timeout=}; shift ;;
      *) break ;;
    esac
  done
  case "$timeout" in ''|*[!0-9]*) die "--timeout needs a number of seconds" ;; esac
  [ $# -eq 1 ] && [ -d "$1" ] || die "usage: enclave-apply apply [--timeout N] DIR"
  dir=$(cd "$1" && pwd)
  lock
  disarm
  snap=1
  [ -f "$STATE/rollback.pending" ] && [ -d "$PREV" ] && snap=  # keep the last confirmed snapshot
  if ! load "$dir" $snap; then
    say "loading $dir failed half-way: going back to the last confirmed files"
    load "$PREV" || die "could not load $PREV either"
    rm -f "$STATE/rollback.pending"; rm -rf "$PREV"
    exit 1
  fi
  if [ "$timeout" -eq 0 ]; then
    rm -f "$STATE/rollback.pending"; rm -rf "$PREV"; say "applied and confirmed"
  else
    arm "$timeout"
  fi
}

cmd_confirm() {
  lock
  [ -f "$STATE/rollback.pending" ] || { say "nothing pending"; return 0; }
  disarm
  rm -f "$STATE/rollback.pending"; rm -rf "$PREV"
  say "confirmed"
}

cmd_rollback() { lock; disarm; roll_back; }

cmd_expire() {
  echo $$ > "$STATE/rollback.pid"
  sleep "$1" & wait $!
  lock
  rm -f "$STATE/rollback.pid"
  say "$(date '+%F %T') not confirmed within $1 s"
  roll_back
}

cmd_status() {
  if [ -f "$STATE/rollback.pending" ]; then
    echo "state: pending (rollback at $(cat "$STATE/rollback.pending"), timer pid $(timer_pid || echo none))"
  else
    echo "state: confirmed"
  fi
  gset=$(sed -n 1p "$STATE/guard" 2>/dev/null); grule=$(sed -n 2p "$STATE/guard" 2>/dev/null)
  # shellcheck disable=SC2086  # the rule is split into iptables arguments on purpose
  if [ -n "$grule" ] && iptables -C ${grule#-A } 2>/dev/null; then echo "guard rule: live"; else echo "guard rule: MISSING"; fi
  echo "tunnel set $gset: $(ipset list "$gset" 2>/dev/null | sed -n '/^Members:/,$p' | grep -c . | awk '{print ($1 > 0 ? $1 - 1 : 0)}') members"
}

case "${1:-}" in
  apply) shift; cmd_apply "$@" ;;
  confirm) cmd_confirm ;;
  rollback) cmd_rollback ;;
  status) cmd_status ;;
  _expire) cmd_expire "$2" ;;
  *) echo "usage: enclave-apply apply [--timeout N] DIR | confirm | rollback | status" >&2; exit 2 ;;
esac
