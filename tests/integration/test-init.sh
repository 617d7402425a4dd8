#!/usr/bin/env bash
# swarmd init on loopback: node ls, join tokens, cluster inspect, the node certificate as
# openssl sees it, files and modes, and no secret readable in the state dir.
. "$(dirname "$0")/lib.sh"

SD=$T/state
SOCK=$SD/swarmd.sock
start_swarmd m1 init --state-dir "$SD" --listen-addr 127.0.0.1:0 --hostname it-manager-1
PID=$LAST_PID
wait_ready "$SOCK" "$PID" || { cat "$T/m1.log"; fail "swarmd init did not become ready"; finish; }
ADDR=$(listen_addr "$T/m1.log")

NODE_ID=$(ctl node ls -q)
check "node ls -q prints one 25-char id" bash -c "[[ '$NODE_ID' =~ ^[0-9a-z]{25}$ ]]"
check "init output names the node" grep -q "current node ($NODE_ID) is now a manager" "$T/m1.out"
check "init output carries the worker join line" \
    grep -Eq "^    swarmd join SWMTKN-1-[0-9a-z]{50}-[0-9a-z]{25} $ADDR\$" "$T/m1.out"

LS=$(ctl node ls)
check "node ls table: header" bash -c "grep -q '^ID *HOSTNAME *STATUS *AVAILABILITY *MANAGER STATUS' <<<'$LS'"
check "node ls table: ready, active, leader" \
    bash -c "grep -Eq '^$NODE_ID +it-manager-1 +Ready +Active +Leader +$ADDR' <<<'$LS'"

J=$(ctl node ls --format json)
check "node ls json: one object with the documented fields" python3 - "$J" "$NODE_ID" "$ADDR" <<'PY'
import json, sys
nodes = json.loads(sys.argv[1])
assert len(nodes) == 1, nodes
n = nodes[0]
assert n["id"] == sys.argv[2]
assert n["hostname"] == "it-manager-1"
assert n["role"] == "manager" and n["status"] == "ready"
assert n["availability"] == "active" and n["manager_status"] == "leader"
assert n["addr"] == sys.argv[3]
PY

WT=$(ctl join-token -q worker)
MT=$(ctl join-token -q manager)
check "worker token has the documented shape" bash -c "[[ '$WT' =~ ^SWMTKN-1-[0-9a-z]{50}-[0-9a-z]{25}$ ]]"
check "worker and manager tokens differ in the secret only" \
    bash -c "[ '${WT%-*}' = '${MT%-*}' ] && [ '$WT' != '$MT' ]"
check "join-token worker prints the full join line" \
    bash -c "'$SWARMCTL' -H unix://$SOCK join-token worker | grep -qx '    swarmd join $WT $ADDR'"

