#!/bin/bash
# swarmctl's output against a fake control socket: node ls table/-q/json, node inspect,
# join-token (with --rotate and -q), cluster inspect (never a secret), server errors.
set -u

SWARMCTL=${1:?usage: test-swarmctl-output.sh SWARMCTL FAKE-CONTROL}
FAKE=${2:?usage: test-swarmctl-output.sh SWARMCTL FAKE-CONTROL}
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# start_fake SOCKET [fail]: run the fake server and wait for its socket.
start_fake() {
    "$FAKE" "$@" 2>"$TMP/fake.err" &
    PIDS+=($!)
    local i
    for i in $(seq 100); do
        [[ -S $1 ]] && return 0
        sleep 0.05
    done
    echo "fake-control did not start: $(cat "$TMP/fake.err")" >&2
    exit 1
}

SOCK=$TMP/ctl.sock
start_fake "$SOCK"
export SWARM_HOST=unix://$SOCK

# expect NAME CODE: compare exit code and stdout with the expected text on stdin.
expect() {
    cat >"$TMP/want"
    if [[ $code -ne $2 ]]; then
        bad "$1: exit $code, want $2 (stderr: $(cat "$TMP/err"))"
    elif ! diff -u "$TMP/want" "$TMP/out" >"$TMP/diff"; then
        bad "$1: unexpected output:"
        cat "$TMP/diff" >&2
    else
        ok
    fi
}

# json_check NAME PYTHON-EXPR: the output parses as JSON and the expression (over `d`) holds.
json_check() {
    if ! command -v python3 >/dev/null; then
        echo "SKIP $1: no python3"
        return
    fi
    if python3 -c "import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if ($2) else 1)" \
        "$TMP/out"; then
        ok
    else
        bad "$1: JSON check failed: $2"
        cat "$TMP/out" >&2
    fi
}

# --- node ls
run node ls
expect "node ls" 0 <<'EOF'
ID                          HOSTNAME   STATUS         AVAILABILITY   MANAGER STATUS   ADDR
mgr1000000000000000000001   mgr-1      Ready          Active         Leader           10.0.0.1:2377
mgr2000000000000000000002   mgr-2      Disconnected   Active         Unreachable      10.0.0.2:2377
wrka000000000000000000001   wrk-"a"    Ready          Pause                           10.0.0.3:2377
wrkb000000000000000000002   wrk-b      Down           Drain                           10.0.0.4:2377
EOF

run node ls -q
expect "node ls -q" 0 <<'EOF'
mgr1000000000000000000001
mgr2000000000000000000002
wrka000000000000000000001
wrkb000000000000000000002
EOF

run node list --format table
[[ $code -eq 0 ]] && grep -q '^ID  ' "$TMP/out" && ok || bad "node list --format table"

run node ls --format json
[[ $code -eq 0 ]] && ok || bad "node ls --format json: exit $code"
json_check "node ls json" 'len(d) == 4 and d[0] == {
    "id": "mgr1000000000000000000001", "hostname": "mgr-1", "role": "manager",
    "status": "ready", "availability": "active", "manager_status": "leader",
    "addr": "10.0.0.1:2377", "created_at": "2026-01-01T00:00:00Z",
    "updated_at": "2026-01-01T00:01:30Z",
    "certificate": {"issuer": "CN=swarm-ca", "serial": "0a1b2c",
                    "not_before": "2025-12-31T23:00:00Z", "not_after": "2026-04-01T00:00:00Z"}}
    and d[1]["manager_status"] == "unreachable" and d[1]["status"] == "disconnected"
    and d[2]["hostname"] == "wrk-\"a\"" and d[2]["role"] == "worker"
    and d[2]["manager_status"] == "" and d[2]["availability"] == "pause"
    and d[3]["status"] == "down" and d[3]["availability"] == "drain"'

# --- node inspect: by id, unique prefix, hostname; unknown and ambiguous fail
run node inspect mgr1000000000000000000001 wrk-b mgr2
[[ $code -eq 0 && ! -s $TMP/err ]] && ok || bad "node inspect: exit $code: $(cat "$TMP/err")"
json_check "node inspect json" '[n["id"] for n in d] == ["mgr1000000000000000000001",
    "wrkb000000000000000000002", "mgr2000000000000000000002"]
    and d[0]["manager"] == {"raft_id": 1, "addr": "10.0.0.1:2377", "leader": True,
                            "reachability": "reachable"}
    and d[0]["resources"] == {"nano_cpus": 2000000000, "memory_bytes": 25165824000}
    and d[0]["certificate"]["pem"].startswith("-----BEGIN CERTIFICATE-----")
    and d[0]["os"] == "linux" and d[0]["labels"] == {} and "manager" not in d[1]'

run node inspect mgr-1 nosuchnode
if [[ $code -eq 1 && $(cat "$TMP/err") == "swarmctl: no such node: nosuchnode" ]]; then ok; else
    bad "node inspect unknown: exit $code: $(cat "$TMP/err")"
