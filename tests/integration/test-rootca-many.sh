#!/usr/bin/env bash
# Root CA rotation across 250 simulated nodes (bench/ca-sim.c: lightweight agents in one
# process, each with its own key, certificate and mTLS session), more than two renewal
# batches: the rotation completes, every node renews onto the new root and keeps a session
# (Ready), the old root is trusted no more, and the manager never had more than 100 nodes
# asked to renew and not moved at once (sampled from the store by the simulator: a sample can
# miss a moment, never invent one).
#   test-rootca-many.sh CA_SIM   (the simulator binary; meson passes it)
. "$(dirname "$0")/lib.sh"

CASIM=${1:?usage: test-rootca-many.sh CA_SIM}
N=250
SOCK=$T/m1/swarmd.sock

start_swarmd m1 init --state-dir "$T/m1" --listen-addr 127.0.0.1:0 --hostname rcm-m1
MPID=$LAST_PID
wait_ready "$SOCK" "$MPID" || { fail "init not ready"; finish; }
ctl ca >"$T/old-root.pem"
WT0=$(ctl join-token -q worker)

# joins N nodes, runs `swarmctl ca --rotate --detach`, checks what it can see from inside,
# reports, then holds every session open until SIGTERM
"$CASIM" -n "$N" --sock "$SOCK" --swarmctl "$SWARMCTL" --timeout 150 --hold \
    >"$T/sim.out" 2>"$T/sim.log" &
SIM=$!
PIDS+=("$SIM")
for _ in $(seq 2000); do
    grep -q "holding every session" "$T/sim.out" && break
    kill -0 "$SIM" 2>/dev/null || break
    sleep 0.1
done
cat "$T/sim.out"
check "the simulator finished its rotation and holds its sessions" \
    grep -q "holding every session" "$T/sim.out"
check "…every check it made held (new root alone, leaves of it, old leaf refused, reconnected)" \
    grep -q "every check held" "$T/sim.out"
LINE=$(grep '^ca: rotation simulated' "$T/sim.out")
field() { sed -n "s/.* $1=\([0-9]*\).*/\1/p" <<<"$LINE"; }
MAX=$(field max_asked_not_moved)
check "at most 100 nodes asked and not moved at once (most seen: ${MAX:-none})" \
    bash -c "[ -n '$MAX' ] && [ '$MAX' -le 100 ]"
check "every simulated node renewed onto the new root" has "$LINE" "renewed=$N/$N "
ASKS=$(field renew_asks)
check "every node was asked during the rotation and once more after it (${ASKS:-none} asks)" \
    bash -c "[ -n '$ASKS' ] && [ '$ASKS' -ge $((2 * N)) ]"

# the operator's view, while the nodes hold their sessions
check "swarmctl ca shows no rotation under way" bash -c "! '$SWARMCTL' -H unix://$SOCK ca --format json | grep -q '\"rotation\"'"
ctl ca >"$T/new-root.pem"
check "…and one root, a new one" bash -c "[ \$(grep -c BEGIN '$T/new-root.pem') = 1 ] && ! diff -q '$T/new-root.pem' '$T/old-root.pem' >/dev/null"
check "every node Ready (the simulated ones and the manager)" \
    until_ok 30 bash -c "[ \"\$('$SWARMCTL' -H unix://$SOCK node ls | grep -c ' Ready ')\" = $((N + 1)) ]"
SKI=$(openssl x509 -in "$T/new-root.pem" -noout -ext subjectKeyIdentifier | tail -n 1 | tr -d ' :' | tr 'A-F' 'a-f')
for h in scale-n00000 scale-n00124 scale-n00249; do
    check "$h holds a leaf of the new root" bash -c "'$SWARMCTL' -H unix://$SOCK node inspect $h | grep -q '\"authority_key_id\": *\"$SKI\"'"
done
check "the manager trusts the new root alone" until_ok 10 bash -c "diff -q '$T/m1/certificates/swarm-root-ca.crt' '$T/new-root.pem' >/dev/null"
check "…its certificate chains to the new root" openssl verify -CAfile "$T/new-root.pem" "$T/m1/certificates/swarm-node.crt"
check "…and not to the old one" bash -c "! openssl verify -CAfile '$T/old-root.pem' -partial_chain '$T/m1/certificates/swarm-node.crt' >/dev/null 2>&1"
WT1=$(ctl join-token -q worker)
check "the worker token changed (digest part)" bash -c "[ '${WT0:9:50}' != '${WT1:9:50}' ]"

kill -TERM "$SIM" 2>/dev/null
wait "$SIM"
RC=$?
check "the simulator ends cleanly (exit 0, got $RC)" bash -c "[ $RC = 0 ]"
finish
