#!/usr/bin/env bash
# Attack matrix on 3 managers: a removed node's certificate is refused by the leader and by
# every follower (row 7), also after a follower restarts; a demoted manager's old manager
# certificate has a worker's rights only (row 13); a follower denies a worker certificate
# the control API itself, it does not forward it (row 6 on a follower).
. "$(dirname "$0")/lib-sec.sh"

start_three

# two nodes to remove: an attacker-made worker, and a real worker daemon
"$ATTACK" join "${AD[1]}" "$WT" "$T/x" >/dev/null || fail "join x"
X=$(subject "$T/x/node.crt" | sed 's/.*CN=\([a-z0-9]*\).*/\1/')
start_swarmd w join --state-dir "$T/w" --hostname sec-w "$WT" "${AD[1]}"
WPID=$LAST_PID
check "the worker daemon has joined" until_ok 20 grep -q "joined a swarm as a worker" "$T/w.out"
node_creds "$T/w" "$T/wc" || fail "cannot read the worker's credentials"
WID=$(subject "$T/wc/node.crt" | sed 's/.*CN=\([a-z0-9]*\).*/\1/')

# before: every manager accepts both certificates (followers once their replica has the nodes)
knows() { "$ATTACK" call $(creds "$1") "$2" Dispatcher.Heartbeat | grep -q '^Dispatcher.Heartbeat status='; }
for i in 1 2 3; do
    check "before: m$i accepts the attacker's worker certificate" until_ok 20 knows "$T/x" "${AD[$i]}"
    check "before: m$i accepts the real worker's certificate" until_ok 20 knows "$T/wc" "${AD[$i]}"
done

# --- row 6 on a follower: denied there, not forwarded to the leader
for i in 2 3; do
    OUT=$("$ATTACK" call $(creds "$T/x") "${AD[$i]}" Control.ListNodes Control.CreateSecret Control.GetJoinToken Raft.Join Raft.AddDataKey)
    for m in Control.ListNodes Control.CreateSecret Control.GetJoinToken Raft.Join Raft.AddDataKey; do
        check "row 6: follower m$i denies a worker certificate $m" denied "$OUT" "$m"
    done
    OUT=$("$ATTACK" call --ca "$T/x/ca.crt" "${AD[$i]}" Control.ListNodes Dispatcher.Session)
    check "row 10: follower m$i denies no certificate Control.ListNodes" denied "$OUT" Control.ListNodes
    check "row 10: follower m$i denies no certificate Dispatcher.Session" denied "$OUT" Dispatcher.Session
done

# --- row 7: remove both nodes; every manager refuses their certificates
stop_swarmd "$WPID"
ctlm 1 node rm --force "$X" >/dev/null || fail "node rm $X"
ctlm 1 node rm --force "$WID" >/dev/null || fail "node rm $WID"
for i in 1 2 3; do
    for who in x wc; do
        # a follower refuses once its replica has applied the removal (its store commits
        # every 50 ms): until then it may still accept a new handshake (see README, note 3)
        final() { OUT=$("$ATTACK" call $(creds "$T/$who") "${AD[$i]}" Dispatcher.Heartbeat Control.ListNodes CA.RenewNodeCertificate); refused_conn "$OUT" Dispatcher.Heartbeat; }
        final || echo "note: m$i still accepted removed $who right after node rm (replica lag)" >&2
        until_ok 20 final
        check "row 7: m$i refuses removed $who at the handshake (Heartbeat)" refused_conn "$OUT" Dispatcher.Heartbeat
        check "row 7: m$i refuses removed $who at the handshake (renewal)" refused_conn "$OUT" CA.RenewNodeCertificate
        check "row 7: m$i …saying the certificate is refused" has "$OUT" "refused"
    done
done
# a follower restarted from its state dir still refuses them
stop_swarmd "${P[3]}"
start_swarmd m3b --state-dir "$T/m3"
P[3]=$LAST_PID
wait_ready "$(sock 3)" "${P[3]}" || fail "m3 restart not ready"
AD[3]=$(listen_addr "$T/m3b.log")
for who in x wc; do
    OUT=$("$ATTACK" call $(creds "$T/$who") "${AD[3]}" Dispatcher.Heartbeat)
    check "row 7: restarted follower refuses removed $who" refused_conn "$OUT" Dispatcher.Heartbeat
done
check "row 7: the leader keeps serving" serving "${AD[1]}" "$(sock 1)"
check "row 7: the followers keep serving" bash -c "$(declare -f serving); ATTACK='$ATTACK' SWARMCTL='$SWARMCTL' serving '${AD[2]}' '$(sock 2)' && serving '${AD[3]}' '$(sock 3)'"
check "row 7: 3 Ready managers still" until_ok 30 managers_ready 1 3

# --- row 13: a demoted manager's old manager certificate has a worker's rights only
node_creds "$T/m3" "$T/m3c" || fail "cannot read m3's credentials"
M3=$(subject "$T/m3c/node.crt" | sed 's/.*CN=\([a-z0-9]*\).*/\1/')
check "row 13: m3's certificate is a manager's" has "$(subject "$T/m3c/node.crt")" "OU=swarm-manager"
OUT=$("$ATTACK" call $(creds "$T/m3c") "${AD[1]}" Control.ListNodes)
check "row 13: before demotion it may list nodes (control)" has "$OUT" "^Control.ListNodes status=0 "
ctlm 1 node demote "$M3" >/dev/null || fail "demote m3: $(ctlm 1 node demote "$M3" 2>&1)"
check "row 13: 2 managers after the demotion" until_ok 30 managers_ready 1 2
check "row 13: m3 renewed into a worker certificate" until_ok 30 grep -q "^role=worker" "$T/m3/node.conf"
for i in 1 2; do
    OUT=$("$ATTACK" call $(creds "$T/m3c") "${AD[$i]}" Control.ListNodes Control.GetJoinToken Raft.Join Raft.Connect Raft.AddDataKey Control.GetUnlockKey)
    for m in Control.ListNodes Control.GetJoinToken Raft.Join Raft.Connect Raft.AddDataKey Control.GetUnlockKey; do
        check "row 13: m$i denies the demoted manager's old certificate $m" denied "$OUT" "$m"
    done
done
check "row 13: the managers keep serving" serving "${AD[1]}" "$(sock 1)"
finish
