# Helpers shared by the security tests: sources the integration lib.sh (cleanup, swarmd
# processes on loopback) and adds a manager starter, certificate readers and the
# "daemon keeps serving" check every row ends with.
. "$(dirname "${BASH_SOURCE[0]}")/../integration/lib.sh"
: "${ATTACK:?ATTACK must point at the attack helper}"
# the helper exits on its error paths without freeing: no leak reports from it (the
# environment's ASAN_OPTIONS would override its own default)
printf '#!/bin/sh\nASAN_OPTIONS=detect_leaks=0:abort_on_error=1 exec %q "$@"\n' "$ATTACK" >"$T/attack"
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
