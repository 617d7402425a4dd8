#!/usr/bin/env bash
# ca.sh: root CA rotation time (swarmctl ca --rotate until every node moved and the old root
# is gone) on real clusters on loopback: 3 managers + 3 workers, and 1 manager + N workers;
# plus forced renewal of every node (ca --force-rotate) on the larger one; then the rotation
# across simulated nodes (bench-ca-sim: 100 and 1000 lightweight agents in one process).
#   bench/ca.sh [--workers N] [--runs R] [--sim-nodes "100 1000"] [--sim-only] [--swarmd PATH]
#               [--swarmctl PATH] [--keep] [--peer docker [--peer-managers M] [--peer-workers W]
#               [--peer-only]]
# swarmd/swarmctl: --swarmd/--swarmctl, $SWARMD/$SWARMCTL, else build-bench/cmd/ of this tree;
# bench-ca-sim: $CA_SIM, else bench/bench-ca-sim beside that cmd/.
# --peer docker (root): also Docker Swarm, M managers + W workers (default 3 + 3), one dockerd
# each (bench/peer-docker.sh), `docker swarm ca --rotate` R times, next to swarmd's rotation of
# the same shape from this run, and the ratio; --peer-only: just those two.
# Everything started is stopped and the temp dirs removed on every exit path.
set -u
set -o pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
WORKERS=50
RUNS=3
KEEP=0
SIM_NODES="100 1000"
SIM_ONLY=0
PEER=
PEER_ONLY=0
PEER_M=3
PEER_W=3
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
    --peer) PEER=$2; shift ;;
    --peer-managers) PEER_M=$2; shift ;;
    --peer-workers) PEER_W=$2; shift ;;
    --peer-only) PEER_ONLY=1 ;;
    -h | --help) sed -n '6,15s/^# *//p' "$0" >&2; exit 2 ;;
    *) echo "ca: unknown argument '$1'" >&2; exit 2 ;;
    esac
    shift
done
case $PEER in
'' | docker) ;;
*) echo "ca: unknown peer '$PEER' (only: docker)" >&2; exit 2 ;;
esac
[ "$PEER_ONLY" = 0 ] || [ -n "$PEER" ] || { echo "ca: --peer-only needs --peer docker" >&2; exit 2; }
[[ "$PEER_M" =~ ^[1-9]$ && "$PEER_W" =~ ^[0-9]{1,2}$ ]] ||
    { echo "ca: --peer-managers 1..9, --peer-workers 0..99" >&2; exit 2; }
[ -n "$SWARMCTL" ] || SWARMCTL=$(dirname "$SWARMD")/swarmctl
[ -x "$SWARMD" ] && [ -x "$SWARMCTL" ] || { echo "ca: no swarmd/swarmctl at $SWARMD" >&2; exit 2; }
CA_SIM=${CA_SIM:-$(dirname "$SWARMD")/../bench/bench-ca-sim}
[ -z "$SIM_NODES" ] || [ -x "$CA_SIM" ] || { echo "ca: no bench-ca-sim at $CA_SIM" >&2; exit 2; }

