#!/usr/bin/env bash
# Start a local swarm and show it working: installs what is missing, builds, runs
# `swarmd init` on loopback in a temporary state dir, joins two workers (their own state
# dirs), drives it with swarmctl (nodes, join tokens, rotation, cluster), shows a worker
# going Down and coming back, restarts the manager to show it resumes, and stops it all.
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
PID= W1= W2=
cleanup() {
    if [ $keep = 0 ]; then
        for p in $W1 $W2 $PID; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
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

printf '\033[1m$ swarmd init --state-dir %s/state --listen-addr 127.0.0.1:0 --advertise-addr 127.0.0.1 --dispatcher-heartbeat 1s &\033[0m\n' "$DIR"
"$SWARMD" init --state-dir "$DIR/state" --listen-addr 127.0.0.1:0 --advertise-addr 127.0.0.1 \
    --dispatcher-heartbeat 1s 2>"$DIR/swarmd.log" &
PID=$!
wait_ready
ADDR=$(swarmctl join-token worker | sed -n 's/^ *swarmd join [^ ]* //p')
TOKEN=$(swarmctl join-token -q worker)
for w in 1 2; do
    printf '\033[1m$ swarmd join --state-dir %s/worker%s --hostname worker-%s SWMTKN-1-… %s &\033[0m\n' \
        "$DIR" "$w" "$w" "$ADDR"
    "$SWARMD" join --state-dir "$DIR/worker$w" --hostname "worker-$w" "$TOKEN" "$ADDR" \
        2>"$DIR/worker$w.log" &
    eval "W$w=\$!"
done
wait_workers() { # until node ls shows N Ready nodes
    for _ in $(seq 200); do
        [ "$(swarmctl node ls | grep -c ' Ready ')" -ge "$1" ] && return 0
        sleep 0.05
    done
}
wait_workers 3
step swarmctl node ls

printf '\n\033[1m$ printf s3cret | swarmctl secret create db_pw -\033[0m\n'
printf 's3cret' | swarmctl secret create db_pw -
step swarmctl service create --name web --replicas 3 --secret db_pw -- /bin/sleep 3600
for _ in $(seq 100); do
    [ "$(swarmctl service ls --format json | grep -c '"3/3"')" = 1 ] && break
    sleep 0.05
done
step swarmctl service ls
step swarmctl service ps web
TASK_PID=$(swarmctl service ps --format json web | python3 -c 'import json,sys; print([t["pid"] for t in json.load(sys.stdin) if t["state"]=="running"][0])')
printf '\n\033[1m$ cat /proc/%s/root/run/secrets/db_pw   # inside a task, on its tmpfs\033[0m\n' "$TASK_PID"
cat "/proc/$TASK_PID/root/run/secrets/db_pw"; echo
step swarmctl join-token worker
step swarmctl join-token -q manager
step swarmctl join-token --rotate manager
step swarmctl cluster inspect
step openssl x509 -in "$DIR/state/certificates/swarm-node.crt" -noout -subject -issuer -enddate

printf '\n\033[1m# kill worker-2: it is Down after three missed heartbeats, its tasks move\033[0m\n'
kill -9 "$W2"; wait "$W2" 2>/dev/null || true
sleep 3.5
step swarmctl node ls
step swarmctl service ps web
printf '\n\033[1m$ swarmd --state-dir %s/worker2 &   # it comes back without rejoining\033[0m\n' "$DIR"
"$SWARMD" --state-dir "$DIR/worker2" 2>>"$DIR/worker2.log" &
W2=$!
wait_workers 3
step swarmctl node ls

printf '\n\033[1m# stop the manager and start it again from the same state dir\033[0m\n'
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
