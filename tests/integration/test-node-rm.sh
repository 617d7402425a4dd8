#!/usr/bin/env bash
# node rm: refused for a Ready node without --force and for the manager itself; with
# --force the node is gone, its session is closed and its certificate refused from then
# on. cluster update: a new heartbeat period reaches the nodes (a killed worker is Down
# within about three of them), a new cert expiry applies to the next certificate issued,
# bad values are usage errors.
. "$(dirname "$0")/lib.sh"

SD=$T/m
SOCK=$SD/swarmd.sock
start_swarmd m init --state-dir "$SD" --listen-addr 127.0.0.1:0 --dispatcher-heartbeat 1s
MPID=$LAST_PID
wait_ready "$SOCK" "$MPID" || { cat "$T/m.log"; fail "init not ready"; finish; }
ADDR=$(listen_addr "$T/m.log")
WT=$(ctl join-token -q worker)

node_state() { ctl node ls --format json | python3 -c '
import json, sys
for n in json.load(sys.stdin):
    if n["hostname"] == sys.argv[1]:
        print(n["status"]); break' "$1"; }
wait_state() { # wait_state HOSTNAME STATE SECONDS ("" = not listed)
    for _ in $(seq $(( $3 * 20 ))); do
        [ "$(node_state "$1")" = "$2" ] && return 0
        sleep 0.05
    done
    return 1
}
# wait_grep FILE PATTERN SECONDS
wait_grep() {
    for _ in $(seq $(( $3 * 20 ))); do
        grep -q -- "$2" "$1" && return 0
        sleep 0.05
    done
    return 1
}

# ---------------------------------------------------------------- node rm
start_swarmd w1 join --state-dir "$T/w1" --hostname rm-w1 --log-level debug "$WT" "$ADDR"
W1=$LAST_PID
check "worker is Ready" wait_state rm-w1 ready 10
W1ID=$(sed -n 's/^node_id=//p' "$T/w1/node.conf")
MID=$(sed -n 's/^node_id=//p' "$SD/node.conf")

OUT=$(ctl node rm rm-w1 2>&1); RC=$?
check "node rm of a Ready node without --force fails (exit 1)" bash -c "[ $RC = 1 ]"
check "…saying it is not down" has "$OUT" "is not down"
check "…and to use --force" has "$OUT" "use --force"
check "…and the node is still listed, Ready" wait_state rm-w1 ready 1
OUT=$(ctl node rm --force "$MID" 2>&1); RC=$?
check "node rm of the manager itself fails (exit 1)" bash -c "[ $RC = 1 ]"
check "…saying so" has "$OUT" "this manager"
OUT=$(ctl node rm nosuchnode 2>&1); RC=$?
check "node rm of an unknown node fails (exit 1)" bash -c "[ $RC = 1 ]"
check "…no such node" has "$OUT" "no such node"
OUT=$(ctl node rm 2>&1); RC=$?
check "node rm without a node is a usage error (exit 2)" bash -c "[ $RC = 2 ]"
OUT=$(ctl node rm --bogus rm-w1 2>&1); RC=$?
check "node rm with an unknown flag is a usage error (exit 2)" bash -c "[ $RC = 2 ]"

OUT=$(ctl node rm --force rm-w1 2>&1); RC=$?
check "node rm --force of a Ready node succeeds" bash -c "[ $RC = 0 ]"
check "…and prints the node" has "$OUT" "rm-w1"
check "node ls no longer lists it" bash -c "! '$SWARMCTL' -H unix://$SOCK node ls -q | grep -q '$W1ID'"
check "the worker logs that its session was closed (node removed)" \
    wait_grep "$T/w1.log" "session with .* lost: .*removed" 5
check "the worker's certificate is refused when it reconnects" \
    wait_grep "$T/w1.log" "session with .* lost: .*refused" 10
check "the removed node stays unlisted" bash -c "! '$SWARMCTL' -H unix://$SOCK node ls -q | grep -q '$W1ID'"
check "the manager logs the removal" grep -q "node $W1ID removed by force" "$T/m.log"
check "the manager keeps running" kill -0 "$MPID"
kill -TERM "$W1" 2>/dev/null; wait "$W1" 2>/dev/null

# a fresh swarmd with the removed node's state dir cannot come back either
start_swarmd w1b --state-dir "$T/w1" --log-level debug
W1B=$LAST_PID
check "a restart of the removed node is refused" wait_grep "$T/w1b.log" "refused" 10
check "…and it is not listed again" bash -c "! '$SWARMCTL' -H unix://$SOCK node ls -q | grep -q '$W1ID'"
for _ in $(seq 100); do kill -0 "$W1B" 2>/dev/null || break; sleep 0.1; done
kill -TERM "$W1B" 2>/dev/null; wait "$W1B" 2>/dev/null

# ---------------------------------------------------------------- cluster update
for bad in "--heartbeat-period 50ms" "--heartbeat-period 25h" "--heartbeat-period soon" \
           "--cert-expiry 59m" "--cert-expiry x" "" "extra-arg --cert-expiry 2h"; do
    # shellcheck disable=SC2086
    OUT=$(ctl cluster update $bad 2>&1); RC=$?
    check "cluster update $bad: usage error (exit 2)" bash -c "[ $RC = 2 ]"
done

start_swarmd w2 join --state-dir "$T/w2" --hostname rm-w2 --log-level debug "$WT" "$ADDR"
W2=$LAST_PID
check "a worker (heartbeating every 1 s) is Ready" wait_state rm-w2 ready 10
check "cluster update --heartbeat-period 300ms" ctl cluster update --heartbeat-period 300ms
check "cluster inspect shows the new heartbeat period" bash -c "'$SWARMCTL' -H unix://$SOCK cluster inspect --format json | python3 -c 'import json,sys; c=json.load(sys.stdin); assert c[\"heartbeat_period\"] == \"300ms\", c'"
# a heartbeat answer carries the new period to the worker; until then it is held to the
# period it was told (1 s), so it never goes Down on the way
DOWN=0
for _ in $(seq 40); do [ "$(node_state rm-w2)" = down ] && DOWN=1; sleep 0.05; done
check "the worker never went Down through the period change" [ $DOWN = 0 ]
kill -9 "$W2"; wait "$W2" 2>/dev/null
START=$(date +%s%N)
if wait_state rm-w2 down 5; then
    MS=$(( ($(date +%s%N) - START) / 1000000 ))
    check "a killed worker is Down within ~1 s with a 300ms period (took ${MS} ms)" [ "$MS" -lt 1600 ]
else
    fail "a killed worker never became Down"
fi

check "cluster update --cert-expiry 1h" ctl cluster update --cert-expiry 1h
start_swarmd w3 join --state-dir "$T/w3" --hostname rm-w3 "$WT" "$ADDR"
W3=$LAST_PID
check "a worker joined after the change is Ready" wait_state rm-w3 ready 10
END=$(openssl x509 -in "$T/w3/certificates/swarm-node.crt" -noout -enddate | sed 's/^notAfter=//')
LEFT=$(( $(date -d "$END" +%s) - $(date +%s) ))
check "its certificate expires in about 1 h (${LEFT} s)" bash -c "[ $LEFT -gt 3300 ] && [ $LEFT -le 3700 ]"
END=$(openssl x509 -in "$SD/certificates/swarm-node.crt" -noout -enddate | sed 's/^notAfter=//')
LEFT=$(( $(date -d "$END" +%s) - $(date +%s) ))
check "certificates issued before keep their expiry" bash -c "[ $LEFT -gt 86400 ]"

finish
