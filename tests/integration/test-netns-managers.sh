#!/usr/bin/env bash
# Three managers, each in its own network namespace linked by a veth pair to a bridge in a
# fourth: raft over the veth addresses; the leader's link cut (the majority elects another
# and keeps writing, the old leader refuses writes, then rejoins as a follower with what it
# missed) and a follower's link cut (the leader stays leader, writes never stop).
. "$(dirname "$0")/lib.sh"
[ "$(id -u)" = 0 ] || { echo "skipped: needs root"; exit 77; }
for p in ip nsenter python3; do
    command -v "$p" >/dev/null || { echo "skipped: needs $p"; exit 77; }
done

NS=swarmd-itm-$$ # namespaces $NS-br (the bridge), $NS-1 .. $NS-3 (the managers)
NETS=()
NET=10.213.49 # private to these namespaces (test-netns.sh uses .47 and .48)

netns_cleanup() {
    local p n
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    for n in "${NETS[@]}"; do
        for p in $(ip netns pids "$n" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
        ip netns del "$n" 2>/dev/null
    done
    cleanup # lib.sh: the daemons (already gone) and $T
}
trap netns_cleanup EXIT

# in_ns NS CMD...: exec CMD in NS's network namespace only (see test-netns.sh for why
# nsenter --net and not `ip netns exec`); call it in a subshell
in_ns() {
    local ns=$1; shift
    exec nsenter --net="/run/netns/$ns" -- "$@"
}
wait_for() { # wait_for SECONDS CMD...: until CMD succeeds (polled every 0.1 s)
    local s=$1; shift
    for _ in $(seq $((s * 10))); do "$@" && return 0; sleep 0.1; done
    return 1
}
# since T0: seconds from T0 (date +%s.%N) to now, for the log only: never asserted
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
# since_log T0 I TEXT: seconds from T0 to the last line of manager I's log with TEXT
since_log() {
    local at
    at=$(grep "$3" "$T/m$2.log" | tail -n 1 | cut -d' ' -f1)
    [ -n "$at" ] || { echo "?"; return; }
    awk -v a="$1" -v b="$(date -d "$at" +%s.%N)" 'BEGIN { printf "%.1f", b - a }'
}
require() { # require DESCRIPTION CMD...: a check the rest depends on
    local what=$1; shift
    if "$@"; then pass "$what"; else fail "$what (the rest depends on it)"; finish; fi
}
start_in() { # start_in NS NAME ARGS...: swarmd ARGS in NS, in the background
    local ns=$1 name=$2; shift 2
    (in_ns "$ns" "$SWARMD" "$@") >"$T/$name.out" 2>"$T/$name.log" &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

sock() { echo "$T/m$1/swarmd.sock"; }
ctlm() { local i=$1; shift; "$SWARMCTL" -H "unix://$(sock "$i")" "$@"; }
# status I: "hostname role status manager_status" lines of node ls through manager I
status() {
    ctlm "$1" node ls --format json 2>/dev/null | python3 -c '
import json, sys
for n in json.load(sys.stdin):
    print(n["hostname"], n["role"], n["status"], n["manager_status"] or "-")' 2>/dev/null
}
leader_of() { status "$1" | awk '$4 == "leader" { print $1 }' | tr '\n' ' ' | sed 's/ $//'; }
# all_healthy I: manager I lists 3 Ready managers, exactly one Leader, the others Reachable
all_healthy() {
    local s
    s=$(status "$1") || return 1
    [ "$(awk '$2 == "manager" && $3 == "ready"' <<<"$s" | wc -l)" = 3 ] &&
        [ "$(awk '$4 == "leader"' <<<"$s" | wc -l)" = 1 ] &&
        [ "$(awk '$4 == "reachable"' <<<"$s" | wc -l)" = 2 ]
}
mstatus() { status "$1" | awk -v h="$2" '$1 == h { print $4 }'; } # I HOSTNAME
put() { printf '%s' "$3" | ctlm "$1" secret create "$2" - >/dev/null; } # I NAME VALUE
idx_of() { echo "${1#mgr-}"; } # mgr-2 -> 2
# all_there I NAME...: manager I serves every secret NAME; names the missing ones
all_there() {
    local i=$1 n miss=(); shift
    for n in "$@"; do ctlm "$i" secret inspect "$n" >/dev/null 2>&1 || miss+=("$n"); done
    [ ${#miss[@]} = 0 ] && return 0
    echo "info: missing through mgr-$i: ${miss[*]}"
    return 1
}

# the bridge namespace, then one namespace per manager with a veth pair into the bridge
ip netns add "$NS-br" || { fail "cannot create a network namespace"; finish; }
NETS+=("$NS-br")
ip -n "$NS-br" link set lo up
ip -n "$NS-br" link add br0 type bridge
ip -n "$NS-br" link set br0 up
for i in 1 2 3; do
    ip netns add "$NS-$i" || { fail "cannot create namespace $NS-$i"; finish; }
    NETS+=("$NS-$i")
    if ! { ip -n "$NS-br" link add "v$i" type veth peer name eth0 netns "$NS-$i" &&
        ip -n "$NS-br" link set "v$i" master br0 up &&
        ip -n "$NS-$i" link set lo up &&
        ip -n "$NS-$i" addr add "$NET.$i/24" dev eth0 &&
        ip -n "$NS-$i" link set eth0 up; }; then
        fail "cannot wire $NS-$i to the bridge"
        finish
    fi
done
reach() { has "$( (in_ns "$NS-$1" bash -c "exec 3<>/dev/tcp/$2/9") 2>&1)" refused; }
require "the veth/bridge network is up" wait_for 10 eval "reach 2 $NET.1 && reach 3 $NET.1"

start_in "$NS-1" m1 init --state-dir "$T/m1" --listen-addr "$NET.1:2377" --hostname mgr-1 \
    --log-level debug
require "manager 1 (init) serves" wait_ready "$(sock 1)" "$LAST_PID"
MT=$(ctlm 1 join-token -q manager)
for i in 2 3; do
    start_in "$NS-$i" "m$i" join --state-dir "$T/m$i" --listen-addr "$NET.$i:2377" \
        --hostname "mgr-$i" --log-level debug "$MT" "$NET.1:2377"
    require "manager $i joins over the veth network and serves" wait_ready "$(sock "$i")" "$LAST_PID"
done
for i in 1 2 3; do
    require "manager $i lists 3 Ready managers: one Leader, two Reachable" wait_for 30 all_healthy "$i"
done
check "all three agree on the leader" bash -c "[ '$(leader_of 1)' = '$(leader_of 2)' ] && [ '$(leader_of 2)' = '$(leader_of 3)' ]"

SECRET="nsm-$RANDOM$RANDOM" # a value to look for in the state dirs at the end
# names with "_" (never in an ID): a name that is also some other ID's prefix is refused as
# ambiguous (manager/objects.c mgr__objs_find)
for i in 1 2 3; do
    check "secret create through manager $i" put "$i" "s_$i" "$SECRET-$i"
done
for i in 1 2 3; do
    check "manager $i reads the secrets created through the others" \
        bash -c "'$SWARMCTL' -H unix://$(sock "$i") secret inspect s_1 s_2 s_3 >/dev/null"
done

# ---- partition the leader: its link goes down from inside its namespace
OLD=$(leader_of 1)
L=$(idx_of "$OLD")
A=$((L % 3 + 1)) B=$(((L + 1) % 3 + 1)) # the majority
echo "info: leader is $OLD; partitioning it from mgr-$A and mgr-$B"
ip -n "$NS-$L" link set eth0 down
CUT=$(date +%s.%N)
new_leader() { local l; l=$(leader_of "$A"); [ -n "$l" ] && [ "$l" != "$OLD" ]; }
require "the majority elects a new leader" wait_for 30 new_leader
echo "info: partition -> node ls through mgr-$A shows a new leader: $(since "$CUT") s"
NEW=$(leader_of "$A")
echo "info: partition -> $NEW logs it is the leader: $(since_log "$CUT" "$(idx_of "$NEW")" 'now the raft leader') s"
check "…both members of the majority agree on it ($NEW)" \
    wait_for 10 eval '[ "$(leader_of "$B")" = "$NEW" ]'
check "the majority keeps accepting writes (through mgr-$A)" wait_for 10 put "$A" p_1 "$SECRET-p_1"
check "…and through mgr-$B" put "$B" p_2 "$SECRET-p_2"
check "…read back through the other" bash -c "'$SWARMCTL' -H unix://$(sock "$A") secret inspect p_2 >/dev/null && '$SWARMCTL' -H unix://$(sock "$B") secret inspect p_1 >/dev/null"
check "the majority lists $OLD as Unreachable" \
    wait_for 30 eval '[ "$(mstatus "$A" "$OLD")" = unreachable ] && [ "$(mstatus "$B" "$OLD")" = unreachable ]'
# node ls is served by the leader: without one it fails, saying so
no_leader() {
    local out
    out=$(ctlm "$L" node ls 2>&1) && ! grep -q Leader <<<"$out" && return 0
    has "$out" "leader"
}
check "the old leader steps down: node ls through it reports no leader" wait_for 30 no_leader
echo "info: node ls through the partitioned old leader: $(ctlm "$L" node ls 2>&1 | head -n 3)"
OUT=$(printf z | ctlm "$L" secret create cut_off - 2>&1); RC=$?
echo "info: a write through the partitioned old leader: exit $RC: $OUT"
check "the old leader refuses writes (exit 1)" bash -c "[ $RC = 1 ]"
check "…saying there is no leader or quorum" has "$OUT" "leader\|quorum"
check "…and the refused write is not in the majority's store" bash -c "! '$SWARMCTL' -H unix://$(sock "$A") secret inspect cut_off >/dev/null 2>&1"

# ---- heal
ip -n "$NS-$L" link set eth0 up
HEAL=$(date +%s.%N)
require "healed: the old leader lists 3 Ready managers, one Leader, all Reachable" \
    wait_for 60 all_healthy "$L"
echo "info: heal -> all reachable (through the old leader): $(since "$HEAL") s"
for i in "$A" "$B"; do
    check "…and so does mgr-$i" wait_for 30 all_healthy "$i"
done
FINAL=$(leader_of "$L")
echo "info: leader after heal: $FINAL"
check "$OLD is a follower now" bash -c "[ -n '$FINAL' ] && [ '$FINAL' != '$OLD' ]"
check "all three agree on the leader" bash -c "[ '$(leader_of "$A")' = '$FINAL' ] && [ '$(leader_of "$B")' = '$FINAL' ]"
check "the old leader has the secrets written during the partition" \
    wait_for 15 eval "ctlm $L secret inspect p_1 p_2 >/dev/null"
check "…and the refused write appears nowhere" \
    bash -c "! '$SWARMCTL' -H unix://$(sock "$L") secret inspect cut_off >/dev/null 2>&1"
check "the old leader takes writes again (relayed)" put "$L" after_heal "$SECRET-h"
check "…read back through the others" bash -c "'$SWARMCTL' -H unix://$(sock "$A") secret inspect after_heal >/dev/null && '$SWARMCTL' -H unix://$(sock "$B") secret inspect after_heal >/dev/null"

# ---- partition a follower and heal, writing through the leader all along
LD=$(leader_of "$L")
L=$(idx_of "$LD")
F=$((L % 3 + 1))
echo "info: leader is $LD; partitioning follower mgr-$F"
N=0 WFAIL=0 LCHANGE=0 ACKED=()
write() { # one write through the leader, and who the leader says leads; counts failures
    local out l
    N=$((N + 1))
    if ! out=$(printf '%s' "$SECRET-f_$N" | ctlm "$L" secret create "f_$N" - 2>&1); then
        WFAIL=$((WFAIL + 1))
        echo "info: write f_$N through $LD failed: $out"
    else
        ACKED+=("f_$N")
    fi
    l=$(leader_of "$L")
    if [ "$l" != "$LD" ]; then
        LCHANGE=$((LCHANGE + 1))
        echo "info: after write f_$N, $LD lists the leader as '$l'"
    fi
}
write
ip -n "$NS-$F" link set eth0 down
CUT=$(date +%s.%N)
unreach() { write; [ "$(mstatus "$L" "mgr-$F")" = unreachable ]; }
check "the leader lists mgr-$F as Unreachable" wait_for 30 unreach
echo "info: partition -> follower seen Unreachable: $(since "$CUT") s"
for _ in $(seq 30); do write; sleep 0.1; done # several election timeouts on mgr-$F's side
ip -n "$NS-$F" link set eth0 up
HEAL=$(date +%s.%N)
healed() { write; all_healthy "$L"; }
check "healed: the leader lists all 3 Reachable again" wait_for 60 healed
echo "info: heal -> follower seen Reachable: $(since "$HEAL") s"
for _ in $(seq 40); do write; sleep 0.1; done # and some seconds more
echo "info: $N writes through $LD while mgr-$F was cut off and healed: $WFAIL failed, $LCHANGE times $LD named another leader or none"
check "writes through the leader never failed ($WFAIL of $N failed)" bash -c "[ $WFAIL = 0 ]"
check "$LD stayed the leader throughout ($LCHANGE samples said otherwise)" bash -c "[ $LCHANGE = 0 ]"
check "…and all three name it" wait_for 10 eval '[ "$(leader_of 1)" = "$LD" ] && [ "$(leader_of 2)" = "$LD" ] && [ "$(leader_of 3)" = "$LD" ]'
check "the healed follower relays reads of every acknowledged write" \
    wait_for 15 all_there "$F" "${ACKED[@]}"

# every acknowledged write is in each once-partitioned manager's own store: all stop, then
# each of them alone (--force-new-cluster) serves everything acknowledged
for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
PIDS=()
for i in $(printf '%s\n' "$(idx_of "$OLD")" "$F" | sort -u); do
    start_in "$NS-$i" "m$i-alone" init --force-new-cluster --state-dir "$T/m$i" --log-level debug
    if wait_ready "$(sock "$i")" "$LAST_PID"; then
        check "mgr-$i alone holds every acknowledged write" \
            wait_for 15 all_there "$i" s_1 s_2 s_3 p_1 p_2 after_heal "${ACKED[@]}"
        check "…and not the refused one" bash -c "! '$SWARMCTL' -H unix://$(sock "$i") secret inspect cut_off >/dev/null 2>&1"
    else
        fail "mgr-$i does not restart alone (--force-new-cluster)"
    fi
    kill -TERM "$LAST_PID"
    wait "$LAST_PID" 2>/dev/null
done

# nothing readable at rest
check "no secret value in clear in any state dir" bash -c "! grep -rqa '$SECRET' '$T/m1' '$T/m2' '$T/m3'"
finish