T=$(mktemp -d /tmp/swarmd-bench-ca.XXXXXX)
PIDS=()
DK_DIR=    # the Docker engines' dirs (one per node) live under it: see peer_docker
DK_NODES=() # their names (m1.., w1..), in start order
stop_swarmd() {
    local p
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null
    done
    PIDS=()
}
# stop_docker: every engine we started (or began to start), all at once: each leaves the swarm,
# stops its dockerd and containerd, drops its gateway bridge and mounts and removes its dir.
stop_docker() {
    local n i=0
    [ -n "$DK_DIR" ] && [ -d "$DK_DIR" ] || return 0
    for n in "${DK_NODES[@]}"; do
        i=$((i + 1))
        [ "$KEEP" = 1 ] && cp "$DK_DIR/$n/dockerd.log" "$T/docker-$n.log" 2>/dev/null
        PEER_DIR=$DK_DIR/$n PEER_GW_IF=$(dk_gw_if "$n") "$HERE/peer-docker.sh" stop >"$T/docker-stop-$n.out" 2>&1 &
    done
    wait
    # Whatever is still mounted under our dir (peer-docker.sh unmounts its own; belt and braces).
    findmnt -rn -o TARGET 2>/dev/null | grep "^$DK_DIR/" | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
    rm -rf "$DK_DIR" || echo "ca: could not remove $DK_DIR" >&2
    DK_DIR=
}
cleanup() {
    trap - EXIT INT TERM
    stop_swarmd
    stop_docker
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

declare -A MED # MED[MANAGERSxWORKERS]: swarmd's median of that shape in this run

measure() { # measure NAME MANAGERS WORKERS
    local c=$1 ms all=() med
    cluster "$c" "$2" "$3" || return 1
    for ((r = 0; r < RUNS; r++)); do
        ms=$(rotate "$c") || { echo "ca: rotation failed on $c" >&2; return 1; }
        all+=("$ms")
    done
    med=$(printf '%s\n' "${all[@]}" | median)
    MED[$2x$3]=$med
    echo "ca: rotation managers=$2 workers=$3 nodes=$(($2 + $3)) median=$med ms runs=${all[*]} (from the call to completion: every node holds a leaf of the new root, the old root and key are gone, the tokens changed)"
}

# simulated NODES: one rotation across that many simulated nodes on one manager; its line
simulated() {
    local out
    out=$("$CA_SIM" -n "$1" --swarmd "$SWARMD" --swarmctl "$SWARMCTL" 2>"$T/sim-$1.err")
    local rc=$?
    grep '^ca: ' <<<"$out"
    [ $rc = 0 ] || { echo "ca: bench-ca-sim -n $1 failed:" >&2; grep -v '^ca: ' <<<"$out" >&2; cat "$T/sim-$1.err" >&2; return 1; }
}

# --- the peer: Docker Swarm, PEER_M managers + PEER_W workers, one isolated dockerd each
DK=/usr/bin/docker # Debian's CLI matches Debian's engine
[ -x "$DK" ] || DK=$(command -v docker 2>/dev/null || echo docker)
dk() { local n=$1; shift; timeout 120 "$DK" -H "unix://$DK_DIR/$n/docker.sock" "$@"; }
# Gateway bridge of node N: <= 15 characters, unique to this run (the temp dir's suffix).
dk_gw_if() { echo "sbc${DK_DIR##*.}$1"; }
# free_port FROM: the first TCP port from FROM that nothing listens on.
free_port() {
    local p=$1
    while [ -n "$(ss -Hltn "sport = :$p" 2>/dev/null)" ]; do p=$((p + 1)); done
    echo "$p"
}
# dk_start_why OUT: peer-docker.sh's last word, with the last line of the log it showed.
dk_start_why() {
    local why log
    why=$(grep -o 'peer-docker: .*' "$1" | tail -n 1)
    log=$(grep -v 'peer-docker: ' "$1" | grep -v '^ *$' | tail -n 1 | cut -c 1-200)
    echo "${why#peer-docker: }${log:+ (last log line: $log)}"
}
not_measured() { echo "ca: peer docker: not measured: $*"; return 1; }
# dk_all_ready: every node Ready and every manager Leader or Reachable, seen from m1.
dk_all_ready() {
    local st
    st=$(dk m1 node ls --format '{{.Status}} {{.ManagerStatus}}' 2>/dev/null) || return 1
    [ "$(grep -c '^Ready' <<<"$st")" = $((PEER_M + PEER_W)) ] &&
        [ "$(grep -cE '^Ready (Leader|Reachable)$' <<<"$st")" = "$PEER_M" ]
}
# dk_root: the cluster's current root certificate (whitespace dropped), from m1.
dk_root() { dk m1 swarm ca 2>/dev/null | tr -d ' \n'; }
# dk_moved OLD: the root changed and every node reports the new root as its trust root.
dk_moved() {
    local new ids id tr
    new=$(dk_root)
    [ -n "$new" ] && [ "$new" != "$1" ] || return 1
    ids=$(dk m1 node ls -q) || return 1
    for id in $ids; do
        tr=$(dk m1 node inspect --format '{{.Description.TLSInfo.TrustRoot}}' "$id" | tr -d ' \n')
        [ "$tr" = "$new" ] || return 1
    done
}
# peer_docker: start the swarm, time R rotations, print the peer's line and the ratio. On any
# failure one "not measured" line (return 1: the caller goes on, exit status unchanged).
peer_docker() {
    local nm=$PEER_M nw=$PEER_W i n port mport t0 ms all=() med ours root err=$T/docker.err
    [ "$(id -u)" = 0 ] || { not_measured "needs root (dockerd)"; return 1; }
    DK_DIR=$(mktemp -d /tmp/swarmd-bench-ca-docker.XXXXXX) || { not_measured "mktemp failed"; return 1; }
    port=$(free_port 42377)
    mport=$port
    for ((i = 1; i <= nm + nw; i++)); do
        if ((i <= nm)); then n=m$i; else n=w$((i - nm)); fi
        DK_NODES+=("$n")
        # One subnet per engine for its docker_gwbridge (no traffic goes through it).
        PEER_DIR=$DK_DIR/$n PEER_GW_IF=$(dk_gw_if "$n") PEER_GW_SUBNET=172.30.$((100 + i)).0/24 \
            "$HERE/peer-docker.sh" start >"$T/docker-start-$n.out" 2>&1 ||
            { not_measured "engine $n did not start: $(dk_start_why "$T/docker-start-$n.out")"; return 1; }
    done
    dk m1 swarm init --advertise-addr "127.0.0.1:$mport" --listen-addr "127.0.0.1:$mport" >/dev/null 2>"$err" ||
        { not_measured "swarm init failed: $(head -n 1 "$err")"; return 1; }
    for ((i = 2; i <= nm + nw; i++)); do
        n=${DK_NODES[i - 1]}
        port=$(free_port $((port + 1)))
        dk "$n" swarm join --token "$(dk m1 swarm join-token -q "$([ "${n:0:1}" = m ] && echo manager || echo worker)")" \
            --advertise-addr "127.0.0.1:$port" --listen-addr "127.0.0.1:$port" "127.0.0.1:$mport" >/dev/null 2>"$err" ||
            { not_measured "$n: swarm join failed: $(head -n 1 "$err")"; return 1; }
    done
    for _ in $(seq 600); do dk_all_ready && break; sleep 0.1; done
    dk_all_ready || { not_measured "the $((nm + nw)) nodes were not all Ready in 60 s"; return 1; }
    for ((r = 0; r < RUNS; r++)); do
        root=$(dk_root)
        t0=$(now_ms)
        # Blocks until every node holds a certificate of the new root and trusts it alone.
        dk m1 swarm ca --rotate --quiet >/dev/null 2>"$err" ||
            { not_measured "docker swarm ca --rotate (run $((r + 1))) exited $?: $(head -n 1 "$err")"; return 1; }
        ms=$(($(now_ms) - t0))
        dk_moved "$root" || { not_measured "after run $((r + 1)) not every node reports the new root"; return 1; }
        all+=("$ms")
    done
    med=$(printf '%s\n' "${all[@]}" | median)
    echo "ca: peer docker swarm rotation managers=$nm workers=$nw nodes=$((nm + nw)) median=$med ms runs=${all[*]} (dockerd $(dk m1 version --format '{{.Server.Version}}' 2>/dev/null), one engine per node on loopback; docker swarm ca --rotate until it returns: every node moved; checked after each run: every node's trust root is the new one)"
    ours=${MED[${nm}x$nw]}
    echo "ca: ratio docker/swarmd=$(awk -v d="$med" -v s="$ours" 'BEGIN { printf "%.1f", d / s }') (same shape: managers=$nm workers=$nw, medians $med / $ours ms; swarmd/docker=$(awk -v d="$med" -v s="$ours" 'BEGIN { printf "%.2f", s / d }'))"
}
# peer: swarmd's rotation of the peer's shape (reused when this run measured it), then Docker.
peer() {
    stop_swarmd # the other clusters would load the machine during the peer's runs
    if [ -z "${MED[${PEER_M}x$PEER_W]:-}" ]; then
        measure same "$PEER_M" "$PEER_W" || return 1
        stop_swarmd
    fi
    peer_docker
    stop_docker
    return 0
}

if [ "$PEER_ONLY" = 1 ]; then
    peer || exit 1
    exit 0
fi
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
if [ -n "$PEER" ]; then
    peer || exit 1
else
    echo "ca: no peer: Docker Swarm (see PEERS.md) is measured with --peer docker (root)"
fi
