#!/usr/bin/env bash
# Expiry and clock skew (issue 6): a node whose certificate expired while it was down gets a
# clear line and a way back that keeps the cluster — a worker re-joins with a token (keeping
# its node ID when the operator allows it: node update --allow-rejoin, join --rejoin), a
# manager starts with --force-new-cluster and re-issues its own certificate from the CA key
# it holds; a node whose clock is off by more than the 1 h backdate is told so at join.
. "$(dirname "$0")/lib-sec.sh"
: "${FAKECLOCK:?FAKECLOCK must point at the fakeclock shim}"
clock() { CLOCK=(env SECTEST_CLOCK_OFFSET="$1" LD_PRELOAD="$FAKECLOCK" ASAN_OPTIONS="${ASAN_OPTIONS:-}:verify_asan_link_order=0"); }
PAST=$((-2 * 24 * 3600))

# a manager and a worker that lived two days ago, with 1 h certificates
SOCK=$T/m/swarmd.sock
clock "$PAST"
"${CLOCK[@]}" "$SWARMD" init --state-dir "$T/m" --listen-addr 127.0.0.1:0 --cert-expiry 1h \
    >"$T/m.out" 2>"$T/m.log" &
MPID=$!; PIDS+=("$MPID")
wait_ready "$SOCK" "$MPID" || { fail "manager (in the past) not ready"; finish; }
A=$(listen_addr "$T/m.log")
WT=$(ctl join-token -q worker)
"${CLOCK[@]}" "$SWARMD" join --state-dir "$T/w" --hostname exp-w "$WT" "$A" >"$T/w.out" 2>"$T/w.log" &
WPID=$!; PIDS+=("$WPID")
until_ok 20 bash -c "'$SWARMCTL' -H unix://$SOCK node ls | grep -q 'exp-w *Ready'" || fail "worker (in the past) not Ready"
stop_swarmd "$WPID"
stop_swarmd "$MPID"
NA=$(date -d "$(openssl x509 -in "$T/m/certificates/swarm-node.crt" -noout -enddate | cut -d= -f2)" +%s)
check "the manager's own certificate has expired (real clock)" bash -c "[ $NA -lt $(date +%s) ]"

# the worker on the real clock: a clear line and the way back, exit 1
OUT=$(timeout 20 "$SWARMD" --state-dir "$T/w" 2>&1); RC=$?
check "an expired worker stops (exit 1)" bash -c "[ $RC = 1 ]"
echo "(worker: $OUT)"
check "…saying its certificate expired and how to join again, keeping its ID or not" has "$OUT" "certificate expired on .*--allow-rejoin.*swarmd join --rejoin.*join as a new node"

# the manager on the real clock: refused by others, so it says how to come back
OUT=$(timeout 20 "$SWARMD" --state-dir "$T/m" 2>&1); RC=$?
check "an expired manager does not start as is (exit 1)" bash -c "[ $RC = 1 ]"
echo "(manager: $OUT)"
check "…naming --force-new-cluster" has "$OUT" "expired on .*--force-new-cluster"
start_swarmd m2 init --force-new-cluster --state-dir "$T/m"
MPID=$LAST_PID
check "init --force-new-cluster brings it back" wait_ready "$SOCK" "$MPID"
check "…with a certificate it re-issued from its CA" grep -q "re-issued its own from the cluster's CA" "$T/m2.log"
NA=$(date -d "$(openssl x509 -in "$T/m/certificates/swarm-node.crt" -noout -enddate | cut -d= -f2)" +%s)
check "…valid now" bash -c "[ $NA -gt $(date +%s) ]"
check "…chained to the same root" bash -c "openssl verify -CAfile '$T/m/certificates/swarm-root-ca.crt' '$T/m/certificates/swarm-node.crt' >/dev/null"
A=$(listen_addr "$T/m2.log")
check "…and serving over TCP" serving "$A" "$SOCK"
ctl cluster update --cert-expiry 2160h >/dev/null
WT=$(ctl join-token -q worker)
start_swarmd w2 join --state-dir "$T/w2" --hostname exp-w2 "$WT" "$A"
check "a worker joins it again" until_ok 20 bash -c "'$SWARMCTL' -H unix://$SOCK node ls | grep -q 'exp-w2 *Ready'"
WID=$(subject "$T/w/certificates/swarm-node.crt" | sed 's/.*CN=\([a-z0-9]*\).*/\1/')
check "the expired worker is listed down" until_ok 40 bash -c "'$SWARMCTL' -H unix://$SOCK node ls | grep -q 'exp-w *Down'"
check "the expired worker is allowed to rejoin with its ID" ctl node update --allow-rejoin exp-w
start_swarmd w3 join --rejoin --state-dir "$T/w" "$WT" "$A"
check "…swarmd join --rejoin brings it back as node $WID" until_ok 20 grep -q "joined its swarm again as node $WID" "$T/w3.out"
check "…Ready" until_ok 20 bash -c "'$SWARMCTL' -H unix://$SOCK node ls | grep -q '^$WID *exp-w *Ready'"

# clock skew at join: told plainly, before any certificate is asked for
for off in $((3 * 3600)) $((-3 * 3600)); do
    clock "$off"
    OUT=$("${CLOCK[@]}" "$SWARMD" join --state-dir "$T/skew$off" "$WT" "$A" 2>&1); RC=$?
    check "a joiner ${off}s off: refused (exit 1)" bash -c "[ $RC = 1 ]"
    check "…saying clock skew, and by how much" has "$OUT" "clock skew detected: this machine's clock is 3h"
done
echo "(skew: $OUT)"
check "no node was added by the skewed joins" bash -c "[ \$('$SWARMCTL' -H unix://$SOCK node ls -q | wc -l) = 3 ]"
check "the manager keeps serving" serving "$A" "$SOCK"
finish
