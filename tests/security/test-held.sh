#!/usr/bin/env bash
# Attack matrix, connections held open across a change (3 managers): a removed node's
# connection opened before `node rm` (row 7b), a demoted manager's connection opened before
# `node demote` (row 13b), on the leader and on a follower. Authorization is decided at the
# handshake: a change must reach the connections that already exist.
# Bugs 1 and 2 of tests/security/README.md, fixed: every call is authorized again.
. "$(dirname "$0")/lib-sec.sh"

start_three
"$ATTACK" join "${AD[1]}" "$WT" "$T/x" >/dev/null || fail "join x"
X=$(subject "$T/x/node.crt" | sed 's/.*CN=\([a-z0-9]*\).*/\1/')
knows() { "$ATTACK" call $(creds "$1") "$2" Dispatcher.Heartbeat | grep -q '^Dispatcher.Heartbeat status='; }
check "m2 knows the attacker's node" until_ok 20 knows "$T/x" "${AD[2]}"

# --- row 7b: connections of a node opened before its removal
held $(creds "$T/x") --pause "$T/go-rm" "${AD[1]}" Dispatcher.Heartbeat Dispatcher.Heartbeat CA.RenewNodeCertificate
H1=$HELD_N; H1P=$HELD_PID
held $(creds "$T/x") --pause "$T/go-rm" "${AD[2]}" Dispatcher.Heartbeat Dispatcher.Heartbeat CA.RenewNodeCertificate
H2=$HELD_N; H2P=$HELD_PID
ctlm 1 node rm --force "$X" >/dev/null || fail "node rm $X"
refused() { "$ATTACK" call $(creds "$T/x") "${AD[2]}" Dispatcher.Heartbeat | grep -q connect-error; }
check "row 7b: the follower has applied the removal (refuses new handshakes)" until_ok 20 refused
touch "$T/go-rm"
wait "$H1P"; OUT=$(after_pause "$H1")
check "row 7b: the leader closed the removed node's open connection" bash -c "! grep -q 'status=' <<<'$OUT'"
wait "$H2P"; OUT=$(after_pause "$H2")
check "row 7b: the follower closed the removed node's open connection [BUG 1]" bash -c "! grep -q 'status=' <<<'$OUT'"

# --- row 13b: connections of a manager opened before its demotion
node_creds "$T/m3" "$T/m3c" || fail "cannot read m3's credentials"
M3=$(subject "$T/m3c/node.crt" | sed 's/.*CN=\([a-z0-9]*\).*/\1/')
held $(creds "$T/m3c") --pause "$T/go-demote" "${AD[1]}" Control.ListNodes Control.ListNodes Control.GetJoinToken
H1=$HELD_N; H1P=$HELD_PID
held $(creds "$T/m3c") --pause "$T/go-demote" "${AD[2]}" Control.ListNodes Control.ListNodes Control.GetJoinToken
H2=$HELD_N; H2P=$HELD_PID
check "row 13b: the held connections had manager rights before (control)" \
    bash -c "grep -q '^Control.ListNodes status=0 ' '$T/held-$H1.out' && grep -q '^Control.ListNodes status=0 ' '$T/held-$H2.out'"
ctlm 1 node demote "$M3" >/dev/null || fail "demote m3: $(ctlm 1 node demote "$M3" 2>&1)"
check "row 13b: 2 managers after the demotion" until_ok 30 managers_ready 1 2
check "row 13b: m3 renewed into a worker certificate" until_ok 30 grep -q "^role=worker" "$T/m3/node.conf"
demoted() { "$ATTACK" call $(creds "$T/m3c") "${AD[2]}" Control.ListNodes | grep -vq 'status=0 '; }
check "row 13b: the follower denies new connections of the old certificate" until_ok 20 demoted
touch "$T/go-demote"
wait "$H1P"; OUT=$(after_pause "$H1")
check "row 13b: the leader denies the control API on a connection held across the demotion [BUG 2]" \
    bash -c "! grep -q 'status=0 ' <<<'$OUT'"
wait "$H2P"; OUT=$(after_pause "$H2")
check "row 13b: the follower denies the control API on a connection held across the demotion [BUG 2]" \
    bash -c "! grep -q 'status=0 ' <<<'$OUT'"
check "the managers keep serving" serving "${AD[1]}" "$(sock 1)"
finish
