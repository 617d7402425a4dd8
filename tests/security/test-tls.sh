#!/usr/bin/env bash
# Attack matrix, who may call what: another swarm's certificates (row 4), forged and
# self-signed certificates (5), a worker certificate on every manager-only method (6),
# no certificate at all (10), a demoted manager's old certificate, TLS below 1.3, the
# anonymous frame cap, the local control socket for another user.
. "$(dirname "$0")/lib-sec.sh"

start_manager a --dispatcher-heartbeat 200ms
A=$ADDR; ASOCK=$SOCK
CID=$(cluster_id "$ASOCK")
MID=$(ctl node ls -q | head -n 1)
"$ATTACK" join "$A" "$(ctl join-token -q worker)" "$T/w" >/dev/null || fail "worker join"
CA=$T/w/ca.crt
WORKER=(--cert "$T/w/node.crt" --key "$T/w/node.key" --ca "$CA")

# Every method a worker must not call (the control API, raft, the local-only unlock);
# the list is checked against the methods the manager registers, so a new one is not missed.
MANAGER_ONLY=(Control.ListNodes Control.GetNode Control.GetCluster Control.GetJoinToken
    Control.CreateService Control.GetService Control.ListServices Control.UpdateService
    Control.RemoveService Control.ListTasks Control.CreateSecret Control.GetSecret
    Control.ListSecrets Control.RemoveSecret Control.UpdateSecret Control.UpdateNode
    Control.RemoveNode Control.UpdateCluster Control.GetUnlockKey Control.Unlock Control.RotateCA
    Raft.Connect Raft.Join Raft.AddDataKey)
NODE_ONLY=(Dispatcher.Session Dispatcher.Heartbeat Dispatcher.UpdateTaskStatus
    CA.RenewNodeCertificate)
if [ -n "${SOURCE_ROOT:-}" ]; then
    REGISTERED=$(grep -rhoE '"(Control|Raft|Dispatcher|CA)\.[A-Za-z]+"' "$SOURCE_ROOT/manager" |
        tr -d '"' | sort -u)
    for m in $REGISTERED; do
        case " ${MANAGER_ONLY[*]} ${NODE_ONLY[*]} CA.GetRootCA CA.IssueNodeCertificate " in
            *" $m "*) ;;
            *) fail "method $m is not in the attack matrix's lists (tests/security/test-tls.sh)" ;;
        esac
    done
    pass "every method the manager registers is in the matrix"
fi

# --- positive control: the same calls over the same path with a manager certificate work
"$ATTACK" join "$A" "$(ctl join-token -q manager)" "$T/m" >/dev/null || fail "manager join"
OUT=$("$ATTACK" call --cert "$T/m/node.crt" --key "$T/m/node.key" --ca "$CA" "$A" Control.ListNodes)
check "control: a manager certificate may list nodes (the path works)" has "$OUT" "^Control.ListNodes status=0 "

# --- row 6: a worker certificate on every manager-only method: denied, each
OUT=$("$ATTACK" call "${WORKER[@]}" "$A" "${MANAGER_ONLY[@]}")
for m in "${MANAGER_ONLY[@]}"; do
    check "row 6: worker certificate -> $m denied" denied "$OUT" "$m"
done
check "row 6: …saying a manager certificate is needed" has "$OUT" "^Control.ListNodes status=-[0-9]* error=.*manager certificate"
# "CA signing for another node": a renewal CSR naming the manager gets the worker's own
# identity back; the CA never takes a subject from the CSR
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/r.key" \
    -subj "/CN=$MID/OU=swarm-manager/O=$CID" -addext "subjectAltName=DNS:swarm-ca" \
    -out "$T/r.csr" 2>/dev/null
OUT=$("$ATTACK" call "${WORKER[@]}" --renew-csr "$T/r.csr" --out "$T/r.crt" "$A" CA.RenewNodeCertificate)
W=$(subject "$T/w/node.crt" | sed 's/.*CN=\([a-z0-9]*\).*/\1/')
check "row 6: a worker's renewal for the manager's name is answered…" has "$OUT" "status=0 "
check "row 6: …with the worker's own identity and role only" bash -c "[ \"\$(openssl x509 -in '$T/r.crt' -noout -subject -nameopt RFC2253)\" = 'subject=CN=$W,OU=swarm-worker,O=$CID' ]"
check "row 6: …and no swarm-ca SAN" bash -c "[ '$(sans "$T/r.crt" 2>/dev/null)' = 'DNS:swarm-worker,DNS:$W' ]"
# a worker asking for a certificate for a new node without a token
OUT=$("$ATTACK" call "${WORKER[@]}" "$A" CA.IssueNodeCertificate)
check "row 6: a worker cannot issue a certificate without a token" denied "$OUT" CA.IssueNodeCertificate
check "row 6: the manager keeps serving" serving "$A" "$ASOCK"

# --- row 10: no certificate: only the join methods
OUT=$("$ATTACK" call --ca "$CA" "$A" "${MANAGER_ONLY[@]}" "${NODE_ONLY[@]}" CA.GetRootCA)
for m in "${MANAGER_ONLY[@]}" "${NODE_ONLY[@]}"; do
    check "row 10: no certificate -> $m denied" denied "$OUT" "$m"
