# Helpers shared by the security tests: sources the integration lib.sh (cleanup, swarmd
# processes on loopback) and adds a manager starter, certificate readers and the
# "daemon keeps serving" check every row ends with.
. "$(dirname "${BASH_SOURCE[0]}")/../integration/lib.sh"
: "${ATTACK:?ATTACK must point at the attack helper}"
# the helper exits on its error paths without freeing: no leak reports from it (the
# environment's ASAN_OPTIONS would override its own default)
printf '#!/bin/sh\nASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0" exec %q "$@"\n' "$ATTACK" >"$T/attack"
chmod +x "$T/attack"
ATTACK=$T/attack

# start_manager NAME [ARGS...]: swarmd init in $T/NAME; sets MPID, ADDR (IP:PORT), SOCK.
start_manager() {
    local name=$1; shift
    start_swarmd "$name" init --state-dir "$T/$name" --listen-addr 127.0.0.1:0 "$@"
    MPID=$LAST_PID
    SOCK=$T/$name/swarmd.sock
    wait_ready "$SOCK" "$MPID" || { fail "manager $name not ready"; finish; }
    ADDR=$(listen_addr "$T/$name.log")
}

# cluster_id SOCK: the cluster's id
cluster_id() {
    "$SWARMCTL" -H "unix://$1" cluster inspect --format json |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'
}

# subject CERT / sans CERT: the certificate's subject (one line), its SANs (comma-separated)
subject() { openssl x509 -in "$1" -noout -subject -nameopt RFC2253; }
sans() { openssl x509 -in "$1" -noout -ext subjectAltName 2>/dev/null | tail -n +2 | tr -d ' '; }

# serving ADDR SOCK: the manager still answers over TCP (an anonymous GetRootCA) and locally.
serving() {
    "$ATTACK" call "$1" CA.GetRootCA | grep -q '^CA.GetRootCA status=0 ' &&
        "$SWARMCTL" -H "unix://$2" node ls -q >/dev/null
}

# denied OUT METHOD: the attack output shows METHOD refused (a negative status, or the
# connection refused), never status=0.
denied() {
    local line
    line=$(grep "^$2 " <<<"$1") || return 1
    ! grep -q "status=0 " <<<"$line"
}

# node_creds STATE_DIR OUTDIR: a node's certificate, its key in clear (opened with the
# node's KEK, autolock off) and the root CA, as an attacker holding the files would use them.
node_creds() {
    mkdir -p "$2"
    local pass
    pass=$(od -An -tx1 -j4 -N32 "$1/keys/kek" | tr -d ' \n')
    openssl pkcs8 -in "$1/certificates/swarm-node.key" -passin "pass:$pass" -out "$2/node.key" &&
        cp "$1/certificates/swarm-node.crt" "$2/node.crt" &&
        cp "$1/certificates/swarm-root-ca.crt" "$2/ca.crt"
}

# creds DIR: the attack call options for the certificate in DIR
creds() { echo "--cert $1/node.crt --key $1/node.key --ca $1/ca.crt"; }

# accepted OUT METHOD: the connection was accepted (the method answered, whatever its status)
accepted() { grep -q "^$2 status=" <<<"$1"; }
# refused_conn OUT METHOD: the connection itself was refused
refused_conn() { grep -q "^$2 connect-error=" <<<"$1"; }

# status_of HOSTNAME: its manager status as manager 1 lists it (leader, reachable, …)
status_of() { ctlm 1 node ls --format json | python3 -c '
import json, sys
print([n["manager_status"] for n in json.load(sys.stdin) if n["hostname"] == sys.argv[1]][0])' "$1"; }

# start_three: managers m1 (leader), m2, m3 (followers) in $T/mI; sets P[i], AD[i], SOCK (m1),
# MT and WT (the join tokens).
start_three() {
    start_swarmd m1 init --state-dir "$T/m1" --listen-addr 127.0.0.1:0 --hostname mgr-1 --dispatcher-heartbeat 500ms
    P[1]=$LAST_PID
    wait_ready "$(sock 1)" "${P[1]}" || { fail "init not ready"; finish; }
    AD[1]=$(listen_addr "$T/m1.log")
    SOCK=$(sock 1)
    MT=$(ctlm 1 join-token -q manager)
    WT=$(ctlm 1 join-token -q worker)
    for i in 2 3; do
        start_swarmd "m$i" join --state-dir "$T/m$i" --listen-addr 127.0.0.1:0 --hostname "mgr-$i" "$MT" "${AD[1]}"
        P[$i]=$LAST_PID
        wait_ready "$(sock "$i")" "${P[$i]}" || { fail "manager $i not ready"; finish; }
        AD[$i]=$(listen_addr "$T/m$i.log")
    done
    check "3 Ready managers, one leader" until_ok 30 managers_ready 1 3
    check "mgr-1 is the leader" bash -c "[ '$(status_of mgr-1)' = leader ]"
    check "mgr-2 and mgr-3 are followers" bash -c "[ '$(status_of mgr-2)' != leader ] && [ '$(status_of mgr-3)' != leader ]"
}

# held ATTACK_ARGS... : an attack call in the background that pauses after its first call
# on a held connection; sets HELD_PID, output in $T/held-$HELD_N.out
HELD_N=0
held() {
    HELD_N=$((HELD_N + 1))
    "$ATTACK" call "$@" >"$T/held-$HELD_N.out" 2>&1 &
    HELD_PID=$!
    PIDS+=("$HELD_PID")
    until_ok 20 grep -q '^paused$' "$T/held-$HELD_N.out" || fail "held connection $HELD_N did not open"
}
# after_pause N: what the held connection N answered after its pause (once it has ended:
# wait for its pid first, in this shell)
after_pause() { sed "s/^/held-$1: /" "$T/held-$1.out" >&2; sed "1,/^paused$/d" "$T/held-$1.out"; }
