#!/bin/bash
# swarmctl's output against a fake control socket: node ls table/-q/json, node inspect,
# join-token (with --rotate and -q), cluster inspect (never a secret), services (ls, ps,
# inspect, create with every task flag, update, scale, rm), secrets (ls, inspect, create
# from STDIN and from a file, the size limit, rm; the data is never shown), node update,
# server errors.
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
                    "not_before": "2025-12-31T23:00:00Z", "not_after": "2026-04-01T00:00:00Z",
                    "renewal_due_from": "2026-02-14T23:30:00Z",
                    "renewal_due_to": "2026-03-13T23:48:00Z",
                    "renewal_asked": False, "authority_key_id": ""}}
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
 Renewal Due:		between 2026-02-14T23:30:00Z and 2026-03-13T23:48:00Z
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

# --- service ls: table sorted by name, -q, json
run service ls
expect "service ls" 0 <<'EOF'
ID                          NAME      MODE         REPLICAS   COMMAND
svcagent00000000000000001   agent     global       2/2        /usr/local/bin/agent --collect cpu,memo…
svcweb0000000000000000001   web       replicated   2/3        /bin/sleep 3600
EOF
run service ls -q
expect "service ls -q" 0 <<'EOF'
svcagent00000000000000001
svcweb0000000000000000001
EOF
run service list --format json
json_check "service ls json" 'len(d) == 2 and {k: d[1][k] for k in
    ("id", "name", "mode", "replicas", "running", "desired", "command")} == {
    "id": "svcweb0000000000000000001", "name": "web", "mode": "replicated",
    "replicas": "2/3", "running": 2, "desired": 3, "command": ["/bin/sleep", "3600"]}
    and d[0]["mode"] == "global" and d[0]["replicas"] == "2/2"
    and d[0]["command"][2] == "cpu,memory,disk,network"'

# --- service ps: slots in order, history under its slot, hostnames, the id of an unknown
# node, the pending reason (the task's message) in ERROR, pids of running tasks
run service ps web
expect "service ps web" 0 <<'EOF'
ID                          NAME        NODE                        DESIRED STATE   CURRENT STATE            ERROR                                    PID
tsk1000000000000000000001   web.1       wrk-"a"                     Running         Running 3 minutes ago                                             4242
tsk1old000000000000000001    \_ web.1   gone00000000000000000000x   Shutdown        Failed 6 minutes ago     task: non-zero exit (1)                  
tsk2000000000000000000002   web.2       mgr-1                       Running         Running 3 minutes ago                                             4343
tsk3000000000000000000003   web.3                                   Running         Pending 10 minutes ago   no suitable node (3 nodes lack memory)   
EOF
run service ps -q svcweb
expect "service ps -q (id prefix)" 0 <<'EOF'
tsk1000000000000000000001
tsk1old000000000000000001
tsk2000000000000000000002
tsk3000000000000000000003
EOF
run service ps agent
expect "service ps agent (global)" 0 <<'EOF'
ID                          NAME                              NODE      DESIRED STATE   CURRENT STATE         ERROR     PID
tska100000000000000000001   agent.mgr1000000000000000000001   mgr-1     Running         Running 2 hours ago             5000
tska200000000000000000002   agent.wrka000000000000000000001   wrk-"a"   Running         Running 2 hours ago             5001
EOF
run service ps --format json web
json_check "service ps json" 'len(d) == 4 and {k: d[0][k] for k in ("id", "service", "slot",
    "node_id", "desired_state", "state", "pid", "exit_code", "error")} == {
    "id": "tsk1000000000000000000001", "service": "web", "slot": 1,
    "node_id": "wrka000000000000000000001", "desired_state": "running", "state": "running",
    "pid": 4242, "exit_code": 0, "error": ""}
    and d[1]["state"] == "failed" and d[1]["desired_state"] == "shutdown"
    and d[1]["exit_code"] == 1 and d[1]["error"] == "task: non-zero exit (1)"
    and d[1]["node_id"] == "gone00000000000000000000x" and d[1]["pid"] == 0
    and d[3]["state"] == "pending" and d[3]["node_id"] == "" and d[3]["error"] == ""
    and d[3]["message"] == "no suitable node (3 nodes lack memory)"
    and d[0]["node"] == "wrk-\"a\"" and d[2]["node"] == "mgr-1"'
