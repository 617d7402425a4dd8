#!/usr/bin/env bash
# ca.sh: root CA rotation time (swarmctl ca --rotate until every node moved and the old root
# is gone) on real clusters on loopback: 3 managers + 3 workers, and 1 manager + N workers;
# plus forced renewal of every node (ca --force-rotate) on the larger one; then the rotation
# across simulated nodes (bench-ca-sim: 100 and 1000 lightweight agents in one process).
#   bench/ca.sh [--workers N] [--runs R] [--sim-nodes "100 1000"] [--sim-only] [--swarmd PATH]
#               [--swarmctl PATH] [--keep]
# swarmd/swarmctl: --swarmd/--swarmctl, $SWARMD/$SWARMCTL, else build-bench/cmd/ of this tree;
# bench-ca-sim: $CA_SIM, else bench/bench-ca-sim beside that cmd/.
# Everything started is stopped and the temp dir removed on every exit path.
set -u
set -o pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
WORKERS=50
RUNS=3
KEEP=0
SIM_NODES="100 1000"
SIM_ONLY=0
SWARMD=${SWARMD:-$HERE/../build-bench/cmd/swarmd}
SWARMCTL=${SWARMCTL:-}
while [ $# -gt 0 ]; do
    case $1 in
    --workers) WORKERS=$2; shift ;;
    --runs) RUNS=$2; shift ;;
    --swarmd) SWARMD=$2; shift ;;
    --swarmctl) SWARMCTL=$2; shift ;;
    --sim-nodes) SIM_NODES=$2; shift ;;
    --sim-only) SIM_ONLY=1 ;;
    --keep) KEEP=1 ;;
    -h | --help) sed -n '6,9s/^# *//p' "$0" >&2; exit 2 ;;
    *) echo "ca: unknown argument '$1'" >&2; exit 2 ;;
    esac
    shift
done
[ -n "$SWARMCTL" ] || SWARMCTL=$(dirname "$SWARMD")/swarmctl
[ -x "$SWARMD" ] && [ -x "$SWARMCTL" ] || { echo "ca: no swarmd/swarmctl at $SWARMD" >&2; exit 2; }
CA_SIM=${CA_SIM:-$(dirname "$SWARMD")/../bench/bench-ca-sim}
[ -z "$SIM_NODES" ] || [ -x "$CA_SIM" ] || { echo "ca: no bench-ca-sim at $CA_SIM" >&2; exit 2; }

T=$(mktemp -d /tmp/swarmd-bench-ca.XXXXXX)
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null
    done
    [ "$KEEP" = 1 ] && echo "ca: kept $T" >&2 || rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now_ms() { date +%s%3N; }
ctl() { "$SWARMCTL" -H "unix://$T/$1/m1/swarmd.sock" "${@:2}"; }

# cluster NAME MANAGERS WORKERS: start it (workers drained of tasks: they only hold certs)
cluster() {
    local c=$1 nm=$2 nw=$3 i addr mt wt
    mkdir -p "$T/$c"
    "$SWARMD" init --state-dir "$T/$c/m1" --listen-addr 127.0.0.1:0 --hostname "$c-m1" \
        --dispatcher-heartbeat 1s >/dev/null 2>"$T/$c/m1.log" &
    PIDS+=($!)
    for _ in $(seq 100); do ctl "$c" node ls -q >/dev/null 2>&1 && break; sleep 0.05; done
    addr=$(sed -n 's/.*listening on \([0-9.:]*\) .*/\1/p' "$T/$c/m1.log" | tail -n 1)
    mt=$(ctl "$c" join-token -q manager)
    wt=$(ctl "$c" join-token -q worker)
    for ((i = 2; i <= nm; i++)); do
        "$SWARMD" join --state-dir "$T/$c/m$i" --listen-addr 127.0.0.1:0 --hostname "$c-m$i" \
            "$mt" "$addr" >/dev/null 2>"$T/$c/m$i.log" &
        PIDS+=($!)
        # one raft membership change at a time
        for _ in $(seq 300); do
            "$SWARMCTL" -H "unix://$T/$c/m$i/swarmd.sock" node ls -q >/dev/null 2>&1 && break
            sleep 0.1
        done
    done
    for ((i = 1; i <= nw; i++)); do
        "$SWARMD" join --state-dir "$T/$c/w$i" --listen-addr 127.0.0.1:0 --hostname "$c-w$i" \
            "$wt" "$addr" >/dev/null 2>"$T/$c/w$i.log" &
        PIDS+=($!)
    done
    local want=$((nm + nw))
    for _ in $(seq 600); do
        [ "$(ctl "$c" node ls 2>/dev/null | grep -c ' Ready ')" = "$want" ] && return 0
        sleep 0.1
    done
    echo "ca: cluster $c did not get $want Ready nodes" >&2
    return 1
}

# rotate NAME: ms of one 'ca --rotate' to completion
rotate() {
    local t0 t1
    t0=$(now_ms)
    ctl "$1" ca --rotate >/dev/null 2>&1 || return 1
    t1=$(now_ms)
    echo $((t1 - t0))
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

measure() { # measure NAME MANAGERS WORKERS
    local c=$1 ms all=()
    cluster "$c" "$2" "$3" || return 1
    for ((r = 0; r < RUNS; r++)); do
        ms=$(rotate "$c") || { echo "ca: rotation failed on $c" >&2; return 1; }
        all+=("$ms")
    done
    echo "ca: rotation managers=$2 workers=$3 nodes=$(($2 + $3)) median=$(printf '%s\n' "${all[@]}" | median) ms runs=${all[*]} (from the call to completion: every node holds a leaf of the new root, the old root and key are gone, the tokens changed)"
}

# simulated NODES: one rotation across that many simulated nodes on one manager; its line
simulated() {
    local out
    out=$("$CA_SIM" -n "$1" --swarmd "$SWARMD" --swarmctl "$SWARMCTL" 2>"$T/sim-$1.err")
    local rc=$?
    grep '^ca: ' <<<"$out"
    [ $rc = 0 ] || { echo "ca: bench-ca-sim -n $1 failed:" >&2; grep -v '^ca: ' <<<"$out" >&2; cat "$T/sim-$1.err" >&2; return 1; }
}

if [ "$SIM_ONLY" = 1 ]; then
    for n in $SIM_NODES; do simulated "$n" || exit 1; done
    exit 0
fi
measure small 3 3 || exit 1
measure big 1 "$WORKERS" || exit 1
SER=$(openssl x509 -in "$T/big/w1/certificates/swarm-node.crt" -noout -serial)
t0=$(now_ms)
ctl big ca --force-rotate >/dev/null 2>&1 || exit 1
for _ in $(seq 600); do
    done_all=1
    for ((i = 1; i <= WORKERS; i++)); do
        [ "$(openssl x509 -in "$T/big/w$i/certificates/swarm-node.crt" -noout -serial 2>/dev/null)" != "$SER" ] || { done_all=0; break; }
    done
    [ $done_all = 1 ] && break
    sleep 0.05
done
echo "ca: force-rotate workers=$WORKERS every node renewed after $(($(now_ms) - t0)) ms (heartbeat period 1 s: nodes learn it at their next heartbeat)"
for n in $SIM_NODES; do simulated "$n" || exit 1; done
echo "ca: no peer: Docker Swarm (see PEERS.md) is not measured by this script"
