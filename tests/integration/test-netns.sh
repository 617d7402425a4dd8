#!/usr/bin/env bash
# 1 manager + 2 workers, each in its own network namespace linked by veth pairs to a bridge
# in a fourth (the host's root namespace is never touched): join over the veth addresses, a
# service with a secret spread over both workers, a worker's link cut (Down, tasks move) and
# restored (Ready without rejoining), and a join from a namespace with no route refused.
. "$(dirname "$0")/lib.sh"
[ "$(id -u)" = 0 ] || { echo "skipped: needs root"; exit 77; }
for p in ip nsenter python3; do
    command -v "$p" >/dev/null || { echo "skipped: needs $p"; exit 77; }
done

NS=swarmd-it-$$ # namespaces $NS-br (the bridge), -a (manager), -b, -c (workers), -d (no route)
NETS=()
NET=10.213.47     # manager and workers (private to these namespaces: runs cannot clash)
OTHER=10.213.48   # the unreachable worker's subnet, with no route to $NET
TASK_ARG=7$$      # `/bin/sleep $TASK_ARG`: this run's tasks and no one else's
# Daemons enter a namespace with nsenter --net only: `ip netns exec` also remounts /sys in
# a new mount namespace, which hides the cgroup mounts under /sys/fs/cgroup from swarmd
# (every task is then rejected: "no cgroup v2 mount at /sys/fs/cgroup and no v1 ...").
# NETNS_EXEC=ip runs the daemons under `ip netns exec` to see that.
IN_NS=${NETNS_EXEC:-nsenter}

task_pids() { pgrep -fx "/bin/sleep $TASK_ARG" | tr '\n' ' '; }

netns_cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    # tasks a failed run left behind (they outlive a SIGKILLed worker)
    for p in $(task_pids); do kill -KILL "$p" 2>/dev/null; done
    # anything still mounted under the temp dir, deepest first
    awk -v t="$T" '$5 == t || index($5, t "/") == 1 { print $5 }' /proc/self/mountinfo |
        sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
    # whatever still runs in this test's namespaces, then the namespaces
    for n in "${NETS[@]}"; do
        for p in $(ip netns pids "$n" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
        ip netns del "$n" 2>/dev/null
    done
    cleanup # lib.sh: the daemons (already gone) and $T
}
trap netns_cleanup EXIT

