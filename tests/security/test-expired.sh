#!/usr/bin/env bash
# Attack matrix, row 8: a certificate signed by the swarm's own CA but expired is refused at
# the handshake. To get one, the manager runs two days in the past (the fakeclock shim:
# LD_PRELOAD shifting the wall clock), issues a 1 h certificate, and is restarted on the
# real clock. Also: a certificate not yet valid (issued in the future) is refused.
. "$(dirname "$0")/lib-sec.sh"
: "${FAKECLOCK:?FAKECLOCK must point at the fakeclock shim}"

# under_clock OFFSET_S CMD...: CMD with the wall clock shifted (ASan must accept the preload)
under_clock() {
    local off=$1; shift
    env SECTEST_CLOCK_OFFSET="$off" LD_PRELOAD="$FAKECLOCK" \
        ASAN_OPTIONS="${ASAN_OPTIONS:-}:verify_asan_link_order=0" "$@"
}
# clock OFFSET_S: the env prefix, for a daemon started with & ($! must be its own pid)
clock() { CLOCK=(env SECTEST_CLOCK_OFFSET="$1" LD_PRELOAD="$FAKECLOCK" ASAN_OPTIONS="${ASAN_OPTIONS:-}:verify_asan_link_order=0"); }
PAST=$((-2 * 24 * 3600))

# the shim works: a shifted `date` is two days behind
check "the fakeclock shim shifts the wall clock" bash -c "[ \$(( \$(date +%s) - \$(SECTEST_CLOCK_OFFSET=$PAST LD_PRELOAD='$FAKECLOCK' date +%s) )) -ge $((2 * 24 * 3600 - 60)) ]"

# a manager two days in the past; its own certificate: 90 days from then, still valid now
SOCK=$T/m/swarmd.sock
clock "$PAST"
"${CLOCK[@]}" "$SWARMD" init --state-dir "$T/m" --listen-addr 127.0.0.1:0 >"$T/m.out" 2>"$T/m.log" &
MPID=$!; PIDS+=("$MPID")
wait_ready "$SOCK" "$MPID" || { fail "manager (in the past) not ready"; finish; }
A=$(listen_addr "$T/m.log")
ctl cluster update --cert-expiry 1h >/dev/null || fail "cluster update --cert-expiry 1h"
WT=$(ctl join-token -q worker)
under_clock "$PAST" "$ATTACK" join "$A" "$WT" "$T/old" >/dev/null || fail "join in the past"
NA=$(date -d "$(openssl x509 -in "$T/old/node.crt" -noout -enddate | cut -d= -f2)" +%s)
check "row 8: the cluster-signed certificate has expired (NotAfter in the past)" bash -c "[ $NA -lt $(date +%s) ]"
check "row 8: …and chains to the swarm's root (a real issuance)" bash -c "openssl verify -no_check_time -CAfile '$T/old/ca.crt' '$T/old/node.crt' >/dev/null"
# control: at issuance time it was accepted
OUT=$(under_clock "$PAST" "$ATTACK" call $(creds "$T/old") "$A" Dispatcher.Heartbeat)
check "row 8: while valid, the certificate was accepted (control)" accepted "$OUT" Dispatcher.Heartbeat

# back to the real clock: the same manager, the same state dir
stop_swarmd "$MPID"
start_swarmd m2 --state-dir "$T/m"
MPID=$LAST_PID
wait_ready "$SOCK" "$MPID" || { fail "manager restart (real clock) not ready"; finish; }
A=$(listen_addr "$T/m2.log")
OUT=$("$ATTACK" call $(creds "$T/old") "$A" Dispatcher.Heartbeat CA.RenewNodeCertificate Control.ListNodes)
for m in Dispatcher.Heartbeat CA.RenewNodeCertificate Control.ListNodes; do
    check "row 8: an expired certificate is refused at the handshake ($m)" refused_conn "$OUT" "$m"
done
check "row 8: …the manager says it does not verify" has "$OUT" "does not verify\|expired\|refused"
check "row 8: the manager keeps serving" serving "$A" "$SOCK"
# a certificate the manager issued in the future (NotBefore ahead, past the 1 h backdate)
ctl cluster update --cert-expiry 2160h >/dev/null || fail "cluster update"
stop_swarmd "$MPID"
clock $((2 * 24 * 3600))
"${CLOCK[@]}" "$SWARMD" --state-dir "$T/m" >"$T/m3.out" 2>"$T/m3.log" &
MPID=$!; PIDS+=("$MPID")
wait_ready "$SOCK" "$MPID" || { fail "manager (in the future) not ready"; finish; }
A=$(listen_addr "$T/m3.log")
under_clock $((2 * 24 * 3600)) "$ATTACK" join "$A" "$(ctl join-token -q worker)" "$T/fut" >/dev/null || fail "join in the future"
stop_swarmd "$MPID"
start_swarmd m4 --state-dir "$T/m"
MPID=$LAST_PID
wait_ready "$SOCK" "$MPID" || { fail "manager restart (real clock) not ready"; finish; }
A=$(listen_addr "$T/m4.log")
OUT=$("$ATTACK" call $(creds "$T/fut") "$A" Dispatcher.Heartbeat)
check "row 8b: a certificate not yet valid is refused at the handshake" refused_conn "$OUT" Dispatcher.Heartbeat
check "row 8b: the manager keeps serving" serving "$A" "$SOCK"
finish
