#!/usr/bin/env bash
# Proves the README's set-up on a pristine root, the way a new user's machine is: debootstraps a
# minimal Debian 12 into a folder, bind-mounts a clean clone of this repository (its committed
# HEAD, as CI sees it) and /usr/local/cuda (read-only, where it exists), and inside runs
# launch/install-deps.sh, configure, build, the fast suite (ctest -LE slow) and the demo cut to a
# few hundred steps. Prints each stage's time; the last line names the stage that failed, or says
# all passed. Takes minutes and downloads about a gigabyte (Debian's archive must be reachable).
# Run as root. Labelled `fresh` in CTest and kept out of the default run (tests/CMakeLists.txt):
#   bash tests/fresh_root.sh [ROOT_DIR]      (default /var/tmp/alexnet-fresh-root, made anew)
# Environment: FRESH_MIRROR (Debian mirror), FRESH_DEMO_STEPS (default 300), FRESH_KEEP=1 keeps
# the root afterwards for a look inside.
set -uo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
ROOT=${1:-/var/tmp/alexnet-fresh-root}
MIRROR=${FRESH_MIRROR:-http://deb.debian.org/debian}
DEMO_STEPS=${FRESH_DEMO_STEPS:-300}
LOG_DIR=${FRESH_LOG_DIR:-$ROOT.logs}

if [ "$(id -u)" -ne 0 ]; then
  echo "fresh_root: needs root (debootstrap, chroot, mounts)"
  echo "fresh_root: FAILED at stage: prerequisites"
  exit 1
fi

mounts=()
cleanup() {
  local i
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount -l "${mounts[$i]}" 2>/dev/null; done
  if [ "${FRESH_KEEP:-0}" != 1 ]; then rm -rf --one-file-system "$ROOT" "$ROOT.clone"; fi
}
trap cleanup EXIT

failed=""
total_start=$(date +%s)
# stage NAME COMMAND...: runs it with its output in LOG_DIR/NAME.log, prints its time.
stage() {
  local name=$1
  shift
  local start status
  start=$(date +%s)
  "$@" >"$LOG_DIR/$name.log" 2>&1
  status=$?
  printf 'fresh_root: %-14s %5d s  %s\n' "$name" $(($(date +%s) - start)) \
    "$([ $status -eq 0 ] && echo ok || echo "FAILED (status $status, log $LOG_DIR/$name.log)")"
  if [ $status -ne 0 ]; then
    tail -n 30 "$LOG_DIR/$name.log" | sed 's/^/    /'
    failed=$name
  fi
  return $status
}
finish() {
  printf 'fresh_root: total %d s\n' $(($(date +%s) - total_start))
  if [ -n "$failed" ]; then
    echo "fresh_root: FAILED at stage: $failed"
    exit 1
  fi
  echo "fresh_root: all stages passed"
  exit 0
}

bind() {  # bind SOURCE TARGET [ro|rec]
  local how=--bind
  [ "${3:-}" = rec ] && how=--rbind
  mkdir -p "$2" && mount "$how" "$1" "$2" && mounts+=("$2") || return 1
  # Slave: unmounting the copies later must not propagate to the host's own mounts.
  if [ "$how" = --rbind ]; then mount --make-rslave "$2" || return 1; fi
  if [ "${3:-}" = ro ]; then mount -o remount,bind,ro "$2" || return 1; fi
}

prepare_host() {
  command -v debootstrap >/dev/null && return 0
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap
}

bootstrap() {
  rm -rf --one-file-system "$ROOT" && mkdir -p "$ROOT"
  debootstrap --variant=minbase bookworm "$ROOT" "$MIRROR"
}

# The chroot as a machine: kernel file systems, a tmpfs /tmp, DNS, the clone and CUDA.
enter() {
  # /sys with what is mounted under it (/sys/fs/cgroup: slurmd needs its cgroups).
  bind /proc "$ROOT/proc" && bind /sys "$ROOT/sys" rec && bind /dev "$ROOT/dev" &&
    bind /dev/pts "$ROOT/dev/pts" || return 1
  mkdir -p "$ROOT/dev/shm" "$ROOT/tmp"
  mount -t tmpfs -o size=4g tmpfs "$ROOT/dev/shm" && mounts+=("$ROOT/dev/shm") || return 1
  cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf"
  # What every installed Debian has and debootstrap's minbase leaves out: localhost resolving.
  printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t%s\n' \
    "$(hostname)" >"$ROOT/etc/hosts"
  hostname >"$ROOT/etc/hostname"
  # The host's own network set-up, which a user's machine has of its own: a proxy's CA
  # certificates (copied, as a bundle the environment below points at) and proxy variables.
  if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    mkdir -p "$ROOT/etc/ssl/host" && cp -L /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/host/ca.crt"
  fi
  # Services must not start inside (munge, slurm): what Debian's images do too.
  printf '#!/bin/sh\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d" && chmod +x "$ROOT/usr/sbin/policy-rc.d"
  local clone="$ROOT.clone"
  rm -rf "$clone" && git clone --quiet --no-hardlinks "$SRC" "$clone" || return 1
  bind "$clone" "$ROOT/src" || return 1
  if [ -d /usr/local/cuda ]; then
    bind "$(readlink -f /usr/local/cuda)" "$ROOT/usr/local/cuda" ro || return 1
  fi
  echo "clone of $(git -C "$SRC" rev-parse --short HEAD) at /src; CUDA: $([ -d /usr/local/cuda ] && echo bound || echo none)"
}

# Runs a command line inside the root with a clean environment, in /src: only the host's proxy
# variables and, where the host has its CA bundle, the variables that make pip and Python trust it.
inside() {
  local net=()
  local v
  for v in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
    [ -n "${!v:-}" ] && net+=("$v=${!v}")
  done
  if [ -f "$ROOT/etc/ssl/host/ca.crt" ]; then
    net+=(PIP_CERT=/etc/ssl/host/ca.crt REQUESTS_CA_BUNDLE=/etc/ssl/host/ca.crt
      SSL_CERT_FILE=/etc/ssl/host/ca.crt)
  fi
  chroot "$ROOT" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "${net[@]}" \
    /bin/bash -c "cd /src && $1"
}

mkdir -p "$LOG_DIR"
echo "fresh_root: root $ROOT, logs $LOG_DIR, mirror $MIRROR"
stage host-tools prepare_host || finish
stage debootstrap bootstrap || finish
stage mount enter || finish
# apt itself is all a minimal root has: the install script must bring everything else.
stage install-deps inside "bash launch/install-deps.sh" || finish
stage configure inside "cmake -S . -B /root/build -DCMAKE_BUILD_TYPE=Release" || finish
stage build inside "cmake --build /root/build -j \$(nproc)" || finish
stage fast-suite inside "cd /root/build && ctest -LE slow -j \$(nproc) --output-on-failure" || true
stage demo inside "BUILD_DIR=/root/build DATA_DIR=/root/data RUN_DIR=/root/runs/demo \
  bash launch/run-demo.sh --train.max_steps $DEMO_STEPS --train.log_every 50" || true
finish
