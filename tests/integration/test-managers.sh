#!/usr/bin/env bash
# Three managers on loopback: two join with the manager token and become raft voters over
# mutual TLS; every manager answers the control API (a follower relays to the leader), so a
# write through any of them is read back through any other; kill -9 of the leader elects
# another that takes over (writes go on, workers' tasks stay placed); the killed manager
# comes back as a follower with what it missed; no state dir holds a secret in the clear.
. "$(dirname "$0")/lib.sh"

leader_of() { # leader_of I: the hostname node ls through manager I calls Leader
    ctlm "$1" node ls --format json 2>/dev/null | python3 -c '
import json, sys
print(" ".join(n["hostname"] for n in json.load(sys.stdin) if n["manager_status"] == "leader"))'
}
has_secret() { ctlm "$1" secret ls -q --format json 2>/dev/null | grep -q . && ctlm "$1" secret inspect "$2" >/dev/null 2>&1; }

start_swarmd m1 init --state-dir "$T/m1" --listen-addr 127.0.0.1:0 --hostname mgr-1 \
    --dispatcher-heartbeat 1s
PIDS_M[1]=$LAST_PID
wait_ready "$(sock 1)" "${PIDS_M[1]}" || { fail "init not ready"; finish; }
ADDR1=$(listen_addr "$T/m1.log")
MT=$(ctlm 1 join-token -q manager)
WT=$(ctlm 1 join-token -q worker)
for i in 2 3; do
    start_swarmd "m$i" join --state-dir "$T/m$i" --listen-addr 127.0.0.1:0 --hostname "mgr-$i" \
        "$MT" "$ADDR1"
    PIDS_M[$i]=$LAST_PID
    check "manager $i joins and serves" wait_ready "$(sock "$i")" "${PIDS_M[$i]}"
done
check "join says it joined as a manager" grep -q "joined a swarm as a manager" "$T/m2.out"
for i in 1 2 3; do
    check "manager $i lists 3 Ready managers, one Leader" until_ok 15 managers_ready "$i" 3
done
check "mgr-1 is the leader for all" bash -c "[ '$(leader_of 2)' = mgr-1 ] && [ '$(leader_of 3)' = mgr-1 ]"
check "manager nodes carry their raft state dirs" bash -c "[ -d '$T/m2/raft' ] && [ -f '$T/m3/store/data.mdb' ]"

# writes through any manager, read back through any other
SECRET="pl41n-$RANDOM$RANDOM"
check "secret create through a follower" bash -c "printf '%s' '$SECRET' | '$SWARMCTL' -H unix://$(sock 2) secret create via_follower - >/dev/null"
check "…read back through the other follower at once" ctlm 3 secret inspect via_follower
check "secret create through the leader" bash -c "printf x | '$SWARMCTL' -H unix://$(sock 1) secret create via_leader - >/dev/null"
check "…read back through a follower at once" ctlm 2 secret inspect via_leader
check "a join token read through a follower is the leader's" bash -c "[ '$(ctlm 3 join-token -q worker)' = '$WT' ]"

# a worker that joins through a follower (its certificate comes from the leader, its
# session goes where the follower says the leader is), and a task placed through a follower
ADDR2=$(listen_addr "$T/m2.log")
start_swarmd w1 join --state-dir "$T/w1" --hostname wk-1 "$WT" "$ADDR2"
check "a worker joins through a follower and is Ready" until_ok 20 bash -c "'$SWARMCTL' -H unix://$(sock 1) node ls | grep -q 'wk-1 *Ready'"
for i in 1 2 3; do ctlm 1 node update --availability drain "mgr-$i" >/dev/null; done
check "service create through a follower" bash -c "'$SWARMCTL' -H unix://$(sock 3) service create --name web --replicas 2 --secret via_follower -- /bin/sleep 3600 >/dev/null"
web_full() { ctlm "$1" service ls --format json 2>/dev/null | grep -q '"2/2"'; }
check "2 tasks running on the worker" until_ok 20 web_full 2

# a removed node is refused by every manager, a follower too (not "try again")
mkdir -p "$T/p"
PJ=$("$PROBE" join "$ADDR1" "$WT" "$T/p" 2>&1)
PID_NODE=$(sed -n 's/.*node=\([0-9a-z]*\).*/\1/p' <<<"$PJ")
check "a probe node joins" bash -c "[ -n '$PID_NODE' ]"
check "…and is removed" until_ok 10 ctlm 1 node rm --force "$PID_NODE"
probe_removed() {
    local out
    out=$("$PROBE" call "$ADDR2" "$T/p/node.crt" "$T/p/node.key" "$T/p/ca.crt" Dispatcher.Heartbeat 2>&1)
    has "$out" "refused by this cluster"
}
check "a follower refuses the removed node's certificate outright" until_ok 10 probe_removed

