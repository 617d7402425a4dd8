#!/usr/bin/env bash
# cluster.sh: service convergence, worker join and agent memory of a 1 manager + 2 workers swarmd
# cluster on loopback (root), next to Docker Swarm from the same run with --docker.
#   sudo bench/cluster.sh [--sizes "20 100 1000"] [--join-runs 5] [--docker]
#                         [--swarmd PATH] [--swarmctl PATH] [--keep]
# swarmd/swarmctl: --swarmd/--swarmctl, $SWARMD/$SWARMCTL, else build-bench/cmd/ of this tree.
# Everything (processes, temp state dirs, the nodes' cgroups, the Docker peer) is cleaned up on
# every exit path. Exit status 1 if a measurement failed.
set -u
set -o pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
SIZES="20 100 1000"
JOIN_RUNS=5
DOCKER_PEER=0
KEEP=0
SWARMD=${SWARMD:-$HERE/../build-bench/cmd/swarmd}
SWARMCTL=${SWARMCTL:-}
MEM_TASKS=100
DOCKER_N=20
POLL=0.02 # service ls poll period (s)

usage() {
    sed -n '4,5s/^# *//p' "$0" >&2
    exit 2
}
while [ $# -gt 0 ]; do
    case $1 in
    --sizes) SIZES=$2; shift ;;
    --join-runs) JOIN_RUNS=$2; shift ;;
    --docker) DOCKER_PEER=1 ;;
    --swarmd) SWARMD=$2; shift ;;
    --swarmctl) SWARMCTL=$2; shift ;;
    --keep) KEEP=1 ;;
    -h | --help) usage ;;
    *) echo "cluster: unknown argument '$1'" >&2; usage ;;
    esac
    shift
done
[ -n "$SWARMCTL" ] || SWARMCTL=$(dirname "$SWARMD")/swarmctl
[ "$(id -u)" = 0 ] || { echo "cluster: needs root (tasks get namespaces and cgroups)" >&2; exit 2; }
[ -x "$SWARMD" ] || { echo "cluster: no swarmd at $SWARMD (--swarmd PATH or SWARMD)" >&2; exit 2; }
[ -x "$SWARMCTL" ] || { echo "cluster: no swarmctl at $SWARMCTL" >&2; exit 2; }

T=$(mktemp -d /tmp/swarmd-bench-cluster.XXXXXX)
SOCK=$T/m/swarmd.sock
PIDS=()          # every swarmd we started
NODE_IDS=()      # their node IDs (their cgroup parents are swarmd-<first 12>)
DOCKER_UP=0
FAILED=0

# stop_pid PID SECS: SIGTERM, wait up to SECS, then SIGKILL.
stop_pid() {
    local p=$1 i
    kill -TERM "$p" 2>/dev/null || return 0
    for ((i = 0; i < $2 * 10; i++)); do
        kill -0 "$p" 2>/dev/null || { wait "$p" 2>/dev/null; return 0; }
        sleep 0.1
    done
    echo "cluster: swarmd $p ignored SIGTERM for $2 s, killing it" >&2
    kill -KILL "$p" 2>/dev/null
    wait "$p" 2>/dev/null
}

# our_cgroups: the cgroup dirs of our nodes that still exist (any hierarchy; a worker nests
# its parent under its own cgroup, e.g. memory/<its cgroup>/swarmd-ID).
our_cgroups() {
    local id
    for id in "${NODE_IDS[@]}"; do
        find /sys/fs/cgroup -maxdepth 5 -type d -name "swarmd-${id:0:12}" 2>/dev/null
    done
}