run service ps nosuch
[[ $code -eq 1 && $(cat "$TMP/err") == "swarmctl: no such service: nosuch" && ! -s $TMP/out ]] &&
    ok || bad "service ps nosuch: exit $code: $(cat "$TMP/err")"

# --- service inspect: JSON array (one entry per found service), --pretty
run service inspect web svcagent
[[ $code -eq 0 ]] && ok || bad "service inspect: exit $code: $(cat "$TMP/err")"
json_check "service inspect json" 'len(d) == 2 and d[0]["name"] == "web"
    and d[0]["spec_replicas"] == 3 and d[0]["spec_version"] == 2 and d[0]["version"] == 9
    and d[0]["task"]["secrets"] == [{"secret_id": "sec0000000000000000000001",
        "secret_name": "db_pw", "target": "db_pw", "mode": "0444", "uid": 0, "gid": 0}]
    and d[0]["task"]["limits"] == {"memory_bytes": 67108864, "nano_cpus": 500000000, "pids": 0}
    and d[0]["task"]["constraints"] == ["node.role==worker"]
    and d[0]["task"]["restart_policy"] == {"condition": "any", "delay": "5s", "max_attempts": 0}
    and d[1]["name"] == "agent" and d[1]["mode"] == "global" and "spec_replicas" not in d[1]'
run service inspect web nosuch
[[ $code -eq 1 && $(cat "$TMP/err") == "swarmctl: no such service: nosuch" ]] && ok ||
    bad "service inspect nosuch: exit $code: $(cat "$TMP/err")"
json_check "service inspect partial" 'len(d) == 1 and d[0]["name"] == "web"'
run service inspect --pretty web
expect "service inspect --pretty" 0 <<'EOF'
ID:			svcweb0000000000000000001
Name:			web
Created at:		2026-01-01T00:00:00Z
Updated at:		2026-01-01T00:01:30Z
Mode:			Replicated
 Replicas:		3
Tasks running:		2/3
Task spec (version 2):
 Command:		/bin/sleep 3600
 Env:
  - MODE=prod
 Root:			(host view)
 Network:		none
 Secrets:
  - db_pw -> /run/secrets/db_pw (mode 0444, uid 0, gid 0)
 Limits:
  CPU:			0.5
  Memory:		64MiB
 Placement constraints:
  - node.role==worker
 Restart Policy:
  Condition:		any
  Delay:		5s
  Max Attempts:		0
EOF

# --- service create: every task flag reaches the spec (read back with inspect)
run service create --name api --replicas 2 --secret db_pw \
    --secret source=tls_key,target=server.key,mode=0400,uid=1000,gid=50 \
    --env A=1 -e B=x=y --workdir /srv -u 1000:1000 --hostname api-1 --read-only \
    --limit-memory 64M --limit-cpu 0.5 --limit-pids 100 --reserve-memory 48m \
    --reserve-cpu 0.25 --constraint 'node.role == worker' --constraint node.labels.zone!=b \
    --cap-add NET_ADMIN --cap-drop ALL --restart-condition on-failure --restart-delay 1m30s \
    --restart-max-attempts 3 --rootfs /srv/root --network host --label tier=front \
    -- /bin/sh -c 'echo hi; sleep 3600'
[[ $code -eq 0 && $(cat "$TMP/out") =~ ^svcnew[0-9]{19}$ ]] && ok ||
    bad "service create: exit $code, out $(cat "$TMP/out"), err $(cat "$TMP/err")"