fi
json_check "node inspect partial" 'len(d) == 1 and d[0]["hostname"] == "mgr-1"'

run node inspect mgr
[[ $code -eq 1 && $(cat "$TMP/err") == "swarmctl: no such node: mgr" ]] && ok ||
    bad "node inspect ambiguous prefix: exit $code: $(cat "$TMP/err")"

run node inspect --pretty mgr-1
expect "node inspect --pretty" 0 <<'EOF'
ID:			mgr1000000000000000000001
Hostname:		mgr-1
Joined at:		2026-01-01T00:00:00Z
Status:
 State:			Ready
 Availability:		Active
 Address:		10.0.0.1:2377
 Role:			Manager
Manager Status:
 Address:		10.0.0.1:2377
 Raft Status:		Reachable
 Leader:		Yes
Platform:
 Operating System:	linux
 Architecture:		x86_64
Resources:
 CPUs:			2
 Memory:		23.44GiB
TLS Info:
 Issuer:		CN=swarm-ca
 Serial:		0a1b2c
 Not Before:		2025-12-31T23:00:00Z
 Not After:		2026-04-01T00:00:00Z
EOF

# --- join-token
W=SWMTKN-1-0123456789abcdefghijklmnopqrstuvwxyz0123456789abcd-workerworkerworkerworke
WR=SWMTKN-1-0123456789abcdefghijklmnopqrstuvwxyz0123456789abcd-workerrotatedrotatedrot
M=SWMTKN-1-0123456789abcdefghijklmnopqrstuvwxyz0123456789abcd-managermanagermanagerma
run join-token worker
expect "join-token worker" 0 <<EOF
To add a worker to this swarm, run the following command:

    swarmd join $W 10.0.0.1:2377

EOF
run join-token -q manager
expect "join-token -q manager" 0 <<<"$M"
run join-token --rotate worker
expect "join-token --rotate worker" 0 <<EOF
Successfully rotated worker join token.

To add a worker to this swarm, run the following command:

    swarmd join $WR 10.0.0.1:2377

EOF
run join-token worker -q
expect "join-token after rotate" 0 <<<"$WR"

# --- cluster inspect: pretty, -q, json; the fake sends secrets, swarmctl never shows them
run cluster inspect
expect "cluster inspect" 0 <<'EOF'
ID:                       clu0000000000000000000001
Name:                     default
Created:                  2026-01-01T00:00:00Z
Root CA digest:           0123456789abcdefghijklmnopqrstuvwxyz0123456789abcd
CA certificate expiry:    2045-12-27T00:00:00Z
Node certificate expiry:  2160h0m0s
Heartbeat period:         5s
Snapshot interval:        10000
Task history limit:       5
Autolock:                 false
Worker token digest:      sha256:1111111111111111111111111111111111111111111111111111111111111111
Manager token digest:     sha256:2222222222222222222222222222222222222222222222222222222222222222
EOF
run cluster inspect -q
expect "cluster inspect -q" 0 <<<"clu0000000000000000000001"
run cluster inspect --format json
json_check "cluster inspect json" 'd["id"] == "clu0000000000000000000001"
    and d["name"] == "default" and d["node_cert_expiry"] == "2160h0m0s"
    and d["heartbeat_period"] == "5s" and d["snapshot_interval"] == 10000
    and d["autolock"] is False and d["created_at"] == "2026-01-01T00:00:00Z"
    and d["ca_cert_not_after"] == "2045-12-27T00:00:00Z"
    and d["root_ca_digest"] == "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcd"
    and d["worker_token_digest"] == "sha256:" + "1" * 64
    and d["manager_token_digest"] == "sha256:" + "2" * 64'
for f in "" "--format json" "--format pretty"; do
    # shellcheck disable=SC2086
    run cluster inspect $f
    if grep -q -e SECRETCAKEMATERIAL -e workerworker -e managermanager -e rotatedrotated \
        -e 'PRIVATE KEY' "$TMP/out" "$TMP/err"; then
        bad "cluster inspect $f shows a secret"
    else
        ok
    fi
done

# --- server errors: "swarmctl: <error>" on one line, exit 1
SOCK2=$TMP/fail.sock
start_fake "$SOCK2" fail
for cmd in "node ls" "node inspect x" "join-token worker" "cluster inspect"; do
    # shellcheck disable=SC2086
    run -H "unix://$SOCK2" $cmd
    # node inspect still prints the (empty) JSON array of what it found
    [[ $cmd == "node inspect x" && $(cat "$TMP/out") == "[]" ]] && : >"$TMP/out"
    if [[ $code -eq 1 && $(cat "$TMP/err") == "swarmctl: this node is not a swarm manager" &&
        ! -s $TMP/out ]]; then
        ok
    else
        bad "$cmd against a failing server: exit $code: $(cat "$TMP/err")"
    fi
done

finish
