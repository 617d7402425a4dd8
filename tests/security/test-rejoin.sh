#!/usr/bin/env bash
# Attack matrix, joining again with a node ID (swarmd join --rejoin, row 16): the ID of a
# down worker is kept only when the operator allowed it, only with a worker token, and only
# for the holder of the node's key; a connected node, a manager or a removed node cannot be
# taken over; once the node is back the permission is gone.
. "$(dirname "$0")/lib-sec.sh"

start_manager a --dispatcher-heartbeat 500ms
A=$ADDR
WT=$(ctl join-token -q worker)
MT=$(ctl join-token -q manager)
MID=$(ctl node ls -q | head -n 1)
state_of() { ctl node inspect "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["status"])'; }
is_down() { [ "$(state_of "$1")" = down ]; }
is_ready() { [ "$(state_of "$1")" = ready ]; }

start_swarmd w join --state-dir "$T/w" --hostname sec-w "$WT" "$A"
WPID=$LAST_PID
check "a worker joins" until_ok 20 grep -q "joined a swarm as a worker" "$T/w.out"
WID=$(subject "$T/w/certificates/swarm-node.crt" | sed 's/.*CN=\([a-z0-9]*\).*/\1/')
check "…and is ready" until_ok 20 is_ready "$WID"
cp "$T/w/certificates/swarm-node.crt" "$T/w.crt"

# a connected node and a manager cannot be marked
OUT=$(ctl node update --allow-rejoin "$WID" 2>&1); RC=$?
check "row 16: --allow-rejoin of a connected node is refused (exit 1)" bash -c "[ $RC = 1 ]"
check "row 16: …saying it is connected" has "$OUT" "is connected"
OUT=$(ctl node update --allow-rejoin "$MID" 2>&1); RC=$?
check "row 16: --allow-rejoin of a manager is refused (exit 1)" bash -c "[ $RC = 1 ]"
check "row 16: …saying only a worker" has "$OUT" "only a worker"

stop_swarmd "$WPID"
check "the worker is down" until_ok 20 is_down "$WID"

# not allowed yet: the node's own files are not enough
OUT=$("$SWARMD" join --rejoin --state-dir "$T/w" --timeout 5s "$WT" "$A" 2>&1); RC=$?
check "row 16: rejoin before the operator allowed it is refused (exit 1)" bash -c "[ $RC = 1 ]"
check "row 16: …naming the command that allows it" has "$OUT" "node update --allow-rejoin $WID"

check "node update --allow-rejoin of the down worker" ctl node update --allow-rejoin "$WID"
check "…node inspect says so" bash -c "'$SWARMCTL' -H unix://$SOCK node inspect --pretty '$WID' | grep -q 'Rejoin:.*allowed'"
check "node update --allow-rejoin=false withdraws it" ctl node update --allow-rejoin=false "$WID"
OUT=$("$SWARMD" join --rejoin --state-dir "$T/w" --timeout 5s "$WT" "$A" 2>&1); RC=$?
check "row 16: withdrawn, even the node's own rejoin is refused (exit 1)" bash -c "[ $RC = 1 ]"
check "row 16: …as not allowed" has "$OUT" "may not join again with its ID"
check "…allowed again" ctl node update --allow-rejoin "$WID"

# allowed: still only for the holder of the node's key, with a worker token
OUT=$("$ATTACK" join --rejoin "$WID" "$A" "$WT" "$T/x" 2>&1); RC=$?
check "row 16: the node's ID with another key is refused (exit 1)" bash -c "[ $RC = 1 ]"
check "row 16: …the request is not signed with the node's key" has "$OUT" "not signed with the node's key"
OUT=$("$SWARMD" join --rejoin --state-dir "$T/w" --timeout 5s "$MT" "$A" 2>&1); RC=$?
check "row 16: rejoin with a manager token is refused (exit 1)" bash -c "[ $RC = 1 ]"
check "row 16: …a worker token is needed" has "$OUT" "use a worker token"
OUT=$("$ATTACK" join --rejoin "$MID" "$A" "$WT" "$T/x" 2>&1); RC=$?
check "row 16: rejoin as the manager's ID is refused (exit 1)" bash -c "[ $RC = 1 ]"
check "row 16: …it is a manager" has "$OUT" "is a manager"

# the node's own key, the answer lost: the node can still run the join again
node_creds "$T/w" "$T/wc" || fail "cannot read the worker's credentials"
openssl req -new -key "$T/wc/node.key" -subj /CN=x -out "$T/wc/csr.pem" 2>/dev/null
OUT=$("$ATTACK" join --rejoin "$WID" --csr "$T/wc/csr.pem" --key "$T/wc/node.key" "$A" "$WT" "$T/lost" 2>&1)
check "row 16: the holder of the node's key gets its certificate (answer thrown away)" has "$OUT" "node=$WID role=worker"

# the node itself comes back with its ID; the permission is used up
start_swarmd w2 join --rejoin --state-dir "$T/w" "$WT" "$A"
check "row 16: after a lost answer the node joins again with its ID" until_ok 20 grep -q "joined its swarm again as node $WID" "$T/w2.out"
check "row 16: …and is ready under that ID" until_ok 20 is_ready "$WID"
check "row 16: …with a new certificate" bash -c "! cmp -s '$T/w.crt' '$T/w/certificates/swarm-node.crt'"
check "row 16: …of the same key" bash -c "[ \"\$(openssl x509 -in '$T/w.crt' -noout -pubkey)\" = \"\$(openssl x509 -in '$T/w/certificates/swarm-node.crt' -noout -pubkey)\" ]"
check "row 16: the permission is gone once it is back" bash -c "! '$SWARMCTL' -H unix://$SOCK node inspect --pretty '$WID' | grep -q 'Rejoin:'"
OUT=$("$ATTACK" join --rejoin "$WID" --csr "$T/wc/csr.pem" --key "$T/wc/node.key" "$A" "$WT" "$T/again" 2>&1); RC=$?
check "row 16: …even the node's key cannot rejoin again (exit 1)" bash -c "[ $RC = 1 ]"
check "row 16: …it is not allowed any more" has "$OUT" "may not join again with its ID"
check "row 16: one node, not two" bash -c "[ \$('$SWARMCTL' -H unix://$SOCK node ls -q | wc -l) = 2 ]"

# row 16b: a renewal whose answer is lost (made here with the node's own credentials): the
# swarm records a certificate the node never got; when the node opens its next session with
# the one it holds, that is the record again and the node is asked to renew
norm() { tr 'A-F' 'a-f' | sed 's/^serial=//; s/^0*//'; }
disk_serial() { openssl x509 -in "$T/w/certificates/swarm-node.crt" -noout -serial | norm; }
rec_serial() { ctl node inspect "$WID" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["certificate"]["serial"])' | norm; }
node_creds "$T/w" "$T/wc2" || fail "cannot read the worker's credentials"
openssl req -new -key "$T/wc2/node.key" -subj /CN=x -out "$T/wc2/csr.pem" 2>/dev/null
S1=$(disk_serial)
OUT=$("$ATTACK" call $(creds "$T/wc2") --renew-csr "$T/wc2/csr.pem" --out "$T/lost.crt" "$A" CA.RenewNodeCertificate)
check "row 16b: a renewal the node never hears of" has "$OUT" "^CA.RenewNodeCertificate status=0 "
S2=$(openssl x509 -in "$T/lost.crt" -noout -serial | norm)
check "row 16b: …is what the swarm records" bash -c "[ '$(rec_serial)' = '$S2' ] && [ '$S2' != '$S1' ]"
stop_swarmd "$LAST_PID"
start_swarmd w3 --state-dir "$T/w"
check "row 16b: the node opens a session with the certificate it holds and is asked to renew" until_ok 20 bash -c "s=\$(openssl x509 -in '$T/w/certificates/swarm-node.crt' -noout -serial | tr 'A-F' 'a-f' | sed 's/^serial=//; s/^0*//'); [ \"\$s\" != '$S1' ] && [ \"\$s\" != '$S2' ]"
check "row 16b: …and the record is the certificate it holds" until_ok 20 bash -c "[ \"\$('$SWARMCTL' -H unix://$SOCK node inspect '$WID' | python3 -c 'import json,sys; print(json.load(sys.stdin)[0][\"certificate\"][\"serial\"])' | sed 's/^0*//')\" = \"\$(openssl x509 -in '$T/w/certificates/swarm-node.crt' -noout -serial | tr 'A-F' 'a-f' | sed 's/^serial=//; s/^0*//')\" ]"
check "row 16b: …Ready" until_ok 20 is_ready "$WID"

# a removed node's ID cannot come back
stop_swarmd "$LAST_PID"
check "the worker is down again" until_ok 20 is_down "$WID"
check "node rm" ctl node rm "$WID"
OUT=$("$SWARMD" join --rejoin --state-dir "$T/w" --timeout 5s "$WT" "$A" 2>&1); RC=$?
check "row 16: a removed node cannot rejoin with its ID (exit 1)" bash -c "[ $RC = 1 ]"
check "row 16: …it is not in the swarm" has "$OUT" "not in this swarm"
check "row 16: the manager keeps serving" serving "$A" "$SOCK"
finish