run service inspect api
json_check "service create spec" 'len(d) == 1 and d[0]["name"] == "api"
    and d[0]["spec_replicas"] == 2 and d[0]["mode"] == "replicated"
    and d[0]["labels"] == {"tier": "front"} and d[0]["task"] == {
    "command": ["/bin/sh", "-c", "echo hi; sleep 3600"], "env": ["A=1", "B=x=y"],
    "workdir": "/srv", "user": "1000:1000", "hostname": "api-1", "read_only": True,
    "rootfs": "/srv/root", "network": "host", "cap_add": ["NET_ADMIN"], "cap_drop": ["ALL"],
    "secrets": [{"secret_id": "sec0000000000000000000001", "secret_name": "db_pw",
                 "target": "db_pw", "mode": "0444", "uid": 0, "gid": 0},
                {"secret_id": "sec0000000000000000000002", "secret_name": "tls_key",
                 "target": "server.key", "mode": "0400", "uid": 1000, "gid": 50}],
    "limits": {"memory_bytes": 67108864, "nano_cpus": 500000000, "pids": 100},
    "reservations": {"memory_bytes": 50331648, "nano_cpus": 250000000},
    "constraints": ["node.role==worker", "node.labels.zone!=b"],
    "restart_policy": {"condition": "on-failure", "delay": "1m30s", "max_attempts": 3}}'
run service create --name glob --mode global /bin/sleep 60
[[ $code -eq 0 ]] && ok || bad "service create global without --: exit $code: $(cat "$TMP/err")"
run service inspect glob
json_check "service create global" 'd[0]["mode"] == "global"
    and d[0]["task"]["command"] == ["/bin/sleep", "60"] and d[0]["task"]["secrets"] == []'
# the server's refusals: one line, exit 1, nothing on stdout
run service create --name api -- /bin/true
[[ $code -eq 1 && $(cat "$TMP/err") == "swarmctl: a service with this name already exists" &&
    ! -s $TMP/out ]] && ok || bad "service create duplicate: exit $code: $(cat "$TMP/err")"
run service create --name s2 --secret nosuch -- /bin/true
[[ $code -eq 1 && $(cat "$TMP/err") == "swarmctl: secret not found: nosuch" ]] && ok ||
    bad "service create unknown secret: exit $code: $(cat "$TMP/err")"
run service ls -q
[[ $(lines "$TMP/out") -eq 4 ]] && ok || bad "refused creates wrote something: $(cat "$TMP/out")"

# --- service update: flags replace their part, the rest is kept; a new command after --
run service update api --limit-memory 128M --env C=3 --replicas 5 -- /bin/sleep 10
expect "service update" 0 <<<"api"
run service inspect api
json_check "service update spec" 'd[0]["spec_replicas"] == 5 and d[0]["spec_version"] == 2
    and d[0]["task"]["limits"] == {"memory_bytes": 134217728, "nano_cpus": 500000000,
                                   "pids": 100}
    and d[0]["task"]["env"] == ["C=3"] and d[0]["task"]["command"] == ["/bin/sleep", "10"]
    and d[0]["task"]["workdir"] == "/srv" and len(d[0]["task"]["secrets"]) == 2
    and d[0]["task"]["constraints"] == ["node.role==worker", "node.labels.zone!=b"]'
run service update --read-only=false api
run service inspect api
json_check "service update --read-only=false" 'd[0]["task"]["read_only"] is False
    and d[0]["spec_version"] == 3'
run service update --replicas 1 api
run service inspect api
json_check "service update --replicas keeps the spec" 'd[0]["spec_replicas"] == 1
    and d[0]["spec_version"] == 3'
run service update nosuch --replicas 2
[[ $code -eq 1 && $(cat "$TMP/err") == "swarmctl: no such service: nosuch" ]] && ok ||
    bad "service update nosuch: exit $code: $(cat "$TMP/err")"