done
check "row 10: …while CA.GetRootCA answers" has "$OUT" "^CA.GetRootCA status=0 "
OUT=$("$ATTACK" call --ca "$CA" "$A" CA.IssueNodeCertificate)
check "row 10: CA.IssueNodeCertificate without a token is refused" denied "$OUT" CA.IssueNodeCertificate
# a peer without a certificate may not send big frames (64 KiB cap)
OUT=$("$ATTACK" call --ca "$CA" --payload-size 200000 "$A" CA.GetRootCA)
check "row 10b: an anonymous 200 kB frame is refused" denied "$OUT" CA.GetRootCA
check "row 10: the manager keeps serving" serving "$A" "$ASOCK"

# --- row 4: certificates of another swarm are refused at the handshake
start_manager b
B=$ADDR; BSOCK=$SOCK; SOCK=$ASOCK
"$ATTACK" join "$B" "$("$SWARMCTL" -H "unix://$BSOCK" join-token -q worker)" "$T/bw" >/dev/null || fail "join b"
"$ATTACK" join "$B" "$("$SWARMCTL" -H "unix://$BSOCK" join-token -q manager)" "$T/bm" >/dev/null || fail "join b"
for who in bw bm; do
    OUT=$("$ATTACK" call --cert "$T/$who/node.crt" --key "$T/$who/node.key" --ca "$CA" "$A" Dispatcher.Heartbeat Control.ListNodes)
    check "row 4: another swarm's certificate ($who) is refused at the handshake" \
        bash -c "grep -q '^Dispatcher.Heartbeat connect-error=' <<<'$OUT' && grep -q '^Control.ListNodes connect-error=' <<<'$OUT'"
done
check "row 4: the manager keeps serving" serving "$A" "$ASOCK"

# --- row 4b/5: forged certificates with a valid-looking subject
SUBJ="/O=$CID/OU=swarm-manager/CN=$MID"
EXT=(-addext "subjectAltName=DNS:swarm-manager,DNS:$MID,DNS:swarm-ca" -addext "extendedKeyUsage=serverAuth,clientAuth")
# 5: self-signed
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -keyout "$T/self.key" \
    -subj "$SUBJ" "${EXT[@]}" -out "$T/self.crt" 2>/dev/null || fail "openssl self-signed"
# 4b: an attacker root with the same name as the swarm's (CN=swarm-ca) signs a manager certificate
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -keyout "$T/evilca.key" \
    -subj "$(openssl x509 -in "$CA" -noout -subject -nameopt compat | sed 's/^subject=//')" \
    -out "$T/evilca.crt" 2>/dev/null || fail "openssl evil CA"
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/forged.key" \
    -subj "$SUBJ" -out "$T/forged.csr" 2>/dev/null
printf 'subjectAltName=DNS:swarm-manager,DNS:%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$MID" >"$T/ext.cnf"
openssl x509 -req -in "$T/forged.csr" -CA "$T/evilca.crt" -CAkey "$T/evilca.key" -CAcreateserial \
    -days 30 -extfile "$T/ext.cnf" -out "$T/forged.crt" 2>/dev/null || fail "openssl forged"
cat "$T/forged.crt" "$T/evilca.crt" >"$T/forged-chain.crt"
# 5b: the worker's own certificate used as a CA for a manager certificate of its own making
openssl x509 -req -in "$T/forged.csr" -CA "$T/w/node.crt" -CAkey "$T/w/node.key" -CAcreateserial \
    -days 30 -extfile "$T/ext.cnf" -out "$T/wsigned.crt" 2>/dev/null || fail "openssl worker-signed"
cat "$T/wsigned.crt" "$T/w/node.crt" >"$T/wsigned-chain.crt"
for f in self:self forged:forged forged-chain:forged wsigned-chain:forged; do
    crt=${f%%:*}; key=${f##*:}
    OUT=$("$ATTACK" call --cert "$T/$crt.crt" --key "$T/$key.key" --ca "$CA" "$A" Control.ListNodes Dispatcher.Heartbeat)
    check "row 4b/5: a forged certificate ($crt) is refused at the handshake" \
        bash -c "grep -q '^Control.ListNodes connect-error=' <<<'$OUT' && grep -q '^Dispatcher.Heartbeat connect-error=' <<<'$OUT'"
done
check "row 5: the manager keeps serving" serving "$A" "$ASOCK"

# --- row 14: TLS below 1.3 is refused
check "row 14: a TLS 1.2 client is refused" bash -c "! openssl s_client -connect '$A' -tls1_2 </dev/null >/dev/null 2>&1"
check "row 14: a TLS 1.3 client gets through (control)" bash -c "openssl s_client -connect '$A' -tls1_3 </dev/null 2>/dev/null | grep -q 'TLSv1.3'"

# --- row 15: the local control socket is for root only
check "row 15: control socket mode 0600" bash -c "[ \"\$(stat -c %a '$ASOCK')\" = 600 ]"
check "row 15: the state dir is closed to others (0700)" bash -c "[ \"\$(stat -c %a '$T/a')\" = 700 ]"
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
    # open the way to the socket for a moment: the socket's own mode must still refuse
    MODES=$(stat -c %a "$T" "$T/a")
    chmod o+x "$T" "$T/a"
    OUT=$(setpriv --reuid=65534 --regid=65534 --clear-groups "$SWARMCTL" -H "unix://$ASOCK" node ls 2>&1); RC=$?
    chmod "$(sed -n 1p <<<"$MODES")" "$T"; chmod "$(sed -n 2p <<<"$MODES")" "$T/a"
    check "row 15: another user cannot use the control socket" bash -c "[ $RC != 0 ]"
    check "row 15: …(refused by the socket's mode)" has "$OUT" "ermission denied"
fi
check "the manager keeps serving after everything" serving "$A" "$ASOCK"
finish
