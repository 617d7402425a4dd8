#!/usr/bin/env bash
# Attack matrix, joining: a worker token cannot buy a manager certificate (rows 1, 9), a
# rotated token (2) and another swarm's token (3) are refused, a CSR's own subject, SANs and
# extensions are ignored (9), CSRs with the wrong key type or signature are refused (9b).
. "$(dirname "$0")/lib-sec.sh"

start_manager a
A=$ADDR; ASOCK=$SOCK
WT=$(ctl join-token -q worker)
MT=$(ctl join-token -q manager)
CID=$(cluster_id "$ASOCK")
MID=$(ctl node ls -q | head -n 1)
nodes() { "$SWARMCTL" -H "unix://$ASOCK" node ls -q | wc -l; }

# --- row 1: a worker token gets a worker certificate, whatever the joiner wants
OUT=$("$ATTACK" join "$A" "$WT" "$T/w1")
check "row 1: worker token -> role worker" has "$OUT" "role=worker"
check "row 1: certificate OU is swarm-worker" has "$(subject "$T/w1/node.crt")" "OU=swarm-worker"
W1=$(sed -n 's/^node=\([a-z0-9]*\) .*/\1/p' <<<"$OUT")
role_of() { "$SWARMCTL" -H "unix://$ASOCK" node ls --format json | python3 -c '
import json, sys
print([n["role"] for n in json.load(sys.stdin) if n["id"] == sys.argv[1]][0])' "$1"; }
check "row 1: node ls lists it as a worker" bash -c "[ '$(role_of "$W1")' = worker ]"
OUT=$("$ATTACK" call --cert "$T/w1/node.crt" --key "$T/w1/node.key" --ca "$T/w1/ca.crt" "$A" Raft.Join Control.ListNodes)
check "row 1: its certificate cannot join raft" denied "$OUT" Raft.Join
check "row 1: …nor use the control API" denied "$OUT" Control.ListNodes
check "row 1: the manager keeps serving" serving "$A" "$ASOCK"

# --- row 2: rotated tokens are refused at once, the new ones work
ctl join-token --rotate worker >/dev/null
ctl join-token --rotate manager >/dev/null
N0=$(nodes)
for tok in "$WT" "$MT"; do
    OUT=$("$ATTACK" join "$A" "$tok" "$T/rot" 2>&1); RC=$?
    check "row 2: a rotated token is refused (${tok:60:4}…)" bash -c "[ $RC = 1 ]"
    check "row 2: …saying it is invalid or rotated" has "$OUT" "refused: .*invalid or has been rotated"
done
OUT=$("$SWARMD" join --state-dir "$T/rot2" --timeout 5s "$WT" "$A" 2>&1); RC=$?
check "row 2: swarmd join with a rotated token fails (exit 1)" bash -c "[ $RC = 1 ]"
check "row 2: …saying it was rotated" has "$OUT" "rotated"
check "row 2: no node was added" bash -c "[ $(nodes) = $N0 ]"
check "row 2: the current worker token still works" bash -c "'$ATTACK' join '$A' '$(ctl join-token -q worker)' '$T/w2' | grep -q role=worker"
check "row 2: the manager keeps serving" serving "$A" "$ASOCK"

# --- row 3: a token of another swarm is refused before the CSR is sent
start_manager b
B=$ADDR; BSOCK=$SOCK
BWT=$("$SWARMCTL" -H "unix://$BSOCK" join-token -q worker)
SOCK=$ASOCK
N0=$(nodes)
ISSUED0=$(grep -c "issued a" "$T/a.log")
OUT=$("$ATTACK" join "$A" "$BWT" "$T/x" 2>&1); RC=$?
check "row 3: another swarm's token is refused by the joiner (exit 1)" bash -c "[ $RC = 1 ]"
check "row 3: …on the CA digest, before any CSR" has "$OUT" "CA digest mismatch: no CSR sent"
OUT=$("$SWARMD" join --state-dir "$T/x2" --timeout 5s "$BWT" "$A" 2>&1); RC=$?
check "row 3: swarmd join with another swarm's token fails (exit 1)" bash -c "[ $RC = 1 ]"
check "row 3: …saying the CA digest does not match" has "$OUT" "CA digest does not match"
check "row 3: …and leaves no node behind" bash -c "[ ! -e '$T/x2/node.conf' ]"
# a joiner that skips the pinning and sends its CSR anyway: the manager checks the digest too
OUT=$("$ATTACK" join --no-pin "$A" "$BWT" "$T/x3" 2>&1); RC=$?
check "row 3: an unpinned CSR with another swarm's token is refused by the manager" bash -c "[ $RC = 1 ]"
check "row 3: …on the digest" has "$OUT" "refused: .*CA digest mismatch"
# the digest right, the secret of another swarm (or guessed)
FORGED="$(ctl join-token -q worker | cut -d- -f1-3)-${BWT##*-}"
OUT=$("$ATTACK" join "$A" "$FORGED" "$T/x4" 2>&1); RC=$?
check "row 3: this swarm's digest with a foreign secret is refused" bash -c "[ $RC = 1 ]"
check "row 3: …as an invalid token" has "$OUT" "invalid or has been rotated"
check "row 3: no node was added, no certificate issued" bash -c "[ $(nodes) = $N0 ] && [ \$(grep -c 'issued a' '$T/a.log') = $ISSUED0 ]"
check "row 3: both managers keep serving" bash -c "$(declare -f serving); ATTACK='$ATTACK' SWARMCTL='$SWARMCTL' serving '$A' '$ASOCK' && serving '$B' '$BSOCK'"

# --- row 9: a CSR asking for more than the token allows gets only what the token allows
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/evil.key" \
    -subj "/CN=$MID/OU=swarm-manager/O=$CID" -out "$T/evil.csr" \
    -addext "subjectAltName=DNS:swarm-ca,DNS:swarm-manager,DNS:$MID,IP:127.0.0.1,DNS:evil.example" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    2>/dev/null || fail "openssl cannot make the CSR"
OUT=$("$ATTACK" join --csr "$T/evil.csr" --key "$T/evil.key" "$A" "$(ctl join-token -q worker)" "$T/e")
check "row 9: a manager-looking CSR with a worker token -> role worker" has "$OUT" "role=worker"
E=$(sed -n 's/^node=\([a-z0-9]*\) .*/\1/p' <<<"$OUT")
SUBJ=$(subject "$T/e/node.crt")
check "row 9: subject is the CA's choice (CN new id, OU swarm-worker, O cluster)" bash -c "[ '$SUBJ' = 'subject=CN=$E,OU=swarm-worker,O=$CID' ]"
check "row 9: the CN is not the manager's id asked for" bash -c "[ '$E' != '$MID' ]"
check "row 9: SANs are exactly the role and the node id" bash -c "[ '$(sans "$T/e/node.crt")' = 'DNS:swarm-worker,DNS:$E' ]"
TEXT=$(openssl x509 -in "$T/e/node.crt" -noout -text)
check "row 9: the certificate is not a CA" hasnt "$TEXT" "CA:TRUE"
check "row 9: …and cannot sign certificates" hasnt "$TEXT" "Certificate Sign"
check "row 9: it still chains to the root (a real issuance)" openssl verify -CAfile "$T/e/ca.crt" "$T/e/node.crt"
OUT=$("$ATTACK" call --cert "$T/e/node.crt" --key "$T/e/node.key" --ca "$T/e/ca.crt" "$A" Control.ListNodes)
check "row 9: the issued certificate has no manager rights" denied "$OUT" Control.ListNodes

# --- row 9b: CSRs the CA must not sign (RSA key, another curve, a broken signature)
WTOK=$(ctl join-token -q worker)
N0=$(nodes)
openssl req -new -newkey rsa:2048 -nodes -keyout "$T/rsa.key" -subj "/CN=x" -out "$T/rsa.csr" 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-384 -nodes -keyout "$T/p384.key" -subj "/CN=x" -out "$T/p384.csr" 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/bad.key" -subj "/CN=x" -out "$T/good.csr" 2>/dev/null
python3 - "$T/good.csr" "$T/bad.csr" <<'PY'
import base64, sys
pem = open(sys.argv[1]).read().split("\n")
der = bytearray(base64.b64decode("".join(l for l in pem if l and not l.startswith("-----"))))
der[-3] ^= 0x01  # a bit of the ECDSA signature's s
b64 = base64.b64encode(bytes(der)).decode()
open(sys.argv[2], "w").write("-----BEGIN CERTIFICATE REQUEST-----\n" +
    "\n".join(b64[i:i + 64] for i in range(0, len(b64), 64)) + "\n-----END CERTIFICATE REQUEST-----\n")
PY
for kind in rsa p384 bad; do
    key=$T/$kind.key; [ "$kind" = bad ] && key=$T/bad.key
    OUT=$("$ATTACK" join --csr "$T/$kind.csr" --key "$key" "$A" "$WTOK" "$T/c-$kind" 2>&1); RC=$?
    check "row 9b: a CSR ($kind) is refused" bash -c "[ $RC = 1 ]"
    check "row 9b: …by the manager ($kind)" has "$OUT" "^refused: "
done
check "row 9b: no node was added" bash -c "[ $(nodes) = $N0 ]"
check "row 9b: the manager keeps serving" serving "$A" "$ASOCK"
finish
