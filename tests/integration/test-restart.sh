#!/usr/bin/env bash
# Token rotation and restart: a rotated token stops working at once; `swarmd --state-dir`
# resumes the same node, cluster, tokens and certificates.
. "$(dirname "$0")/lib.sh"
: "${PROBE:?PROBE must point at the probe binary}"

SD=$T/state
SOCK=$SD/swarmd.sock
start_swarmd m1 init --state-dir "$SD" --listen-addr 127.0.0.1:0
PID=$LAST_PID
wait_ready "$SOCK" "$PID" || { cat "$T/m1.log"; fail "init not ready"; finish; }
ADDR=$(listen_addr "$T/m1.log")

WT=$(ctl join-token -q worker)
MT_OLD=$(ctl join-token -q manager)
check "a worker token issues a worker certificate" bash -c "'$PROBE' join $ADDR $WT '$T/w1' | grep -q 'role=worker'"
check "a manager token issues a manager certificate" bash -c "'$PROBE' join $ADDR $MT_OLD | grep -q 'role=manager'"

ROT=$(ctl join-token --rotate manager)
check "rotate says so" has "$ROT" "Successfully rotated manager join token"
MT=$(ctl join-token -q manager)
check "rotation changes the secret only" bash -c "[ '${MT%-*}' = '${MT_OLD%-*}' ] && [ '$MT' != '$MT_OLD' ]"
check "the worker token is untouched by a manager rotation" bash -c "[ \"\$('$SWARMCTL' -H unix://$SOCK join-token -q worker)\" = '$WT' ]"
OUT=$("$PROBE" join "$ADDR" "$MT_OLD" 2>&1)
check "the old manager token is refused at once" has "$OUT" "invalid or has been rotated"
check "the new manager token works" bash -c "'$PROBE' join $ADDR $MT | grep -q 'role=manager'"

# the worker certificate issued above may not use the control API
OUT=$("$PROBE" call "$ADDR" "$T/w1/node.crt" "$T/w1/node.key" "$T/w1/ca.crt" Control.ListNodes 2>&1)
check "a worker certificate is denied the control API (EPERM)" has "$OUT" "^status=-1 "

# a node id -> its record, before restart
NODES_BEFORE=$(ctl node ls -q | sort)
CLUSTER=$(ctl cluster inspect -q)
SELF=$(ctl node ls --format json | python3 -c 'import json,sys; print([n["id"] for n in json.load(sys.stdin) if n["role"]=="manager" and n["manager_status"]=="leader"][0])')
CERT_SUM=$(sha256sum "$SD/certificates/swarm-node.crt" | cut -d' ' -f1)

check "SIGTERM exits 0" stop_swarmd "$PID"
start_swarmd m1b --state-dir "$SD"
PID=$LAST_PID
wait_ready "$SOCK" "$PID" || { cat "$T/m1b.log"; fail "resume not ready"; finish; }

check "resume: same cluster" bash -c "[ \"\$('$SWARMCTL' -H unix://$SOCK cluster inspect -q)\" = '$CLUSTER' ]"
check "resume: same nodes" bash -c "[ \"\$('$SWARMCTL' -H unix://$SOCK node ls -q | sort)\" = '$NODES_BEFORE' ]"
check "resume: same tokens" bash -c "[ \"\$('$SWARMCTL' -H unix://$SOCK join-token -q worker)\" = '$WT' ] && [ \"\$('$SWARMCTL' -H unix://$SOCK join-token -q manager)\" = '$MT' ]"
check "resume: same certificate" bash -c "[ \"\$(sha256sum '$SD/certificates/swarm-node.crt' | cut -d' ' -f1)\" = '$CERT_SUM' ]"
check "resume: same address (the ephemeral port is kept)" bash -c "[ '$(listen_addr "$T/m1b.log")' = '$ADDR' ]"
check "resume: this node is Ready and Leader" bash -c "'$SWARMCTL' -H unix://$SOCK node ls | grep -E '^$SELF ' | grep -q 'Ready .*Leader'"
check "resume: the rotated token still fails" bash -c "! '$PROBE' join $ADDR $MT_OLD 2>/dev/null"
check "resume: the current token works" bash -c "'$PROBE' join $ADDR $WT | grep -q role=worker"

# a second restart after more writes: raft replays on top of the store without re-applying
ctl join-token --rotate worker >/dev/null
WT2=$(ctl join-token -q worker)
stop_swarmd "$PID"
start_swarmd m1c --state-dir "$SD"
PID=$LAST_PID
wait_ready "$SOCK" "$PID" || { cat "$T/m1c.log"; fail "second resume not ready"; finish; }
check "second resume keeps the latest rotation" bash -c "[ \"\$('$SWARMCTL' -H unix://$SOCK join-token -q worker)\" = '$WT2' ]"
check "kill -9 and resume" bash -c "kill -9 $PID"
wait "$PID" 2>/dev/null
start_swarmd m1d --state-dir "$SD"
PID=$LAST_PID
wait_ready "$SOCK" "$PID" || { cat "$T/m1d.log"; fail "resume after kill -9 not ready"; finish; }
check "after kill -9: acknowledged rotation kept" bash -c "[ \"\$('$SWARMCTL' -H unix://$SOCK join-token -q worker)\" = '$WT2' ]"
finish
