#!/usr/bin/env bash
# Workers join over mutual TLS: good, rotated, foreign and malformed tokens; Ready while
# heartbeating; Down after a SIGKILL; Ready again when resumed; back after a manager
# restart; nothing secret in any state dir.
. "$(dirname "$0")/lib.sh"

SD=$T/m
SOCK=$SD/swarmd.sock
start_swarmd m init --state-dir "$SD" --listen-addr 127.0.0.1:0 --dispatcher-heartbeat 200ms
MPID=$LAST_PID
wait_ready "$SOCK" "$MPID" || { cat "$T/m.log"; fail "init not ready"; finish; }
ADDR=$(listen_addr "$T/m.log")
WT=$(ctl join-token -q worker)

# node_state HOSTNAME: the STATUS column of node ls for that hostname
node_state() { ctl node ls --format json | python3 -c '
import json, sys
for n in json.load(sys.stdin):
    if n["hostname"] == sys.argv[1]:
        print(n["status"]); break' "$1"; }
wait_state() { # wait_state HOSTNAME STATE SECONDS
    for _ in $(seq $(( $3 * 20 ))); do
        [ "$(node_state "$1")" = "$2" ] && return 0
        sleep 0.05
    done
    return 1
}

start_swarmd w1 join --state-dir "$T/w1" --hostname it-w1 "$WT" "$ADDR"
W1=$LAST_PID
start_swarmd w2 join --state-dir "$T/w2" --hostname it-w2 "$WT" "$ADDR"
W2=$LAST_PID
check "worker 1 is Ready" wait_state it-w1 ready 10
check "worker 2 is Ready" wait_state it-w2 ready 10
check "join says which node joined" grep -q "joined a swarm as a worker (node [0-9a-z]\{25\})" "$T/w1.out"
check "workers are listed as workers" bash -c "'$SWARMCTL' -H unix://$SOCK node ls --format json | python3 -c 'import json,sys; ns=json.load(sys.stdin); assert sorted(n[\"role\"] for n in ns) == [\"manager\", \"worker\", \"worker\"], ns'"
check "worker state dir: node.conf says worker" grep -q "^role=worker$" "$T/w1/node.conf"
check "worker key is encrypted and 0600" bash -c "grep -q 'ENCRYPTED PRIVATE KEY' '$T/w1/certificates/swarm-node.key' && [ \"\$(stat -c %a '$T/w1/certificates/swarm-node.key')\" = 600 ]"
check "worker certificate: OU swarm-worker, chains to the root" bash -c "openssl x509 -in '$T/w1/certificates/swarm-node.crt' -noout -subject | grep -q 'OU *= *swarm-worker' && openssl verify -CAfile '$T/w1/certificates/swarm-root-ca.crt' '$T/w1/certificates/swarm-node.crt' >/dev/null"

OUT=$("$SWARMD" join --state-dir "$T/w1" "$WT" "$ADDR" 2>&1); RC=$?
check "join into a joined state dir is refused (exit 1)" bash -c "[ $RC = 1 ]"
check "…and says how to resume" has "$OUT" "swarmd --state-dir"

ctl join-token --rotate worker >/dev/null
OUT=$("$SWARMD" join --state-dir "$T/w3" "$WT" "$ADDR" 2>&1); RC=$?
check "a rotated token is refused (exit 1)" bash -c "[ $RC = 1 ]"
check "…saying it was rotated" has "$OUT" "rotated"
check "…and leaves no node behind" bash -c "[ ! -e '$T/w3/node.conf' ]"
OTHER="SWMTKN-1-$(printf '0%.0s' $(seq 50))-${WT##*-}"
OUT=$("$SWARMD" join --state-dir "$T/w4" "$OTHER" "$ADDR" 2>&1); RC=$?
check "a token of another swarm is refused (exit 1)" bash -c "[ $RC = 1 ]"
check "…by the CA digest" has "$OUT" "CA digest does not match"
OUT=$("$SWARMD" join --state-dir "$T/w5" "SWMTKN-1-nonsense" "$ADDR" 2>&1); RC=$?
check "a malformed token is refused (exit 1)" bash -c "[ $RC = 1 ]"
check "…with the parser's reason" has "$OUT" "token"
OUT=$("$SWARMD" join "$WT" 2>&1); RC=$?
check "join without a manager address is a usage error (exit 2)" bash -c "[ $RC = 2 ]"
# a manager nobody listens at: retries with backoff until --timeout, then says so
DEAD=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
OUT=$("$SWARMD" join --state-dir "$T/w5" --timeout 1s "$WT" "127.0.0.1:$DEAD" 2>&1); RC=$?
check "an unreachable manager fails the join (exit 1)" bash -c "[ $RC = 1 ]"
check "…saying it cannot reach it, after retries" has "$OUT" "cannot reach the manager at 127.0.0.1:$DEAD.*tried [0-9]* times"
check "…and leaves no node behind" bash -c "[ ! -e '$T/w5/node.conf' ]"
OUT=$("$SWARMD" join --timeout soon "$WT" 127.0.0.1 2>&1); RC=$?
check "a bad --timeout is a usage error (exit 2)" bash -c "[ $RC = 2 ]"
OUT=$("$SWARMD" join --rejoin --hostname x --state-dir "$T/w1" "$WT" 127.0.0.1 2>&1); RC=$?
check "--rejoin with --hostname is a usage error (exit 2)" bash -c "[ $RC = 2 ]"
check "…saying it keeps the node's hostname" has "$OUT" "keeps the node's addresses and hostname"
OUT=$("$SWARMD" --rejoin --state-dir "$T/w1" 2>&1); RC=$?
check "--rejoin without join is a usage error (exit 2)" bash -c "[ $RC = 2 ]"
OUT=$("$SWARMD" join --rejoin --state-dir "$T/nothing" --timeout 2s "$WT" 127.0.0.1 2>&1); RC=$?
check "--rejoin of a state dir without a node fails (exit 1)" bash -c "[ $RC = 1 ]"
check "…saying there is no node to join again as" has "$OUT" "holds no node to join again as"
WT2=$(ctl join-token -q worker)
check "old workers are unaffected by the rotation" wait_state it-w1 ready 2

kill -9 "$W1"; wait "$W1" 2>/dev/null
check "a killed worker is Down within 3 heartbeats (+ slack)" wait_state it-w1 down 5
check "the other worker stays Ready" wait_state it-w2 ready 1
start_swarmd w1b --state-dir "$T/w1"
W1=$LAST_PID
check "the worker resumes without rejoining and is Ready again" wait_state it-w1 ready 10
check "resume kept the node id" bash -c "grep -q \"\$(sed -n 's/^node_id=//p' '$T/w1/node.conf')\" <<<\"\$('$SWARMCTL' -H unix://$SOCK node ls -q)\""

stop_swarmd "$MPID"
start_swarmd m2 --state-dir "$SD"
MPID=$LAST_PID
wait_ready "$SOCK" "$MPID" || { cat "$T/m2.log"; fail "manager restart not ready"; finish; }
check "after a manager restart, worker 1 is Ready again" wait_state it-w1 ready 15
check "after a manager restart, worker 2 is Ready again" wait_state it-w2 ready 15

for secret in "${WT##*-}" "${WT2##*-}"; do
    check "token secret ${secret:0:4}… is in no state dir" bash -c "! grep -rqa '$secret' '$SD' '$T/w1' '$T/w2'"
done
check "no plaintext private key in any state dir" bash -c "! grep -rqa 'BEGIN PRIVATE KEY\|BEGIN EC PRIVATE KEY' '$SD' '$T/w1' '$T/w2'"
finish
