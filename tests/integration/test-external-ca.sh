#!/usr/bin/env bash
# External CA (issue 6): swarmd init --external-ca protocol=cfssl,url=... signs every node
# certificate through a real `cfssl serve` on loopback (started here): the manager's own,
# a joining worker's, a renewal; a signer that is down or holds another CA is refused with a
# clear error and the manager keeps serving; the root of an external CA is not rotated here;
# over https the signer's certificate is verified against the external root, and a signer
# asking for mutual TLS gets the manager's certificate.
. "$(dirname "$0")/lib.sh"
if ! command -v cfssl >/dev/null || ! command -v cfssljson >/dev/null; then
    echo "skip: cfssl is not installed (tests/deps.sh installs golang-cfssl)"
    exit 77
fi

# cfssl_ca DIR CN: a root (ECDSA P-256) and a signing config allowing server+client auth
cfssl_ca() {
    mkdir -p "$1"
    echo "{\"CN\":\"$2\",\"key\":{\"algo\":\"ecdsa\",\"size\":256}}" >"$1/csr.json"
    (cd "$1" && cfssl gencert -initca csr.json 2>/dev/null | cfssljson -bare ca)
    echo '{"signing":{"default":{"expiry":"2160h","usages":["signing","key encipherment","server auth","client auth"]}}}' >"$1/cfg.json"
}
# signer DIR [ARGS...]: cfssl serve with that CA on $PORT (CFSSL_PID), ARGS added
signer() {
    local dir=$1; shift
    cfssl serve -address 127.0.0.1 -port "$PORT" -ca "$dir/ca.pem" -ca-key "$dir/ca-key.pem" \
        -config "$dir/cfg.json" "$@" >>"$T/cfssl.log" 2>&1 &
    CFSSL_PID=$!
    PIDS+=("$CFSSL_PID")
    for _ in $(seq 100); do
        python3 -c "import socket; socket.create_connection(('127.0.0.1', $PORT), 0.2)" 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}
stop_signer() { kill "$CFSSL_PID" 2>/dev/null; wait "$CFSSL_PID" 2>/dev/null; }
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cfssl_ca "$T/ca" ext-root
cfssl_ca "$T/other" other-root
check "cfssl serve runs" signer "$T/ca"
SOCK=$T/m/swarmd.sock
URL="protocol=cfssl,url=http://127.0.0.1:$PORT"

OUT=$("$SWARMD" init --state-dir "$T/x" --external-ca "$URL" 2>&1); RC=$?
check "--external-ca without its root is a usage error (exit 2)" bash -c "[ $RC = 2 ]"
OUT=$("$SWARMD" init --state-dir "$T/x" --external-ca "protocol=acme,url=x" --external-ca-cert "$T/ca/ca.pem" 2>&1); RC=$?
check "an unknown protocol is a usage error (exit 2)" bash -c "[ $RC = 2 ]"

# a signer that accepts and never answers: given up after the 10 s timeout, with the reason
SLOW=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -c "
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', $SLOW)); s.listen(8); held = []
while True:
    c, _ = s.accept(); held.append(c)
" &
PIDS+=($!)
sleep 0.3
OUT=$(timeout 30 "$SWARMD" init --state-dir "$T/slow" --listen-addr 127.0.0.1:0 \
    --external-ca "protocol=cfssl,url=http://127.0.0.1:$SLOW" --external-ca-cert "$T/ca/ca.pem" 2>&1); RC=$?
check "a signer that never answers: init fails (exit 1), not hangs" bash -c "[ $RC = 1 ]"
echo "(slow signer: $OUT)"
check "…saying the external CA did not answer in time" has "$OUT" "did not answer in time"

start_swarmd m init --state-dir "$T/m" --listen-addr 127.0.0.1:0 --hostname xm \
    --external-ca "$URL" --external-ca-cert "$T/ca/ca.pem"
