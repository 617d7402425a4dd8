#!/usr/bin/env bash
# node promote / demote: a worker renews into a manager certificate, joins raft and serves
# as a manager (same node ID); a demoted manager leaves raft first, loses its data key,
# raft log and store, and goes on as a worker; the leader hands leadership over before it
# is demoted; the last manager, and a demotion that would lose quorum, are refused.
. "$(dirname "$0")/lib.sh"

sock() { echo "$T/$1/swarmd.sock"; }
ctlm() { local n=$1; shift; "$SWARMCTL" -H "unix://$(sock "$n")" "$@"; }
until_ok() { local s=$1; shift; for _ in $(seq $((s * 10))); do "$@" && return 0; sleep 0.1; done; return 1; }
mstatus() { # mstatus VIA HOST: manager status of HOST as node ls through VIA shows it
    ctlm "$1" node ls --format json 2>/dev/null | python3 -c '
import json, sys
print([n["manager_status"] or "-" for n in json.load(sys.stdin) if n["hostname"] == sys.argv[1]][0])' "$2"
}
is_status() { [ "$(mstatus "$1" "$2")" = "$3" ]; }
is_manager() { local s; s=$(mstatus "$1" "$2"); [ "$s" = reachable ] || [ "$s" = leader ]; }

start_swarmd m1 init --state-dir "$T/m1" --listen-addr 127.0.0.1:0 --hostname pm-1
P[1]=$LAST_PID
wait_ready "$(sock m1)" "${P[1]}" || { fail "init not ready"; finish; }
ADDR=$(listen_addr "$T/m1.log")
WT=$(ctlm m1 join-token -q worker)
for w in w1 w2; do
    start_swarmd "$w" join --state-dir "$T/$w" --listen-addr 127.0.0.1:0 --hostname "pm-$w" "$WT" "$ADDR"
done
PW1=$(pgrep -f "state-dir $T/w1" | head -n 1)
check "two workers Ready" until_ok 15 bash -c "[ \"\$('$SWARMCTL' -H unix://$(sock m1) node ls | grep -c 'pm-w. *Ready')\" = 2 ]"
printf 'x' | ctlm m1 secret create before_promotion - >/dev/null
W1ID=$(sed -n 's/^node_id=//p' "$T/w1/node.conf")

check "node promote pm-w1" ctlm m1 node promote pm-w1
check "…it becomes a reachable manager" until_ok 20 is_status m1 pm-w1 reachable
check "…same node ID, node.conf says manager" bash -c "grep -q '^node_id=$W1ID$' '$T/w1/node.conf' && grep -q '^role=manager$' '$T/w1/node.conf'"
check "…its certificate says manager" bash -c "openssl x509 -in '$T/w1/certificates/swarm-node.crt' -noout -subject | grep -q 'OU *= *swarm-manager'"
check "…it serves the control API, with what was there before" until_ok 10 ctlm w1 secret inspect before_promotion
check "node update --role manager pm-w2" ctlm m1 node update --role manager pm-w2
check "…three managers" until_ok 20 is_status m1 pm-w2 reachable

# a demotion that would lose quorum: pm-w1 down, then pm-w2 may not go
PW1=$(pgrep -f "swarmd.*--state-dir $T/w1" | head -n 1)
kill -KILL "$PW1"
check "pm-w1 down is Unreachable" until_ok 15 is_status m1 pm-w1 unreachable
OUT=$(ctlm m1 node demote pm-w2 2>&1); RC=$?
check "demoting pm-w2 now would lose quorum: refused (exit 1)" bash -c "[ $RC = 1 ]"
check "…saying so" has "$OUT" "quorum"
start_swarmd w1b --state-dir "$T/w1"
check "pm-w1 back" until_ok 20 is_status m1 pm-w1 reachable

OUT=$(ctlm m1 node rm --force pm-w1 2>&1); RC=$?
check "a manager cannot be removed (exit 1)" bash -c "[ $RC = 1 ]"
check "…demote it first, says the error" has "$OUT" "demote it first"
check "node demote pm-w1" ctlm m1 node demote pm-w1
echo "(pm-w1 status: $(mstatus m1 pm-w1))"
check "…it is no manager any more" until_ok 10 is_status m1 pm-w1 -
check "…node.conf says worker" until_ok 10 grep -q '^role=worker$' "$T/w1/node.conf"
check "…its raft log, store and data key are gone" until_ok 10 bash -c "[ ! -e '$T/w1/raft' ] && [ ! -e '$T/w1/store' ] && [ ! -e '$T/w1/keys/dek' ]"
check "…it is Ready as a worker" until_ok 20 bash -c "'$SWARMCTL' -H unix://$(sock m1) node ls | grep -q 'pm-w1 *Ready *Active *127'"
check "…with a worker certificate" until_ok 10 bash -c "openssl x509 -in '$T/w1/certificates/swarm-node.crt' -noout -subject | grep -q 'OU *= *swarm-worker'"

check "the demoted node can be removed (--force: it is up)" ctlm m1 node rm --force pm-w1

# the leader hands leadership over, then the new leader demotes it: one call
check "node demote pm-1, the leader, through itself" ctlm m1 node demote pm-1
check "…pm-w2 leads" until_ok 15 is_status w2 pm-w2 leader
check "…pm-1 is no manager" until_ok 10 is_status w2 pm-1 -
OUT=$(ctlm w2 node demote pm-w2 2>&1); RC=$?
check "the last manager cannot be demoted (exit 1)" bash -c "[ $RC = 1 ]"
check "…saying so" has "$OUT" "last manager"
OUT=$(ctlm w2 node update --role boss pm-w2 2>&1); RC=$?
check "a bad --role is a usage error (exit 2)" bash -c "[ $RC = 2 ]"
finish
