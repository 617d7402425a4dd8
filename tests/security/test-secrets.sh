#!/usr/bin/env bash
# Attack matrix, row 11: a worker receives the secrets of its own tasks only. Two attacker
# nodes hold dispatcher sessions (the attack helper prints every assignment and secret it is
# sent); a service with secret s1 is pinned to one, a service with s2 to the other. Row 11b:
# a worker reporting a status for another node's task changes nothing.
. "$(dirname "$0")/lib-sec.sh"

start_manager m --dispatcher-heartbeat 500ms
MID=$(ctl node ls -q | head -n 1)
ctl node update --availability drain "$MID" >/dev/null || fail "drain the manager"
WT=$(ctl join-token -q worker)
for p in p1 p2; do "$ATTACK" join "$ADDR" "$WT" "$T/$p" >/dev/null || fail "join $p"; done
P1=$(subject "$T/p1/node.crt" | sed 's/.*CN=\([a-z0-9]*\).*/\1/')
P2=$(subject "$T/p2/node.crt" | sed 's/.*CN=\([a-z0-9]*\).*/\1/')
S1=one-$(od -An -tx8 -N8 /dev/urandom | tr -d ' ')
S2=two-$(od -An -tx8 -N8 /dev/urandom | tr -d ' ')
printf %s "$S1" | ctl secret create s1 - >/dev/null || fail "secret s1"
printf %s "$S2" | ctl secret create s2 - >/dev/null || fail "secret s2"
session() { # session NAME OUT [ARGS...]: a held dispatcher session in the background
    local p=$1 out=$2; shift 2
    "$ATTACK" session --seconds 100 "$@" "$ADDR" "$T/$p/node.crt" "$T/$p/node.key" "$T/$p/ca.crt" >"$out" 2>&1 &
    PIDS+=("$!")
    until_ok 20 grep -q '^session id=' "$out" || fail "session $p did not open"
}
state_of() { ctl service ps "$1" --format json | python3 -c '
import json, sys
print(" ".join(t["state"] for t in json.load(sys.stdin) if t["id"] == sys.argv[1]))' "$2"; }

session p2 "$T/p2.out"
ctl service create --name b --secret s2 --constraint "node.id==$P2" -- /bin/sleep 1000 >/dev/null || fail "service b"
check "row 11: p2 receives s2, which its task uses" until_ok 20 grep -q "^secret .* name=s2 data=$S2 " "$T/p2.out"
BTASK=$(sed -n "s/^task id=\([a-z0-9]*\) node=$P2 .*/\1/p" "$T/p2.out" | head -n 1)
check "row 11: …and its task" bash -c "[ -n '$BTASK' ]"

# p1 opens its session and at once reports p2's task as failed
session p1 "$T/p1.out" --report "$BTASK:failed"
check "row 11b: the forged report is answered" until_ok 20 grep -q '^report status=' "$T/p1.out"
check "row 11b: p2's task is not failed by p1's report" bash -c "[ '$(state_of b "$BTASK")' != failed ]"
check "row 11b: …it is still as the scheduler left it" bash -c "[ '$(state_of b "$BTASK")' = assigned ]"

ctl service create --name a --secret s1 --constraint "node.id==$P1" -- /bin/sleep 1000 >/dev/null || fail "service a"
check "row 11: p1 receives s1, which its task uses" until_ok 20 grep -q "^secret .* name=s1 data=$S1 " "$T/p1.out"
# a barrier on p2's stream: a later assignment; anything sent to p2 before it has arrived
ctl service scale b=2 >/dev/null 2>&1 || ctl service update --replicas 2 b >/dev/null || fail "scale b"
check "row 11: p2 gets its second task (stream barrier)" until_ok 20 bash -c "[ \$(grep -c '^task id=.* node=$P2 ' '$T/p2.out') -ge 2 ]"
check "row 11: p2 never received s1 (not by name)" bash -c "! grep -q 'name=s1 ' '$T/p2.out'"
check "row 11: p2 never received s1's bytes" bash -c "! grep -q '$S1' '$T/p2.out'"
check "row 11: p1 never received s2's bytes" bash -c "! grep -q '$S2' '$T/p1.out'"
check "row 11: p1 never received a task of another node" bash -c "! grep '^task ' '$T/p1.out' | grep -vq 'node=$P1 '"
check "row 11: p2 never received a task of another node" bash -c "! grep '^task ' '$T/p2.out' | grep -vq 'node=$P2 '"

# a new session of p2: the full set holds its own secret only
session p2 "$T/p2b.out" --seconds 100
check "row 11: p2's new session's full set has s2" until_ok 20 grep -q "name=s2 data=$S2 " "$T/p2b.out"
check "row 11: …and not s1" bash -c "! grep -q '$S1' '$T/p2b.out'"
# the service is gone: its secret is taken back
ctl service rm a >/dev/null || fail "service rm a"
check "row 11c: p1 is told to drop s1 once no task of its needs it" until_ok 20 bash -c "grep -q '^secret id=.* action=1' '$T/p1.out'"
check "row 11: the manager keeps serving" serving "$ADDR" "$SOCK"
finish