# the token's digest is base36(sha256(root CA bundle)), 50 chars
DIGEST=$(python3 -c '
import hashlib, sys
n = int.from_bytes(hashlib.sha256(open(sys.argv[1], "rb").read()).digest(), "big")
s = ""
while n: n, d = divmod(n, 36); s = "0123456789abcdefghijklmnopqrstuvwxyz"[d] + s
print(s.rjust(50, "0"))' "$SD/certificates/swarm-root-ca.crt")
check "token digest = base36(sha256(root CA bundle))" bash -c "[ '$(cut -d- -f3 <<<"$WT")' = '$DIGEST' ]"

CI=$(ctl cluster inspect)
check "cluster inspect shows id, expiry, heartbeat and token digests" bash -c "
    grep -q '^ID: *[0-9a-z]\{25\}' <<<'$CI' && grep -q 'Node certificate expiry: *2160h0m0s' <<<'$CI' &&
    grep -q 'Heartbeat period: *5s' <<<'$CI' && grep -q 'Worker token digest: *sha256:[0-9a-f]\{64\}' <<<'$CI'"
check "cluster inspect never shows token secrets" bash -c "! grep -q '${WT##*-}\|${MT##*-}' <<<'$CI'"
CJ=$(ctl cluster inspect --format json)
check "cluster inspect json has no secret or key" bash -c "! grep -q '${WT##*-}\|${MT##*-}\|PRIVATE' <<<'$CJ'"
CLUSTER_ID=$(ctl cluster inspect -q)

# the node certificate, as openssl reads it
CRT=$SD/certificates/swarm-node.crt
SUBJ=$(openssl x509 -in "$CRT" -noout -subject -nameopt RFC2253)
check "cert subject CN=node id, OU=swarm-manager, O=cluster id" \
    bash -c "grep -q 'CN=$NODE_ID' <<<'$SUBJ' && grep -q 'OU=swarm-manager' <<<'$SUBJ' && grep -q 'O=$CLUSTER_ID' <<<'$SUBJ'"
check "cert issued by swarm-ca" bash -c "openssl x509 -in '$CRT' -noout -issuer | grep -q 'CN *= *swarm-ca'"
check "cert chains to the root bundle" openssl verify -CAfile "$SD/certificates/swarm-root-ca.crt" "$CRT"
TEXT=$(openssl x509 -in "$CRT" -noout -text)
check "cert EKU serverAuth + clientAuth" bash -c "grep -q 'TLS Web Server Authentication, TLS Web Client Authentication' <<<'$TEXT'"
check "cert SANs: role, node id, swarm-ca" bash -c "grep -q 'DNS:swarm-manager' <<<'$TEXT' && grep -q 'DNS:$NODE_ID' <<<'$TEXT' && grep -q 'DNS:swarm-ca' <<<'$TEXT'"
check "cert key is ECDSA P-256" bash -c "grep -q 'prime256v1\|P-256' <<<'$TEXT'"
check "cert valid ~90 days, NotBefore backdated ~1h" python3 - "$CRT" <<'PY'
import subprocess, sys, datetime as dt
def get(flag):
    out = subprocess.check_output(["openssl", "x509", "-in", sys.argv[1], "-noout", flag], text=True)
    return dt.datetime.strptime(out.split("=", 1)[1].strip(), "%b %d %H:%M:%S %Y %Z")
nb, na = get("-startdate"), get("-enddate")
now = dt.datetime.utcnow()
assert dt.timedelta(minutes=55) <= now - nb <= dt.timedelta(minutes=65), (now, nb)
assert abs((na - now) - dt.timedelta(days=90)) < dt.timedelta(minutes=5), (now, na)
PY
check "root CA: CN swarm-ca, ~20 years" python3 - "$SD/certificates/swarm-root-ca.crt" <<'PY'
import subprocess, sys, datetime as dt
out = subprocess.check_output(["openssl", "x509", "-in", sys.argv[1], "-noout", "-subject", "-enddate"], text=True)
assert "swarm-ca" in out
end = dt.datetime.strptime(out.split("notAfter=")[1].strip(), "%b %d %H:%M:%S %Y %Z")
assert abs((end - dt.datetime.utcnow()).days - 20 * 365) < 10, end
PY

# files, modes, and nothing readable
check "socket is mode 0600" bash -c "[ \"\$(stat -c %a '$SOCK')\" = 600 ]"
check "node key is mode 0600 and encrypted" bash -c "[ \"\$(stat -c %a '$SD/certificates/swarm-node.key')\" = 600 ] && grep -q 'ENCRYPTED PRIVATE KEY' '$SD/certificates/swarm-node.key'"
check "raft and store live under the state dir" bash -c "[ -d '$SD/raft' ] && [ -f '$SD/store/data.mdb' ]"
for secret in "${WT##*-}" "${MT##*-}"; do
    check "token secret ${secret:0:4}… is nowhere in the state dir" bash -c "! grep -rqa '$secret' '$SD'"
done
check "no plaintext private key in the state dir" bash -c "! grep -rqa 'BEGIN PRIVATE KEY\|BEGIN EC PRIVATE KEY' '$SD'"

# swarmctl ca: the root the nodes trust, and the digest join tokens carry
check "swarmctl ca prints the root CA the state dir holds" bash -c "diff <('$SWARMCTL' -H unix://$SOCK ca) '$SD/certificates/swarm-root-ca.crt' >/dev/null"
WT_DIGEST=$(cut -d- -f3 <<<"$WT")
check "swarmctl ca -q is the digest in the join tokens" bash -c "[ \"\$('$SWARMCTL' -H unix://$SOCK ca -q)\" = '$WT_DIGEST' ]"
check "swarmctl ca --format json has PEM, digest and expiry" bash -c "'$SWARMCTL' -H unix://$SOCK ca --format json | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d[\"cert_pem\"].startswith(\"-----BEGIN CERTIFICATE\") and d[\"digest\"] and d[\"not_after\"]'"

check "SIGTERM exits cleanly (status 0)" stop_swarmd "$PID"
check "the control socket is gone after exit" bash -c "[ ! -S '$SOCK' ] || ! '$SWARMCTL' -H unix://$SOCK node ls >/dev/null 2>&1"
finish