cleanup() {
    local p d i pids
    trap - EXIT INT TERM
    # Workers first (they stop their tasks and remove their cgroups), then the manager.
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do kill -TERM "${PIDS[i]}" 2>/dev/null; done
    for p in "${PIDS[@]}"; do stop_pid "$p" 30; done
    # Whatever task survived: kill it by cgroup, then wait for the cgroups to go.
    for d in $(our_cgroups); do
        pids=$(find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null)
        # shellcheck disable=SC2086 # one argument per pid
        [ -n "$pids" ] && { echo "cluster: killing leftover task processes in $d: $pids" >&2; kill -KILL $pids 2>/dev/null; }
    done
    for ((i = 0; i < 100; i++)); do [ -z "$(our_cgroups)" ] && break; sleep 0.1; done
    if [ -n "$(our_cgroups)" ]; then
        echo "cluster: removing cgroups the workers left: $(our_cgroups | tr '\n' ' ')" >&2
        for d in $(our_cgroups); do find "$d" -depth -type d -exec rmdir {} + 2>/dev/null; done
    fi
    if [ "$DOCKER_UP" = 1 ]; then "$HERE/peer-docker.sh" stop >/dev/null 2>&1 || echo "cluster: peer-docker.sh stop failed" >&2; fi
    if [ "$KEEP" = 1 ]; then echo "cluster: logs kept in $T" >&2; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now_us() { echo "${EPOCHREALTIME/./}"; }
ms_since() { # START_US -> milliseconds with one decimal
    local d=$(($(now_us) - $1))
    printf '%d.%d' $((d / 1000)) $(((d % 1000) / 100))
}
ctl() { "$SWARMCTL" -H "unix://$SOCK" "$@"; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
die() { echo "cluster: $*" >&2; FAILED=1; exit 1; }

# start_swarmd NAME ARGS...: in the background, log in $T/NAME.log; sets LAST_PID.
start_swarmd() {
    local name=$1
    shift
    "$SWARMD" "$@" >"$T/$name.out" 2>"$T/$name.log" &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}
# node_id LOG: the node ID swarmd logged (init: "node X of cluster", join: "node X is a worker").
node_id() { sed -n 's/.* node \([0-9a-z]\{25\}\) .*/\1/p' "$1" | head -n 1; }
# ready HOSTNAME: the node is Ready in node ls.
ready() { ctl node ls 2>/dev/null | grep -q -- "^[0-9a-z]* *$1 *Ready "; }
wait_for() { # SECS PERIOD CMD...: until CMD succeeds
    local secs=$1 period=$2 end
    shift 2
    end=$(($(now_us) + secs * 1000000))
    while [ "$(now_us)" -lt "$end" ]; do
        "$@" && return 0
        sleep "$period"
    done
    return 1
}
# tasks_alive: how many task processes our workers have (they are the workers' children).
tasks_alive() {
    local n=0 w
    for w in "$W1" "$W2"; do n=$((n + $(pgrep -c -P "$w" -x sleep))); done
    echo "$n"
}
no_tasks() { [ "$(tasks_alive)" = 0 ]; }
converged() { ctl service ls --format json 2>/dev/null | grep -q "\"replicas\": \"$1/$1\""; }
# rm_service NAME: remove it and wait (untimed: /bin/sleep as pid 1 ignores SIGTERM, so the
# workers wait out the 10 s stop grace) until no task process remains.
rm_service() {
    ctl service rm "$1" >/dev/null || die "service rm $1 failed"
    wait_for 60 0.2 no_tasks || die "tasks of $1 still running 60 s after rm"
}

# --- the cluster: 1 manager (drained of nothing: tasks are constrained to workers) + 2 workers
start_swarmd m init --state-dir "$T/m" --listen-addr 127.0.0.1:0 --dispatcher-heartbeat 1s --hostname bench-m
MPID=$LAST_PID
wait_for 10 0.02 ctl node ls -q >/dev/null 2>&1 || { cat "$T/m.log" >&2; die "swarmd init did not answer in 10 s"; }
NODE_IDS+=("$(node_id "$T/m.log")")
ADDR=$(sed -n 's/.*listening on \([0-9.:]*\) .*/\1/p' "$T/m.log" | tail -n 1)
WT=$(ctl join-token -q worker) || die "join-token failed"
start_swarmd w1 join --state-dir "$T/w1" --hostname bench-w1 "$WT" "$ADDR"
W1=$LAST_PID
start_swarmd w2 join --state-dir "$T/w2" --hostname bench-w2 "$WT" "$ADDR"
W2=$LAST_PID
wait_for 10 0.02 ready bench-w1 && wait_for 10 0.02 ready bench-w2 ||
    { tail -n 5 "$T"/w*.log >&2; die "workers not Ready in 10 s"; }
NODE_IDS+=("$(node_id "$T/w1.log")" "$(node_id "$T/w2.log")")
echo "cluster: 1 manager + 2 workers on $ADDR (swarmd $("$SWARMD" --version 2>&1 | head -n 1)), $(nproc) CPUs, tasks on the workers"

# --- memory: a worker idle, then with MEM_TASKS tasks on it
sleep 1 # let the first heartbeats and assignments settle
R0=$(rss_kib "$W1")
RM0=$(rss_kib "$MPID")
ctl service create --name bench-mem --replicas "$MEM_TASKS" --constraint node.hostname==bench-w1 \
    -- /bin/sleep 3600 >/dev/null || die "service create bench-mem failed"
wait_for 60 $POLL converged "$MEM_TASKS" || die "bench-mem did not converge in 60 s"
sleep 1
R1=$(rss_kib "$W1")
RM1=$(rss_kib "$MPID")
N1=$(pgrep -c -P "$W1" -x sleep)
[ "$N1" = "$MEM_TASKS" ] || echo "cluster: warning: $N1 task processes under bench-w1, expected $MEM_TASKS" >&2
echo "cluster: agent RSS 0 tasks $R0 KiB, $MEM_TASKS tasks $R1 KiB (+$(awk -v a="$R0" -v b="$R1" -v n="$MEM_TASKS" 'BEGIN { printf "%.1f", (b - a) / n }') KiB per task; target < 10240 KiB + < 100 KiB per task; dockerd ~134 MiB + ~13 MiB shim per task)"
echo "cluster: manager RSS $RM0 KiB idle, $RM1 KiB with $MEM_TASKS tasks"
rm_service bench-mem

# --- convergence: service create --replicas N until service ls says N/N
for N in $SIZES; do
    T0=$(now_us)
    ctl service create --name "bench-$N" --replicas "$N" --constraint node.role==worker \
        -- /bin/sleep 3600 >/dev/null || die "service create --replicas $N failed"
    TC=$(ms_since "$T0")
    if ! wait_for $((60 + N / 10)) $POLL converged "$N"; then
        echo "cluster: converge N=$N FAILED: $(ctl service ls | tail -n +2)"
        FAILED=1
        rm_service "bench-$N"
        continue
    fi
    MS=$(ms_since "$T0")
    ALIVE=$(tasks_alive)
    case $N in 100) TGT=" (target < 500 ms)" ;; 1000) TGT=" (target < 5000 ms)" ;; *) TGT="" ;; esac
    echo "cluster: converge N=$N in $MS ms$TGT (create answered in $TC ms; $ALIVE task processes; manager RSS $(rss_kib "$MPID") KiB)"
    [ "$N" = "$DOCKER_N" ] && OURS_DOCKER_N=$MS
    rm_service "bench-$N"
