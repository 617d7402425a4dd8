#!/usr/bin/env bash
# Start a local swarm and show it working: installs what is missing, builds, runs
# `swarmd init` on loopback in a temporary state dir, drives it with swarmctl (nodes,
# join tokens, rotation, cluster), restarts it to show it resumes, and stops it.
#   cmd/demo.sh [--keep]     --keep leaves swarmd running at the end
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
keep=0
[ "${1:-}" = --keep ] && keep=1
"$top/tests/deps.sh"
cd "$top"
[ -d build ] || meson setup build >/dev/null
ninja -C build >/dev/null

export PATH=$top/build/cmd:$PATH
SWARMD=swarmd
SWARMCTL=swarmctl
DIR=$(mktemp -d /tmp/swarmd-demo.XXXXXX)
export SWARM_HOST=unix://$DIR/state/swarmd.sock
PID=
cleanup() {
    if [ $keep = 0 ]; then
        [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
        rm -rf "$DIR"
    fi
}
trap cleanup EXIT

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }
wait_ready() {
    for _ in $(seq 200); do
        "$SWARMCTL" node ls -q >/dev/null 2>&1 && return 0
        kill -0 "$PID" 2>/dev/null || { cat "$DIR/swarmd.log"; exit 1; }
        sleep 0.05
    done
    echo "swarmd did not come up; its log:" >&2; cat "$DIR/swarmd.log" >&2; exit 1
}

printf '\033[1m$ swarmd init --state-dir %s/state --listen-addr 127.0.0.1:0 --advertise-addr 127.0.0.1 &\033[0m\n' "$DIR"
"$SWARMD" init --state-dir "$DIR/state" --listen-addr 127.0.0.1:0 --advertise-addr 127.0.0.1 \
    2>"$DIR/swarmd.log" &
PID=$!
wait_ready
step swarmctl node ls
step swarmctl join-token worker
step swarmctl join-token -q manager
step swarmctl join-token --rotate manager
step swarmctl cluster inspect
step openssl x509 -in "$DIR/state/certificates/swarm-node.crt" -noout -subject -issuer -enddate

printf '\n\033[1m# stop swarmd and start it again from the same state dir\033[0m\n'
kill "$PID"; wait "$PID" || true
printf '\033[1m$ swarmd --state-dir %s/state &\033[0m\n' "$DIR"
"$SWARMD" --state-dir "$DIR/state" 2>>"$DIR/swarmd.log" &
PID=$!
wait_ready
step swarmctl node ls
step swarmctl join-token -q manager
printf '\n(the same node, cluster and rotated token as before the restart)\n'
if [ $keep = 1 ]; then
    printf '\nswarmd keeps running: pid %s, state dir %s/state\nexport SWARM_HOST=%s\n' "$PID" "$DIR" "$SWARM_HOST"
fi