MPID=$LAST_PID
check "init --external-ca serves" wait_ready "$SOCK" "$MPID"
check "…its own certificate came from the external CA" bash -c "openssl x509 -in '$T/m/certificates/swarm-node.crt' -noout -issuer | grep -q ext-root"
check "…its root is the external one" bash -c "diff <('$SWARMCTL' -H unix://$SOCK ca) '$T/ca/ca.pem' >/dev/null"
ADDR=$(listen_addr "$T/m.log")
WT=$(ctl join-token -q worker)
start_swarmd w1 join --state-dir "$T/w1" --hostname xw1 "$WT" "$ADDR"
check "a worker joins" until_ok 20 bash -c "'$SWARMCTL' -H unix://$SOCK node ls | grep -q 'xw1 *Ready'"
check "…with a certificate the external CA signed" openssl verify -CAfile "$T/ca/ca.pem" "$T/w1/certificates/swarm-node.crt"
check "…for the right node and role" bash -c "openssl x509 -in '$T/w1/certificates/swarm-node.crt' -noout -subject | grep -q 'OU *= *swarm-worker'"
SERIAL=$(openssl x509 -in "$T/w1/certificates/swarm-node.crt" -noout -serial)
check "ca --force-rotate" ctl ca --force-rotate
check "…the worker renews through the external CA" until_ok 20 bash -c "[ \"\$(openssl x509 -in '$T/w1/certificates/swarm-node.crt' -noout -serial)\" != '$SERIAL' ] && openssl verify -CAfile '$T/ca/ca.pem' '$T/w1/certificates/swarm-node.crt' >/dev/null"
OUT=$(ctl ca --rotate 2>&1); RC=$?
check "ca --rotate is refused for an external CA (exit 1)" bash -c "[ $RC = 1 ]"
check "…saying its owner rotates it" has "$OUT" "external CA"

# the signer down: a join fails with the reason, the manager keeps serving
stop_signer
OUT=$("$SWARMD" join --timeout 5s --state-dir "$T/w2" "$WT" "$ADDR" 2>&1); RC=$?
check "with the signer down a join fails (exit 1)" bash -c "[ $RC = 1 ]"
echo "(signer down: $OUT)"
check "…saying the external CA did not sign" has "$OUT" "external CA did not sign"
check "…the manager keeps serving" ctl node ls -q
# a signer holding another CA: its certificates do not chain to the swarm's root
check "a signer with another CA on the same address" signer "$T/other"
OUT=$("$SWARMD" join --timeout 5s --state-dir "$T/w3" "$WT" "$ADDR" 2>&1); RC=$?
check "…its certificate is refused (exit 1)" bash -c "[ $RC = 1 ]"
echo "(wrong CA: $OUT)"
check "…as not chaining to the swarm's root" has "$OUT" "external CA did not sign"
stop_signer
check "the right signer back" signer "$T/ca"
start_swarmd w4 join --state-dir "$T/w4" --hostname xw4 "$WT" "$ADDR"
check "…and joins work again" until_ok 20 bash -c "'$SWARMCTL' -H unix://$SOCK node ls | grep -q 'xw4 *Ready'"
check "no node was added by the failed joins" bash -c "[ \$('$SWARMCTL' -H unix://$SOCK node ls -q | wc -l) = 3 ]"

# a swarm with its own root moves to the external CA
S2=$T/i/swarmd.sock
start_swarmd i init --state-dir "$T/i" --listen-addr 127.0.0.1:0 --hostname im --dispatcher-heartbeat 1s
IPID=$LAST_PID
check "a swarm with its own root" wait_ready "$S2" "$IPID"
A2=$(listen_addr "$T/i.log")
start_swarmd iw join --state-dir "$T/iw" --hostname iw "$("$SWARMCTL" -H unix://$S2 join-token -q worker)" "$A2"
check "…and a worker" until_ok 20 bash -c "'$SWARMCTL' -H unix://$S2 node ls | grep -q 'iw *Ready'"
OUT=$(timeout 90 "$SWARMCTL" -H "unix://$S2" ca --rotate --external-ca "$URL" --ca-cert "$T/ca/ca.pem" 2>/dev/null); RC=$?
check "ca --rotate --external-ca --ca-cert moves it to the external CA" bash -c "[ $RC = 0 ]"
check "…its root is the external one" bash -c "diff <('$SWARMCTL' -H unix://$S2 ca) '$T/ca/ca.pem' >/dev/null"
for d in i iw; do
    check "…$d holds a certificate the external CA signed" until_ok 20 openssl verify -CAfile "$T/ca/ca.pem" "$T/$d/certificates/swarm-node.crt"