# the leader dies
kill -KILL "${PIDS_M[1]}"
wait "${PIDS_M[1]}" 2>/dev/null
new_leader() { local l; l=$(leader_of 2); [ -n "$l" ] && [ "$l" != mgr-1 ]; }
check "another manager is elected leader" until_ok 15 new_leader
check "…both survivors agree" until_ok 10 bash -c "[ \"\$(leader_of 2)\" = \"\$(leader_of 3)\" ]"
check "the killed manager is Unreachable" until_ok 15 bash -c "[ \"\$('$SWARMCTL' -H unix://$(sock 2) node ls | grep mgr-1 | grep -c Unreachable)\" = 1 ]"
check "writes go on (through either survivor)" until_ok 10 bash -c "printf y | '$SWARMCTL' -H unix://$(sock 2) secret create after_failover - >/dev/null"
check "…read back" ctlm 3 secret inspect after_failover
check "the service still has its 2 tasks" until_ok 15 web_full 3
check "the worker is in session with the new leader (Ready)" until_ok 20 bash -c "'$SWARMCTL' -H unix://$(sock 3) node ls | grep -q 'wk-1 *Ready'"

# the old leader comes back as a follower with what it missed
start_swarmd m1b --state-dir "$T/m1"
PIDS_M[1]=$LAST_PID
check "the old leader restarts and serves" wait_ready "$(sock 1)" "${PIDS_M[1]}"
check "…as a follower that has what it missed" until_ok 15 ctlm 1 secret inspect after_failover
check "…and 3 Ready managers again" until_ok 20 managers_ready 1 3
check "…and Reachable again" until_ok 15 bash -c "[ \"\$('$SWARMCTL' -H unix://$(sock 1) node ls | grep mgr-1 | grep -c -E 'Reachable|Leader')\" = 1 ] && ! '$SWARMCTL' -H unix://$(sock 1) node ls | grep -q Unreachable"

# quorum lost: two of three gone, the survivor cannot write; --force-new-cluster brings it
# back alone with all its data, and a new manager can join it
for i in 1 3; do kill -KILL "${PIDS_M[$i]}"; wait "${PIDS_M[$i]}" 2>/dev/null; done
OUT=$(printf z | ctlm 2 secret create no_quorum - 2>&1); RC=$?
check "without quorum a write fails (exit 1)" bash -c "[ $RC = 1 ]"
echo "(without quorum: $OUT)"
check "…saying there is no leader or quorum" has "$OUT" "leader\|quorum"
kill -TERM "${PIDS_M[2]}"; wait "${PIDS_M[2]}" 2>/dev/null
start_swarmd m2f init --force-new-cluster --state-dir "$T/m2"
PIDS_M[2]=$LAST_PID
check "init --force-new-cluster on the survivor serves" wait_ready "$(sock 2)" "${PIDS_M[2]}"
check "…as the leader" until_ok 10 bash -c "[ \"\$('$SWARMCTL' -H unix://$(sock 2) node ls | grep mgr-2 | grep -c Leader)\" = 1 ]"
check "…with every secret it had" bash -c "'$SWARMCTL' -H unix://$(sock 2) secret inspect via_follower via_leader after_failover >/dev/null"
check "…and takes writes" bash -c "printf w | '$SWARMCTL' -H unix://$(sock 2) secret create after_recovery - >/dev/null"
ADDR2=$(listen_addr "$T/m2f.log")
MT2=$(ctlm 2 join-token -q manager)
start_swarmd m4 join --state-dir "$T/m4" --listen-addr 127.0.0.1:0 --hostname mgr-4 "$MT2" "$ADDR2"
PIDS_M[4]=$LAST_PID
check "a new manager joins the recovered cluster" wait_ready "$(sock 4)" "${PIDS_M[4]}"
check "…and reads what the survivor kept" until_ok 10 ctlm 4 secret inspect after_recovery
OUT=$("$SWARMD" init --force-new-cluster --state-dir "$T/empty" 2>&1); RC=$?
check "--force-new-cluster on a dir without a manager fails (exit 1)" bash -c "[ $RC = 1 ]"
OUT=$("$SWARMD" join --force-new-cluster "$MT2" "$ADDR2" 2>&1); RC=$?
check "--force-new-cluster with join is a usage error (exit 2)" bash -c "[ $RC = 2 ]"

# nothing readable at rest
check "the secret's value is in no state dir" bash -c "! grep -rqa '$SECRET' '$T/m1' '$T/m2' '$T/m3' '$T/m4' '$T/w1'"
check "no service name in clear in raft logs or stores" bash -c "! grep -rqa 'via_follower' '$T/m1/raft' '$T/m2/raft' '$T/m3/raft' '$T/m1/store' '$T/m2/store' '$T/m3/store'"
finish
