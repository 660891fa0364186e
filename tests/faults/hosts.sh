#!/usr/bin/env bash
# Emulated hosts for the fault tests: network namespaces fault1..faultN on a bridge of their own
# (faultbr0, 10.78.0.0/24; the machine is 10.78.0.1, faultI is 10.78.0.(10+I) over veth fltvI),
# named in /etc/hosts, reached by mpirun through tests/faults/rsh-agent. A fault test cuts a host
# with `ip link set fltvI down`, slows it with tc on fltvI, or kills what runs in it.
#   hosts.sh up N   make (or repair) fault1..faultN: idempotent; links up, no tc shaping left
#   hosts.sh down   remove every faultI namespace (and what runs in it), its link, the bridge and
#                   the /etc/hosts lines, including what an interrupted run left behind
# Needs root and iproute2 (ip netns). Exit 77 (CTest's skip) without them, after saying why.
# Deliberately apart from ../shared/recipes/multi-host (node*, mhbr0, 10.77.0.0/24): others use it.
# Other suites get a set of their own (their own names, bridge and subnet, so that they never
# touch each other's hosts) through EMU_HOSTS_PREFIX, _BRIDGE, _VETH (at most 10 characters) and
# _NET (the first three octets of a /24).
set -euo pipefail
PREFIX=${EMU_HOSTS_PREFIX:-fault}
BRIDGE=${EMU_HOSTS_BRIDGE:-faultbr0}
VETH=${EMU_HOSTS_VETH:-fltv}
NET=${EMU_HOSTS_NET:-10.78.0}
[[ $PREFIX =~ ^[a-z]+$ && ${#VETH} -le 10 && $NET =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || {
  echo "hosts.sh: bad EMU_HOSTS_* settings (prefix '$PREFIX', veth '$VETH', net '$NET')" >&2
  exit 2
}

skip() {
  echo "SKIP: $*"
  exit 77
}
[ "$(id -u)" -eq 0 ] || skip "emulated hosts need root (network namespaces)"
command -v ip > /dev/null || skip "no ip command (apt-get install iproute2)"
ip netns list > /dev/null 2>&1 || skip "ip netns does not work here"

# Our namespaces only: fault followed by digits, never the recipe's node*.
our_hosts() { ip netns list | awk '{print $1}' | grep -E "^${PREFIX}[0-9]+\$" || true; }

# /etc/hosts rewritten in place (cat >, not sed -i: the file may be a bind mount that rename
# cannot replace), without our lines, then with the given ones. Other lines stay as they are.
set_hosts_lines() {
  local kept
  kept=$(grep -Ev "^$NET\.[0-9]+[[:space:]]+${PREFIX}[0-9]+\$" /etc/hosts || true)
  { [ -z "$kept" ] || printf '%s\n' "$kept"; [ $# -eq 0 ] || printf '%s\n' "$@"; } > /etc/hosts
}

up() {
  local n=$1
  [[ $n =~ ^[1-9][0-9]?$ ]] || { echo "hosts.sh up: N must be 1..99, not '$n'" >&2; exit 2; }
  ip link show "$BRIDGE" > /dev/null 2>&1 || ip link add "$BRIDGE" type bridge
  ip addr replace "$NET.1/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  local lines=() i host
  for i in $(seq 1 "$n"); do
    host=$PREFIX$i
    our_hosts | grep -qx "$host" || ip netns add "$host"
    if ! ip link show "$VETH$i" > /dev/null 2>&1; then
      ip -n "$host" link del eth0 2> /dev/null || true
      ip link add "$VETH$i" type veth peer name eth0 netns "$host"
    fi
    ip link set "$VETH$i" master "$BRIDGE"
    tc qdisc del dev "$VETH$i" root 2> /dev/null || true  # an interrupted slow case's netem
    ip link set "$VETH$i" up
    ip -n "$host" addr replace "$NET.$((10 + i))/24" dev eth0
    ip -n "$host" link set eth0 up
    ip -n "$host" link set lo up
    ip -n "$host" neigh flush all  # addresses that failed to resolve while a link was down
    lines+=("$NET.$((10 + i)) $host")
  done
  # Hosts above N from an earlier, larger up keep their lines (they still exist).
  for host in $(our_hosts); do
    i=${host#"$PREFIX"}
    [ "$i" -le "$n" ] || lines+=("$NET.$((10 + i)) $host")
  done
  local want have
  want=$(printf '%s\n' "${lines[@]}" | sort)
  have=$(grep -E "^$NET\.[0-9]+[[:space:]]+${PREFIX}[0-9]+\$" /etc/hosts | sort || true)
  [ "$want" = "$have" ] || set_hosts_lines "${lines[@]}"
  ip neigh flush dev "$BRIDGE"
  echo "hosts up: $(our_hosts | sort -V | tr '\n' ' ')"
}

down() {
  local host link
  for host in $(our_hosts); do
    ip netns pids "$host" | xargs -r kill -9 2> /dev/null || true
    ip netns del "$host"
  done
  # Host ends of veths whose namespace went away without them, then the bridge.
  for link in $(ip -o link show | sed -n "s/^[0-9]*: \(${VETH}[0-9]*\)@.*/\1/p"); do
    ip link del "$link" 2> /dev/null || true
  done
  ip link del "$BRIDGE" 2> /dev/null || true
  if grep -Eq "^$NET\.[0-9]+[[:space:]]+${PREFIX}[0-9]+\$" /etc/hosts; then set_hosts_lines; fi
  echo "hosts down"
}

case ${1:-} in
  up) up "${2:-3}" ;;
  down) down ;;
  *) echo "usage: hosts.sh up N | down" >&2; exit 2 ;;
esac