# --- service scale: each service in turn; failures reported, the others still scaled
run service scale api=4 agent=2 nosuch=1 web=0
expect "service scale" 1 <<'EOF'
api scaled to 4
web scaled to 0
EOF
if [[ $(cat "$TMP/err") == "swarmctl: agent is a global service: it cannot be scaled
swarmctl: no such service: nosuch" ]]; then ok; else bad "service scale errors: $(cat "$TMP/err")"; fi
run service ls --format json
json_check "service scale applied" '[s["replicas"] for s in d] == ["2/2", "0/4", "0/4", "2/0"]'

# --- service rm
run service rm glob nosuch
expect "service rm" 1 <<<"glob"
[[ $(cat "$TMP/err") == "swarmctl: no such service: nosuch" ]] && ok ||
    bad "service rm nosuch: $(cat "$TMP/err")"
run service ls -q
[[ $(lines "$TMP/out") -eq 3 ]] && ! grep -q glob "$TMP/out" && ok || bad "service rm left glob"

# --- secret ls / inspect: never the data, even though this server sends it
run secret ls
expect "secret ls" 0 <<'EOF'
ID                          NAME      CREATED       UPDATED
sec0000000000000000000001   db_pw     2 hours ago   2 hours ago
sec0000000000000000000002   tls_key   3 days ago    About a minute ago
EOF
run secret ls -q
expect "secret ls -q" 0 <<'EOF'
sec0000000000000000000001
sec0000000000000000000002
EOF
run secret ls --format json
json_check "secret ls json" 'len(d) == 2 and d[1]["name"] == "tls_key"
    and d[1]["id"] == "sec0000000000000000000002" and d[1]["labels"] == {"env": "prod"}
    and d[1]["digest"] == "sha256:" + "0" * 62 + "14"
    and all("data" not in s for s in d) and "created_at" in d[0] and "updated_at" in d[0]'
run secret inspect db_pw sec0000000000000000000002
json_check "secret inspect json" '[s["name"] for s in d] == ["db_pw", "tls_key"]
    and d[0]["version"] == 5 and all("data" not in s for s in d)'
run secret inspect db_pw nosuch
[[ $code -eq 1 && $(cat "$TMP/err") == "swarmctl: no such secret: nosuch" ]] && ok ||
    bad "secret inspect nosuch: exit $code: $(cat "$TMP/err")"
run secret inspect --pretty tls_key
sed -i -E 's/^(Created at|Updated at):\t.*$/\1:\tTIME/' "$TMP/out"
expect "secret inspect --pretty" 0 <<'EOF'
ID:		sec0000000000000000000002
Name:		tls_key
Labels:
 - env=prod
Digest:		sha256:0000000000000000000000000000000000000000000000000000000000000014
Created at:	TIME
Updated at:	TIME
EOF
for args in "secret ls" "secret ls --format json" "secret inspect db_pw tls_key" \
    "secret inspect --pretty db_pw tls_key"; do
    # shellcheck disable=SC2086
    run $args
    if grep -q -e PRELOADEDSECRETDATA -e UFJFTE9BREVE "$TMP/out" "$TMP/err"; then
        bad "$args shows secret data"
    else
        ok
    fi
done

# --- secret create: from STDIN and from a file, bytes intact, data never printed
printf 's3cret' | "$SWARMCTL" secret create db_new - >"$TMP/out" 2>"$TMP/err"
code=$?
[[ $code -eq 0 && $(cat "$TMP/out") =~ ^secnew[0-9]{19}$ && ! -s $TMP/err ]] && ok ||
    bad "secret create from STDIN: exit $code: $(cat "$TMP/err")"
[[ $(cat "$TMP/received-db_new" 2>/dev/null) == s3cret ]] && ok || bad "STDIN data did not arrive"
grep -q s3cret "$TMP/out" "$TMP/err" && bad "secret create printed the data" || ok
printf 'line1\nbin\0\001\377end\n' >"$TMP/keyfile"
run secret create --label env=test -l team=a tls_new "$TMP/keyfile"
[[ $code -eq 0 && $(cat "$TMP/out") =~ ^secnew[0-9]{19}$ ]] && ok ||
    bad "secret create from a file: exit $code: $(cat "$TMP/err")"
cmp -s "$TMP/keyfile" "$TMP/received-tls_new" && ok || bad "file data did not arrive intact"
run secret inspect tls_new
json_check "secret create labels" 'd[0]["labels"] == {"env": "test", "team": "a"}
    and d[0]["digest"] == "sha256:" + "0" * 62 + "10" and "data" not in d[0]'
head -c 512000 /dev/zero | tr '\0' x >"$TMP/max"
run secret create max_size "$TMP/max"
[[ $code -eq 0 ]] && cmp -s "$TMP/max" "$TMP/received-max_size" && ok ||
    bad "secret create of exactly 500 KiB: exit $code: $(cat "$TMP/err")"
printf 'y' >>"$TMP/max"
run secret create too_big "$TMP/max"
[[ $code -eq 1 && $(lines "$TMP/err") -eq 1 && ! -s $TMP/out ]] &&
    grep -q 'larger than 500 KiB' "$TMP/err" && [[ ! -e $TMP/received-too_big ]] && ok ||
    bad "secret create > 500 KiB: exit $code: $(cat "$TMP/err")"
head -c 600000 /dev/zero | "$SWARMCTL" secret create too_big - >"$TMP/out" 2>"$TMP/err"
code=$?
[[ $code -eq 1 ]] && grep -q 'larger than 500 KiB' "$TMP/err" && [[ ! -e $TMP/received-too_big ]] &&
    ok || bad "secret create > 500 KiB from STDIN: exit $code: $(cat "$TMP/err")"
: >"$TMP/empty"
run secret create empty "$TMP/empty"
[[ $code -eq 1 ]] && grep -q 'empty' "$TMP/err" && ok || bad "empty secret: exit $code"
run secret create nofile "$TMP/does-not-exist"
[[ $code -eq 1 && $(lines "$TMP/err") -eq 1 ]] && grep -q 'does-not-exist' "$TMP/err" && ok ||
    bad "secret create from a missing file: exit $code: $(cat "$TMP/err")"
run secret create db_pw "$TMP/keyfile"
[[ $code -eq 1 && $(cat "$TMP/err") == "swarmctl: a secret with this name already exists" ]] &&
    ok || bad "secret create duplicate: exit $code: $(cat "$TMP/err")"

# --- secret rm: refused while a service uses it
run secret rm db_pw db_new nosuch
expect "secret rm" 1 <<<"db_new"
[[ $(cat "$TMP/err") == "swarmctl: secret db_pw is in use by service web
swarmctl: no such secret: nosuch" ]] && ok || bad "secret rm errors: $(cat "$TMP/err")"
run secret ls --format json
json_check "secret rm applied" '[s["name"] for s in d] == ["db_pw", "max_size", "tls_key",
    "tls_new"]'

# --- node update: availability and labels
run node update --availability drain --label-add zone=a --label-add ssd --label-add tier=x mgr-2
expect "node update" 0 <<<"mgr-2"
run node update --label-rm tier --label-add zone=b mgr2000
expect "node update by prefix" 0 <<<"mgr2000"
run node inspect mgr-2
json_check "node update applied" 'd[0]["availability"] == "drain"
    and d[0]["labels"] == {"zone": "b", "ssd": ""}'
run node update --availability active nosuch
[[ $code -eq 1 && $(cat "$TMP/err") == "swarmctl: no such node: nosuch" ]] && ok ||
    bad "node update nosuch: exit $code: $(cat "$TMP/err")"

# --- server errors: "swarmctl: <error>" on one line, exit 1
SOCK2=$TMP/fail.sock
start_fake "$SOCK2" fail
for cmd in "node ls" "node inspect x" "join-token worker" "cluster inspect" "service ls" \
    "service ps web" "service create --name x -- /bin/true" "service scale web=1" \
    "service update --replicas 1 web" "service rm web" "service inspect web" "secret ls" \
    "secret inspect db_pw" "secret rm db_pw" "node update --availability drain mgr-1"; do
    # shellcheck disable=SC2086
    run -H "unix://$SOCK2" $cmd
    # node inspect still prints the (empty) JSON array of what it found
    [[ $cmd == *" inspect "* && $(cat "$TMP/out") == "[]" ]] && : >"$TMP/out"
    if [[ $code -eq 1 && $(cat "$TMP/err") == "swarmctl: this node is not a swarm manager" &&
        ! -s $TMP/out ]]; then
        ok
    else
        bad "$cmd against a failing server: exit $code: $(cat "$TMP/err")"
    fi
done

finish
