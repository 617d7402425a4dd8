#!/usr/bin/env bash
# Certificate renewal through real daemons: `node update --force-rotate-cert` makes a
# worker renew over its session (no token): a new key and certificate on disk (the key
# still encrypted), the cluster's current --cert-expiry, the node stays Ready and comes back
# with the new certificate after a restart. The manager node renews too and its listener
# presents the new certificate to the next connection; nodes still join it.
. "$(dirname "$0")/lib.sh"

SD=$T/m
SOCK=$SD/swarmd.sock
start_swarmd m init --state-dir "$SD" --listen-addr 127.0.0.1:0
MPID=$LAST_PID
wait_ready "$SOCK" "$MPID" || { cat "$T/m.log"; fail "init not ready"; finish; }
ADDR=$(listen_addr "$T/m.log")
WT=$(ctl join-token -q worker)
MID=$(sed -n 's/^node_id=//p' "$SD/node.conf")

node_field() { # node_field NODE state|serial|not_after
    ctl node inspect "$1" 2>/dev/null | python3 -c '
import json, sys
n = json.load(sys.stdin)[0]
f = sys.argv[1]
print(n["status"] if f == "state" else n["certificate"][f])' "$2" 2>/dev/null
}
wait_change() { # wait_change NODE FIELD OLD SECONDS: until the field differs from OLD
    for _ in $(seq $(( $4 * 20 ))); do
        local v; v=$(node_field "$1" "$2")
        [ -n "$v" ] && [ "$v" != "$3" ] && return 0
        sleep 0.05
    done
    return 1
}
wait_state() { # wait_state NODE STATE SECONDS
    for _ in $(seq $(( $3 * 20 ))); do
        [ "$(node_field "$1" state)" = "$2" ] && return 0
        sleep 0.05
    done
    return 1
}
# the serial a TLS server presents, lower-case hex without leading zeros
served_serial() {
    openssl s_client -connect "$1" </dev/null 2>/dev/null |
        openssl x509 -noout -serial 2>/dev/null | sed 's/^serial=//' | tr 'A-F' 'a-f' |
        sed 's/^0*//'
}
norm() { tr 'A-F' 'a-f' <<<"$1" | sed 's/^0*//'; }
sum_of() { sha256sum "$1" | cut -d' ' -f1; }

start_swarmd w1 join --state-dir "$T/w1" --hostname rn-w1 "$WT" "$ADDR"
W1=$LAST_PID
check "worker is Ready" wait_state rn-w1 ready 10
check "cluster update --cert-expiry 2h" ctl cluster update --cert-expiry 2h

# ---------------------------------------------------------------- a worker
OLD=$(node_field rn-w1 serial)
check "node inspect shows when renewal is due (50-80% of the validity)" bash -c "'$SWARMCTL' -H unix://$SOCK node inspect rn-w1 | python3 -c '
import json, sys, datetime as d
c = json.load(sys.stdin)[0][\"certificate\"]
t = lambda k: d.datetime.fromisoformat(c[k].replace(\"Z\", \"+00:00\"))
span = t(\"not_after\") - t(\"not_before\")
assert abs((t(\"renewal_due_from\") - t(\"not_before\")) - span / 2) < d.timedelta(seconds=2)
assert abs((t(\"renewal_due_to\") - t(\"not_before\")) - span * 8 / 10) < d.timedelta(seconds=2)
assert c[\"renewal_asked\"] is False and len(c[\"authority_key_id\"]) == 40'"
check "…and in the pretty form" bash -c "'$SWARMCTL' -H unix://$SOCK node inspect --pretty rn-w1 | grep -q 'Renewal Due:'"
CRT=$T/w1/certificates/swarm-node.crt
KEY=$T/w1/certificates/swarm-node.key
CSUM=$(sum_of "$CRT"); KSUM=$(sum_of "$KEY")
check "node update --force-rotate-cert rn-w1" ctl node update --force-rotate-cert rn-w1
check "…the node object shows a new certificate" wait_change rn-w1 serial "$OLD" 10
NEW=$(node_field rn-w1 serial)
for _ in $(seq 100); do [ "$(sum_of "$CRT")" != "$CSUM" ] && break; sleep 0.05; done
check "…the worker wrote a new certificate" bash -c "[ '$(sum_of "$CRT")' != '$CSUM' ]"
check "…and a new key" bash -c "[ '$(sum_of "$KEY")' != '$KSUM' ]"
check "…still encrypted" grep -q "ENCRYPTED PRIVATE KEY" "$KEY"
check "…no leftover .new files" bash -c "! ls '$T/w1/certificates/' | grep -q '\\.new'"
FILE_SERIAL=$(openssl x509 -in "$CRT" -noout -serial | sed 's/^serial=//')
check "…the certificate on disk is the one the manager recorded" \
    bash -c "[ '$(norm "$FILE_SERIAL")' = '$(norm "$NEW")' ]"
END=$(date -d "$(openssl x509 -in "$CRT" -noout -enddate | sed 's/^notAfter=//')" +%s)
NOW=$(date +%s)
check "…valid for the cluster's current cert expiry (2h)" \
    bash -c "[ $((END - NOW)) -gt 7000 ] && [ $((END - NOW)) -le 7300 ]"
check "…the same node ID" grep -q "CN *= *$(sed -n 's/^node_id=//p' "$T/w1/node.conf")" \
    <(openssl x509 -in "$CRT" -noout -subject)
check "…the worker logged it" grep -q "renewed this node's certificate" "$T/w1.log"
check "…and it is still Ready" wait_state rn-w1 ready 2

stop_swarmd "$W1"
start_swarmd w1b --state-dir "$T/w1"
for _ in $(seq 200); do grep -q "in session with a manager" "$T/w1b.log" && break; sleep 0.05; done
check "the restarted worker opens a session with its renewed certificate" \
    grep -q "in session with a manager" "$T/w1b.log"
check "…and is Ready" wait_state rn-w1 ready 10
check "…same certificate as before the restart" \
    bash -c "[ '$(node_field rn-w1 serial)' = '$NEW' ]"

# ---------------------------------------------------------------- the manager node
OLD=$(node_field "$MID" serial)
check "the listener presents the manager's certificate" \
    bash -c "[ '$(served_serial "$ADDR")' = '$(norm "$OLD")' ]"
check "node update --force-rotate-cert on the manager" ctl node update --force-rotate-cert "$MID"
check "…its node object shows a new certificate" wait_change "$MID" serial "$OLD" 10
NEW=$(node_field "$MID" serial)
for _ in $(seq 100); do [ "$(served_serial "$ADDR")" = "$(norm "$NEW")" ] && break; sleep 0.05; done
check "…the listener presents the new one" \
    bash -c "[ '$(served_serial "$ADDR")' = '$(norm "$NEW")' ]"
check "…the manager logged it" grep -q "renewed this node's certificate" "$T/m.log"
start_swarmd w2 join --state-dir "$T/w2" --hostname rn-w2 "$WT" "$ADDR"
check "a node still joins the renewed manager" wait_state rn-w2 ready 10

# ---------------------------------------------------------------- bad input
OUT=$(ctl node update --force-rotate-cert nosuchnode 2>&1); RC=$?
check "rotating an unknown node fails (exit 1)" bash -c "[ $RC = 1 ]"
check "…no such node" has "$OUT" "no such node"
OUT=$(ctl node update rn-w1 2>&1); RC=$?
check "node update with nothing to do is a usage error (exit 2)" bash -c "[ $RC = 2 ]"
check "…naming --force-rotate-cert" has "$OUT" "--force-rotate-cert"
finish