done

# --- join: swarmd join until Ready in node ls, fresh state dir each time
JT=()
for ((i = 1; i <= JOIN_RUNS; i++)); do
    T0=$(now_us)
    start_swarmd "j$i" join --state-dir "$T/j$i" --hostname "bench-j$i" "$WT" "$ADDR"
    JP=$LAST_PID
    if wait_for 10 0.005 ready "bench-j$i"; then
        JT+=("$(ms_since "$T0")")
    else
        echo "cluster: join $i not Ready in 10 s: $(tail -n 2 "$T/j$i.log")" >&2
        FAILED=1
    fi
    id=$(node_id "$T/j$i.log")
    [ -n "$id" ] && NODE_IDS+=("$id")
    stop_pid "$JP" 10
done
if [ ${#JT[@]} -gt 0 ]; then
    SORTED=$(printf '%s\n' "${JT[@]}" | sort -n)
    MED=$(sed -n "$(((${#JT[@]} + 1) / 2))p" <<<"$SORTED")
    echo "cluster: join until Ready median $MED ms (min $(head -n 1 <<<"$SORTED"), max $(tail -n 1 <<<"$SORTED"), ${#JT[@]} runs; target < 50 ms; Docker Swarm ~520 ms per PEERS.md)"
fi

# --- Docker Swarm: a single-node swarm on the isolated peer engine, same N
DK=/usr/bin/docker # Debian's CLI matches Debian's engine
[ -x "$DK" ] || DK=docker
dk() { "$DK" "$@"; }
dk_converged() { [ "$(dk service ls --filter name=bench --format '{{.Replicas}}' 2>/dev/null)" = "$DOCKER_N/$DOCKER_N" ]; }
docker_converge() {
    local bb T0 MS ratio
    "$HERE/peer-docker.sh" start >"$T/peer.out" 2>&1 || { echo "cluster: docker: peer-docker.sh start failed: $(tail -n 1 "$T/peer.out")"; return 1; }
    DOCKER_UP=1
    export DOCKER_HOST=unix://${PEER_DIR:-/tmp/swarmd-bench-docker}/docker.sock
    dk swarm init --advertise-addr 127.0.0.1 >/dev/null 2>"$T/dk.err" || { echo "cluster: docker: swarm init failed: $(head -n 1 "$T/dk.err")"; return 1; }
    bb=$T/bb
    mkdir -p "$bb/bin" && cp "$(command -v busybox)" "$bb/bin/" || { echo "cluster: docker: no busybox to import (apt-get install busybox-static)"; return 1; }
    for c in sh sleep true; do ln -sf busybox "$bb/bin/$c"; done
    tar -C "$bb" -c . | dk import - bb:latest >/dev/null || { echo "cluster: docker: image import failed"; return 1; }
    T0=$(now_us)
    dk service create -d --name bench --replicas "$DOCKER_N" bb:latest sleep 3600 >/dev/null 2>"$T/dk.err" ||
        { echo "cluster: docker: service create failed: $(head -n 1 "$T/dk.err")"; return 1; }
    wait_for 180 $POLL dk_converged || { echo "cluster: docker: $DOCKER_N replicas not running after 180 s"; return 1; }
    MS=$(ms_since "$T0")
    ratio=$(awk -v a="${OURS_DOCKER_N:-0}" -v b="$MS" 'BEGIN { printf "%.4f", a / b }')
    echo "cluster: docker converge N=$DOCKER_N in $MS ms (single-node swarm, same run)   ratio swarmd/docker $ratio"
    dk service rm bench >/dev/null 2>&1
}
if [ "$DOCKER_PEER" = 0 ]; then
    echo "cluster: docker: skipped (pass --docker to measure Docker Swarm with bench/peer-docker.sh in the same run)"
elif ! [[ " $SIZES " == *" $DOCKER_N "* ]]; then
    echo "cluster: docker: skipped (--sizes has no N=$DOCKER_N to compare with)"
else
    docker_converge || FAILED=1
fi
exit $FAILED
