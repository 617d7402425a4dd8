#!/usr/bin/env bash
# Root CA rotation on 3 managers + 3 workers with a service running: swarmctl ca --rotate
# makes a new root cross-signed by the old one, every node renews into it, then the new root
# alone is trusted, both join tokens change, and no task restarts. A node down during the
# rotation holds it until it is removed (then it joins again with a new token), or until
# the operator allows it to rejoin (then it comes back with its node ID: swarmd join
# --rejoin; a manager is demoted first and promoted again); a rotation started again while
# one runs replaces it (the last one wins).
. "$(dirname "$0")/lib.sh"

node_ready() { ctlm 1 node ls 2>/dev/null | grep -q "$1 *Ready"; }
rotating() { ctlm 1 ca --format json 2>/dev/null | grep -q '"rotation"'; }
progress() { ctlm 1 ca --format json 2>/dev/null | python3 -c 'import json,sys; r=json.load(sys.stdin).get("rotation"); print("%d/%d" % (r["nodes_done"], r["nodes_total"]) if r else "-")'; }
progress_is() { [ "$(progress)" = "$1" ]; }
not_rotating() { ! rotating; }

start_swarmd m1 init --state-dir "$T/m1" --listen-addr 127.0.0.1:0 --hostname rc-m1 \
    --dispatcher-heartbeat 1s
PIDS_M[1]=$LAST_PID
wait_ready "$(sock 1)" "${PIDS_M[1]}" || { fail "init not ready"; finish; }
ADDR1=$(listen_addr "$T/m1.log")
MT=$(ctlm 1 join-token -q manager)
WT0=$(ctlm 1 join-token -q worker)
for i in 2 3; do
    start_swarmd "m$i" join --state-dir "$T/m$i" --listen-addr 127.0.0.1:0 --hostname "rc-m$i" \
        "$MT" "$ADDR1"
    PIDS_M[$i]=$LAST_PID
    check "manager $i joins" wait_ready "$(sock "$i")" "${PIDS_M[$i]}"