# in_ns NS CMD...: CMD in NS's network namespace (and nothing else of the host changed).
# It execs: call it in a subshell, `(in_ns ...) &`, whose pid is then CMD's own.
in_ns() {
    local ns=$1; shift
    if [ "$IN_NS" = ip ]; then
        exec ip netns exec "$ns" "$@"
    else
        exec nsenter --net="/run/netns/$ns" -- "$@"
    fi
}
# wait_for SECONDS CMD...: until CMD succeeds (polled every 0.1 s)
wait_for() {
    local s=$1; shift
    for _ in $(seq $((s * 10))); do "$@" && return 0; sleep 0.1; done
    return 1
}
# since T0: seconds from T0 (date +%s.%N) to now, for the log only: never asserted
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
# require DESCRIPTION CMD...: a check the rest depends on; stops the test when it fails
require() {
    local what=$1; shift
    if "$@"; then pass "$what"; else fail "$what (the rest depends on it)"; finish; fi
}
# start_in NS NAME ARGS...: swarmd ARGS in NS in the background, like start_swarmd
start_in() {
    local ns=$1 name=$2; shift 2
    (in_ns "$ns" "$SWARMD" "$@") >"$T/$name.out" 2>"$T/$name.log" &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

ROOT_BEFORE=$(ip route; ip -br link; ip -br addr)

# the bridge namespace, then one namespace per node with a veth pair into the bridge
ip netns add "$NS-br" || { fail "cannot create a network namespace"; finish; }
NETS+=("$NS-br")
ip -n "$NS-br" link set lo up
ip -n "$NS-br" link add br0 type bridge
ip -n "$NS-br" link set br0 up
i=0
for n in a b c d; do
    i=$((i + 1))
    ip netns add "$NS-$n" || { fail "cannot create namespace $NS-$n"; finish; }
    NETS+=("$NS-$n")
    if ! { ip -n "$NS-br" link add "v$n" type veth peer name eth0 netns "$NS-$n" &&
        ip -n "$NS-br" link set "v$n" master br0 up &&
        ip -n "$NS-$n" link set lo up &&
        ip -n "$NS-$n" link set eth0 up; }; then
        fail "cannot wire $NS-$n to the bridge"
        finish
    fi
    if [ "$n" = d ]; then
        ip -n "$NS-$n" addr add "$OTHER.$i/24" dev eth0
    else
        ip -n "$NS-$n" addr add "$NET.$i/24" dev eth0
    fi
done
A=$NET.1 B=$NET.2 C=$NET.3 D=$OTHER.4
# reach NS IP: a TCP connection from NS to IP:9 is refused (the address answers)
reach() { has "$( (in_ns "$NS-$1" bash -c "exec 3<>/dev/tcp/$2/9") 2>&1)" refused; }
check "the veth/bridge network is up: b and c reach a" wait_for 10 eval 'reach b "$A" && reach c "$A"'
check "d has no route to a" bash -c "! ip -n $NS-d route get $A >/dev/null 2>&1"
check "the host's root namespace is unchanged (routes, links, addresses)" \
    bash -c "[ \"\$(ip route; ip -br link; ip -br addr)\" = \"\$1\" ]" _ "$ROOT_BEFORE"

SD=$T/m
SOCK=$SD/swarmd.sock
start_in "$NS-a" m init --state-dir "$SD" --listen-addr "$A:2377" --advertise-addr "$A" \
    --hostname netns-a
MPID=$LAST_PID
wait_ready "$SOCK" "$MPID" || { fail "init in a namespace not ready"; finish; }
check "the manager's pid is swarmd's, in namespace a" \
    bash -c "grep -qx swarmd /proc/$MPID/comm && [ \"\$(stat -L -c %i /proc/$MPID/ns/net)\" = \"\$(stat -L -c %i /run/netns/$NS-a)\" ]"
check "cluster update --heartbeat-period 1s" bash -c "'$SWARMCTL' -H unix://$SOCK cluster update --heartbeat-period 1s >/dev/null"
WT=$(ctl join-token -q worker)

# the unreachable worker runs alongside the rest: it may take its whole --timeout
D_START=$SECONDS
(in_ns "$NS-d" "$SWARMD" join --state-dir "$T/d" --advertise-addr "$D" --hostname netns-d \
    --timeout 5s "$WT" "$A:2377") >"$T/d.out" 2>"$T/d.log" &
DPID=$!
PIDS+=("$DPID")

start_in "$NS-b" b join --state-dir "$T/b" --listen-addr "$B:2377" --advertise-addr "$B" \
    --hostname netns-b "$WT" "$A:2377"
BPID=$LAST_PID
start_in "$NS-c" c join --state-dir "$T/c" --listen-addr "$C:2377" --advertise-addr "$C" \
    --hostname netns-c "$WT" "$A:2377"
CPID=$LAST_PID

# node_field HOSTNAME FIELD: that field of node ls --format json for the node
node_field() { ctl node ls --format json 2>/dev/null | python3 -c '
import json, sys
for n in json.load(sys.stdin):
    if n["hostname"] == sys.argv[1]:
        print(n[sys.argv[2]]); break' "$1" "$2" 2>/dev/null; }
wait_state() { # HOSTNAME STATE SECONDS
    for _ in $(seq $(($3 * 10))); do
        [ "$(node_field "$1" status)" = "$2" ] && return 0
        sleep 0.1
    done
    return 1
}
running() { ctl service ps --format json "$1" 2>/dev/null | python3 -c '
import json, sys
print(sum(1 for t in json.load(sys.stdin) if t["state"] == "running"))' 2>/dev/null || echo 0; }
on_node() { # SERVICE HOSTNAME: its running tasks there
    local id
    id=$(node_field "$2" id)
    ctl service ps --format json "$1" 2>/dev/null | python3 -c '
import json, sys
print(sum(1 for t in json.load(sys.stdin) if t["state"] == "running" and t["node_id"] == sys.argv[1]))' "$id" 2>/dev/null || echo 0
}
pid_on() { # SERVICE HOSTNAME: the host pid of one of its running tasks there
    local id
    id=$(node_field "$2" id)
    ctl service ps --format json "$1" | python3 -c '
import json, sys
print(next(t["pid"] for t in json.load(sys.stdin) if t["state"] == "running" and t["node_id"] == sys.argv[1]))' "$id"
}
spread() { # SERVICE HOST N HOST N ...: running tasks per node
    local svc=$1; shift
    while [ $# -gt 0 ]; do [ "$(on_node "$svc" "$1")" = "$2" ] || return 1; shift 2; done
}

require "worker b is Ready" wait_state netns-b ready 20
require "worker c is Ready" wait_state netns-c ready 20
check "manager a is Ready" wait_state netns-a ready 5
check "node ls: 3 nodes" bash -c "[ \"\$('$SWARMCTL' -H unix://$SOCK node ls -q | wc -l)\" = 3 ]"
for n in a:$A b:$B c:$C; do
    ADDR=$(node_field "netns-${n%%:*}" addr)
    check "node netns-${n%%:*} is listed at its veth address ($ADDR)" has "$ADDR" "^${n#*:}:2377$"
done
B_ID=$(node_field netns-b id)
check "the manager can be drained (tasks go to the workers only)" \
    bash -c "'$SWARMCTL' -H unix://$SOCK node update --availability drain netns-a >/dev/null"

SECRET="netns-$RANDOM$RANDOM"
printf '%s' "$SECRET" | ctl secret create net_pw - >/dev/null
check "secret created" bash -c "'$SWARMCTL' -H unix://$SOCK secret inspect net_pw >/dev/null"
ctl service create --name netweb --replicas 4 --secret net_pw -- /bin/sleep "$TASK_ARG" >/dev/null
require "4 replicas running" wait_for 30 eval '[ "$(running netweb)" = 4 ]'
check "spread over both workers: 2 on b, 2 on c, none on a" wait_for 10 spread netweb netns-b 2 netns-c 2 netns-a 0
PID_B=$(pid_on netweb netns-b 2>/dev/null)
PID_C=$(pid_on netweb netns-c 2>/dev/null)
check "a task on b is a host pid of /bin/sleep ($PID_B)" grep -q sleep "/proc/$PID_B/comm"
check "the secret is at /run/secrets/net_pw inside a task on b" \
    bash -c "[ \"\$(cat /proc/$PID_B/root/run/secrets/net_pw)\" = '$SECRET' ]"
check "…and inside a task on c" bash -c "[ \"\$(cat /proc/$PID_C/root/run/secrets/net_pw)\" = '$SECRET' ]"
check "a task has a network namespace of its own, not its worker's" \
    bash -c "[ \"\$(readlink /proc/$PID_B/ns/net)\" != \"\$(readlink /proc/$BPID/ns/net)\" ]"
check "the secret is in no state dir" bash -c "! grep -rqa '$SECRET' '$SD' '$T/b' '$T/c'"

# cut b's link on its own side: the manager stops hearing its heartbeats (1 s period)
ip -n "$NS-b" link set eth0 down
CUT_AT=$(date +%s.%N)
require "b's link cut: b is Down (3 missed 1 s heartbeats + slack)" wait_state netns-b down 15
echo "info: b was seen Down $(since "$CUT_AT") s after its link was cut"
check "c stays Ready" wait_state netns-c ready 1
check "the worker on c is still running" kill -0 "$CPID"
check "b's tasks are rescheduled: 4 running on c" wait_for 20 spread netweb netns-c 4 netns-b 0
check "the worker on b did not exit while cut off" kill -0 "$BPID"

ip -n "$NS-b" link set eth0 up
UP_AT=$(date +%s.%N)
check "b's link restored: b is Ready again" wait_state netns-b ready 20
echo "info: b was seen Ready $(since "$UP_AT") s after its link came back"
check "…without rejoining: same node id, same process, 3 nodes" bash -c "
    [ \"\$(grep -c . <<<\"\$('$SWARMCTL' -H unix://$SOCK node ls -q)\")\" = 3 ] &&
    grep -q '^node_id=$B_ID$' '$T/b/node.conf' && kill -0 $BPID"
check "…and b's old tasks are stopped: 4 task processes in all" \
    wait_for 15 eval '[ "$(wc -w <<<"$(task_pids)")" = 4 ]'
check "4 replicas still running" wait_for 10 eval '[ "$(running netweb)" = 4 ]'

# a worker with no route to the manager: retried until the join timeout, then a clear error
check "join with no route to the manager gives up (--timeout 5s)" \
    wait_for 30 eval '! kill -0 '"$DPID"' 2>/dev/null'
wait "$DPID" 2>/dev/null; RC=$?
D_SPENT=$((SECONDS - D_START))
OUT=$(cat "$T/d.out" "$T/d.log")
check "…with exit status 1 (got $RC after ${D_SPENT}s)" bash -c "[ $RC = 1 ]"
check "…saying the manager is unreachable" has "$OUT" "cannot reach the manager at $A:2377: .*unreachable"
check "…and leaves no node behind" bash -c "[ ! -e '$T/d/node.conf' ]"
check "…and no node was added" bash -c "[ -z \"\$('$SWARMCTL' -H unix://$SOCK node ls | grep netns-d)\" ]"
OUT=$( (in_ns "$NS-d" "$SWARMD" join --state-dir "$T/d2" "$WT" "$A:2377") 2>&1); RC=$?
check "without --advertise-addr and no route: refused at once (exit 1)" bash -c "[ $RC = 1 ]"
check "…asking for --advertise-addr" has "$OUT" "advertise-addr"

ctl service rm netweb >/dev/null
check "service rm: no task process left" wait_for 15 eval '[ -z "$(task_pids)" ]'
check "secret rm once unused" bash -c "'$SWARMCTL' -H unix://$SOCK secret rm net_pw >/dev/null"
check "the host's root namespace is still unchanged" \
    bash -c "[ \"\$(ip route; ip -br link; ip -br addr)\" = \"\$1\" ]" _ "$ROOT_BEFORE"
finish