done
start_swarmd iw2 join --state-dir "$T/iw2" --hostname iw2 "$("$SWARMCTL" -H unix://$S2 join-token -q worker)" "$A2"
check "…and a new worker joins through it" until_ok 20 bash -c "'$SWARMCTL' -H unix://$S2 node ls | grep -q 'iw2 *Ready'"
OUT=$("$SWARMCTL" -H "unix://$S2" ca --rotate --external-ca "$URL" 2>&1); RC=$?
check "--external-ca without the signer's root is a usage error (exit 2)" bash -c "[ $RC = 2 ]"
stop_signer

# https: the signer's TLS certificate is verified against the external root; a signer that
# asks for a client certificate (mutual TLS) gets the manager's
echo '{"CN":"127.0.0.1","hosts":["127.0.0.1"],"key":{"algo":"ecdsa","size":256}}' >"$T/tls.json"
(cd "$T" && cfssl gencert -ca ca/ca.pem -ca-key ca/ca-key.pem -config ca/cfg.json tls.json 2>/dev/null | cfssljson -bare tls)
(cd "$T" && cfssl gencert -ca other/ca.pem -ca-key other/ca-key.pem -config other/cfg.json tls.json 2>/dev/null | cfssljson -bare tlsother)
# tls_signer CERT KEY [ARGS...]: cfssl serve over TLS on $PORT with the external CA
tls_signer() { local cert=$1 key=$2; shift 2; signer "$T/ca" -tls-cert "$cert" -tls-key "$key" "$@"; }
HURL="protocol=cfssl,url=https://127.0.0.1:$PORT"
check "cfssl serve over https" tls_signer "$T/tls.pem" "$T/tls-key.pem"
S3=$T/h/swarmd.sock
start_swarmd h init --state-dir "$T/h" --listen-addr 127.0.0.1:0 --hostname hm --external-ca "$HURL" --external-ca-cert "$T/ca/ca.pem"
HPID=$LAST_PID
check "init --external-ca https://… serves" wait_ready "$S3" "$HPID"
check "…its certificate came from the signer" openssl verify -CAfile "$T/ca/ca.pem" "$T/h/certificates/swarm-node.crt"
A3=$(listen_addr "$T/h.log")
HWT=$("$SWARMCTL" -H unix://$S3 join-token -q worker)
start_swarmd hw1 join --state-dir "$T/hw1" --hostname hw1 "$HWT" "$A3"
check "…a worker joins through it" until_ok 20 bash -c "'$SWARMCTL' -H unix://$S3 node ls | grep -q 'hw1 *Ready'"
stop_signer
check "a signer asking for a client certificate (mutual TLS)" tls_signer "$T/tls.pem" "$T/tls-key.pem" -mutual-tls-ca "$T/ca/ca.pem"
start_swarmd hw2 join --state-dir "$T/hw2" --hostname hw2 "$HWT" "$A3"
check "…a worker joins: the manager presented its certificate" until_ok 20 bash -c "'$SWARMCTL' -H unix://$S3 node ls | grep -q 'hw2 *Ready'"
OUT=$("$SWARMD" init --state-dir "$T/h2" --listen-addr 127.0.0.1:0 --external-ca "$HURL" --external-ca-cert "$T/ca/ca.pem" 2>&1); RC=$?
check "…init cannot (no certificate yet to present): refused (exit 1)" bash -c "[ $RC = 1 ]"
echo "(mutual TLS at init: $OUT)"
check "…saying the signer asked for a client certificate" has "$OUT" "asked for a client certificate"
stop_signer
check "a signer whose TLS certificate is of another CA" tls_signer "$T/tlsother.pem" "$T/tlsother-key.pem"
OUT=$("$SWARMD" join --timeout 5s --state-dir "$T/hw3" "$HWT" "$A3" 2>&1); RC=$?
check "…a join fails (exit 1)" bash -c "[ $RC = 1 ]"
echo "(signer with a foreign TLS certificate: $OUT)"
check "…saying the signer's certificate is not trusted" has "$OUT" "external CA did not sign.*not trusted"
check "…the manager keeps serving" "$SWARMCTL" -H "unix://$S3" node ls -q
stop_signer
finish