done
for w in w0 w1 w2; do
    start_swarmd "$w" join --state-dir "$T/$w" --hostname "rc-$w" "$WT0" "$ADDR1"
    PIDS_W[${w#w}]=$LAST_PID
done
check "three workers Ready" until_ok 20 bash -c "node_ready() { '$SWARMCTL' -H unix://$(sock 1) node ls | grep -q \"\$1 *Ready\"; }; node_ready rc-w0 && node_ready rc-w1 && node_ready rc-w2"
check "3 managers" until_ok 20 managers_ready 1 3
check "a service with 6 tasks" bash -c "'$SWARMCTL' -H unix://$(sock 1) service create --name web --replicas 6 -- /bin/sleep 36$$ >/dev/null"
check "…running" until_ok 20 bash -c "'$SWARMCTL' -H unix://$(sock 1) service ls | grep -q '6/6'"
TASKS0=$(ctlm 1 service ps -q web | sort | tr '\n' ' ')
OLDROOT=$(ctlm 1 ca)
printf '%s\n' "$OLDROOT" >"$T/old-root.pem"

OUT=$(timeout 90 "$SWARMCTL" -H "unix://$(sock 2)" ca --rotate 2>"$T/rotate.err"); RC=$?
check "ca --rotate (through a follower) completes (exit 0)" bash -c "[ $RC = 0 ]"
cat "$T/rotate.err"
check "…reporting progress" grep -q "of 6 nodes hold a certificate of the new root" "$T/rotate.err"
printf '%s\n' "$OUT" >"$T/new-root.pem"
check "…and printing the new root" bash -c "grep -q 'BEGIN CERTIFICATE' '$T/new-root.pem' && ! diff -q '$T/new-root.pem' '$T/old-root.pem' >/dev/null"
check "swarmctl ca shows the new root" bash -c "diff <('$SWARMCTL' -H unix://$(sock 3) ca) '$T/new-root.pem' >/dev/null"
for d in m1 m2 m3 w0 w1 w2; do
    check "$d trusts the new root alone" until_ok 10 bash -c "[ \$(grep -c BEGIN '$T/$d/certificates/swarm-root-ca.crt') = 1 ] && diff -q '$T/$d/certificates/swarm-root-ca.crt' '$T/new-root.pem' >/dev/null"
    check "…its certificate chains to the new root" openssl verify -CAfile "$T/new-root.pem" "$T/$d/certificates/swarm-node.crt"
    check "…and not to the old one" bash -c "! openssl verify -CAfile '$T/old-root.pem' -partial_chain '$T/$d/certificates/swarm-node.crt' >/dev/null 2>&1"
done
check "no task restarted" bash -c "[ \"\$('$SWARMCTL' -H unix://$(sock 1) service ps -q web | sort | tr '\n' ' ')\" = '$TASKS0' ]"
check "every node Ready after the rotation" until_ok 20 bash -c "[ \"\$('$SWARMCTL' -H unix://$(sock 1) node ls | grep -c ' Ready ')\" = 6 ]"
check "writes go on through a follower" bash -c "printf x | '$SWARMCTL' -H unix://$(sock 3) secret create after_rotation - >/dev/null"
WT1=$(ctlm 1 join-token -q worker)
check "the worker token changed (digest part)" bash -c "[ '${WT0:9:50}' != '${WT1:9:50}' ]"
OUT=$("$SWARMD" join --state-dir "$T/w3old" "$WT0" "$ADDR1" 2>&1); RC=$?
check "the old token is refused (exit 1)" bash -c "[ $RC = 1 ]"
check "…saying the CA digest does not match" has "$OUT" "digest"
start_swarmd w3 join --state-dir "$T/w3" --hostname rc-w3 "$WT1" "$ADDR1"
W3PID=$LAST_PID
check "a worker joins with the new token" until_ok 20 node_ready rc-w3

# a node down during the rotation holds it; started again meanwhile, the last root wins
stop_swarmd "${PIDS_W[2]}" 2>/dev/null
check "rc-w2 down" until_ok 20 bash -c "'$SWARMCTL' -H unix://$(sock 1) node ls | grep -q 'rc-w2 *Down'"
check "ca --rotate -d returns at once" ctlm 1 ca --rotate -d
check "…the rotation waits for the down node (6 of 7 moved)" until_ok 20 progress_is 6/7
D1=$(ctlm 1 ca -q 2>/dev/null)
check "ca --rotate again while it runs" ctlm 1 ca --rotate -d
check "…a newer root (the last one wins)" bash -c "[ \"\$('$SWARMCTL' -H unix://$(sock 1) ca -q 2>/dev/null)\" != '$D1' ]"
check "…the live nodes move to it" until_ok 20 progress_is 6/7
check "node rm of the down node" ctlm 1 node rm rc-w2
check "…and the rotation completes" until_ok 30 not_rotating
OUT=$(timeout 20 "$SWARMD" --state-dir "$T/w2" 2>&1); RC=$?
check "the removed node cannot come back as it is (exit 1)" bash -c "[ $RC != 0 ]"
start_swarmd w2b join --state-dir "$T/w2b" --hostname rc-w2b "$(ctlm 1 join-token -q worker)" "$ADDR1"
check "…it joins again with the new token" until_ok 20 node_ready rc-w2b
# a node down during a whole rotation keeps its node ID when the operator says so
W3ID=$(ctlm 1 node ls --format json | python3 -c 'import json,sys; print([n["id"] for n in json.load(sys.stdin) if n["hostname"] == "rc-w3"][0])')
stop_swarmd "$W3PID" 2>/dev/null
check "rc-w3 down" until_ok 20 bash -c "'$SWARMCTL' -H unix://$(sock 1) node ls | grep -q 'rc-w3 *Down'"
check "node update --allow-rejoin rc-w3" ctlm 1 node update --allow-rejoin rc-w3
OUT=$(timeout 90 "$SWARMCTL" -H "unix://$(sock 1)" ca --rotate 2>&1); RC=$?
check "a rotation does not wait for a node allowed to rejoin (exit 0)" bash -c "[ $RC = 0 ]"
OUT=$(timeout 20 "$SWARMD" --state-dir "$T/w3" 2>&1); RC=$?
check "rc-w3 started as it is stops (exit 1)" bash -c "[ $RC = 1 ]"
check "…saying the root CA was rotated and how to come back" has "$OUT" "root CA was rotated.*swarmd join --rejoin"
start_swarmd w3b join --rejoin --state-dir "$T/w3" "$(ctlm 1 join-token -q worker)" "$ADDR1"
check "swarmd join --rejoin: rc-w3 is back" until_ok 20 node_ready rc-w3
check "…with its node ID" grep -q "joined its swarm again as node $W3ID" "$T/w3b.out"
check "…on the new root" bash -c "ctl_root() { '$SWARMCTL' -H unix://$(sock 1) ca; }; openssl verify -CAfile <(ctl_root) '$T/w3/certificates/swarm-node.crt' >/dev/null"
check "…trusting it alone" bash -c "[ \$(grep -c BEGIN '$T/w3/certificates/swarm-root-ca.crt') = 1 ]"
# bring your own root
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/my.key" \
    -out "$T/my.crt" -subj /CN=my-root -days 3650 \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/other.key" \
    -out /dev/null -subj /CN=x 2>/dev/null
OUT=$(ctlm 1 ca --rotate --ca-cert "$T/my.crt" --ca-key "$T/other.key" 2>&1); RC=$?
check "a root with a key that is not its own is refused (exit 1)" bash -c "[ $RC = 1 ]"
check "…saying so" has "$OUT" "matching"
OUT=$(ctlm 1 ca --rotate --ca-cert "$T/my.crt" 2>&1); RC=$?
check "--ca-cert without --ca-key is a usage error (exit 2)" bash -c "[ $RC = 2 ]"
OUT=$(timeout 90 "$SWARMCTL" -H "unix://$(sock 1)" ca --rotate --ca-cert "$T/my.crt" --ca-key "$T/my.key" 2>/dev/null); RC=$?
check "ca --rotate --ca-cert --ca-key completes" bash -c "[ $RC = 0 ]"
check "…the swarm's root is the one given" bash -c "diff <('$SWARMCTL' -H unix://$(sock 1) ca) '$T/my.crt' >/dev/null"
check "…every node moved to it" until_ok 20 bash -c "for d in m1 m2 m3 w0 w1 w3 w2b; do openssl verify -CAfile '$T/my.crt' '$T/'\$d/certificates/swarm-node.crt >/dev/null || exit 1; done"
check "…and writes go on" bash -c "printf x | '$SWARMCTL' -H unix://$(sock 2) secret create after_byo - >/dev/null"
# every node renews now, under the same root
SERIAL=$(openssl x509 -in "$T/w1/certificates/swarm-node.crt" -noout -serial)
check "ca --force-rotate" ctlm 1 ca --force-rotate
check "…a worker gets a new certificate" until_ok 20 bash -c "[ \"\$(openssl x509 -in '$T/w1/certificates/swarm-node.crt' -noout -serial)\" != '$SERIAL' ]"
check "…of the same root" openssl verify -CAfile "$T/my.crt" "$T/w1/certificates/swarm-node.crt"
OUT=$(ctlm 1 ca --force-rotate --cert-expiry 2h 2>&1); RC=$?
check "--force-rotate with an expiry is refused (exit 1)" bash -c "[ $RC = 1 ]"
check "no root CA key (old or new) is in any state dir in clear" bash -c "cd '$T' && ! grep -rqa 'BEGIN PRIVATE KEY\|BEGIN EC PRIVATE KEY' m1 m2 m3 w0 w1 w2 w3 w2b"
# a manager down during a whole rotation: demoted and allowed to rejoin, it comes back as a
# worker with its node ID and is promoted again
M3ID=$(ctlm 1 node ls --format json | python3 -c 'import json,sys; print([n["id"] for n in json.load(sys.stdin) if n["hostname"] == "rc-m3"][0])')
stop_swarmd "${PIDS_M[3]}" 2>/dev/null
check "rc-m3 down" until_ok 30 bash -c "'$SWARMCTL' -H unix://$(sock 1) node ls | grep -q 'rc-m3 *\(Down\|Unknown\)'"
check "ca --rotate -d with a manager down" ctlm 1 ca --rotate -d
check "node demote of the down manager" ctlm 1 node demote rc-m3
check "…allowed to rejoin" ctlm 1 node update --allow-rejoin rc-m3
check "…and the rotation completes" until_ok 30 not_rotating
OUT=$(timeout 30 "$SWARMD" --state-dir "$T/m3" 2>&1); RC=$?
check "rc-m3 started as it is stops (exit 1)" bash -c "[ $RC = 1 ]"
check "…saying the root CA was rotated and how to come back" has "$OUT" "root CA was rotated.*swarmd join --rejoin"
start_swarmd m3b join --rejoin --state-dir "$T/m3" "$(ctlm 1 join-token -q worker)" "$ADDR1"
check "swarmd join --rejoin: rc-m3 is back as a worker with its node ID" until_ok 20 grep -q "joined its swarm again as node $M3ID" "$T/m3b.out"
check "…Ready" until_ok 20 node_ready rc-m3
check "…its manager data is gone" bash -c "[ ! -e '$T/m3/raft' ] && [ ! -e '$T/m3/store' ]"
check "node promote rc-m3" ctlm 1 node promote rc-m3
check "…3 managers again" until_ok 30 managers_ready 1 3
check "…and writes go on through it" until_ok 20 bash -c "printf x | '$SWARMCTL' -H unix://$(sock 3) secret create after_m3 - >/dev/null"
check "…which sees 3 Ready managers" until_ok 20 managers_ready 3 3
finish
