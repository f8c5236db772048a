#!/usr/bin/env bash
# Make sure the suite's services are there: PostgreSQL, Redis and Chromium.
# Starts what is stopped, installs what is missing (as root), or fails loudly.
set -euo pipefail

say() { echo "services: $*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi; }
apt_updated=""
apt_install() {
  if [ -z "$apt_updated" ]; then as_root apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

# PostgreSQL on 127.0.0.1:5432 with trust auth and a database `test`.
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    say "installing PostgreSQL"; apt_install postgresql
  fi
  say "starting PostgreSQL"
  as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
pg_isready -q -h 127.0.0.1 -p 5432 || { say "PostgreSQL is not answering on 127.0.0.1:5432"; exit 1; }
if ! psql -h 127.0.0.1 -U postgres -d test -tAc 'select 1' >/dev/null 2>&1; then
  as_root su postgres -c "psql -tAc \"CREATE DATABASE test\"" >/dev/null 2>&1 || true
  psql -h 127.0.0.1 -U postgres -d test -tAc 'select 1' >/dev/null \
    || { say "cannot connect as postgres to database test on 127.0.0.1 (trust auth expected)"; exit 1; }
fi

# Redis on 127.0.0.1:6379.
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  command -v redis-server >/dev/null || { say "installing Redis"; apt_install redis-server; }
  say "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 1 30); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.5; done
fi
redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null || { say "Redis is not answering on 127.0.0.1:6379"; exit 1; }

# Debian's Chromium for the browser tests (never a downloaded browser).
if [ ! -x /usr/bin/chromium ]; then
  say "installing Chromium"; apt_install chromium
fi
/usr/bin/chromium --version >/dev/null || { say "Chromium does not run"; exit 1; }
# Korean glyphs, so that the screenshots the browser tests take for the user guides are legible.
if ! fc-list 2>/dev/null | grep -qi nanum; then
  say "installing Korean fonts"; apt_install fonts-nanum
fi
# Debian's coturn and iproute2 for the network lab (tests/netlab, `make netlab`).
if ! command -v turnserver >/dev/null; then
  say "installing coturn"; apt_install coturn
fi
command -v ip >/dev/null || { say "installing iproute2"; apt_install iproute2; }
# Debian's HAProxy: the failover test puts two signaling processes behind it
# (tests/web/test_browser_failover.py; each test starts its own, on a free port).
if ! command -v haproxy >/dev/null; then
  say "installing HAProxy"; apt_install haproxy
fi
say "PostgreSQL, Redis, Chromium, coturn and HAProxy are ready"
