#!/usr/bin/env bash
# Bad input: usage errors exit 2 with one line; init refuses a used state dir; bad frames
# and foreign certificates close only the offending connection; the daemon keeps serving.
. "$(dirname "$0")/lib.sh"
: "${PROBE:?PROBE must point at the probe binary}"

usage2() { # usage2 DESCRIPTION ARGS...: swarmd exits 2 with exactly one stderr line
    local what=$1; shift
    local err rc
    err=$("$SWARMD" "$@" 2>&1 >/dev/null); rc=$?
    if [ "$rc" = 2 ] && [ "$(wc -l <<<"$err")" = 1 ] && [ -n "$err" ]; then pass "$what"
    else fail "$what (exit $rc: $err)"; fi
}
usage2 "unknown flag" --bogus
usage2 "unknown command" frobnicate
usage2 "malformed listen address" init --listen-addr 10.0.0.1:99999
usage2 "listen address that is a name" init --listen-addr example.com:2377
usage2 "malformed advertise address" init --advertise-addr 1.2.3
usage2 "bad log level" --log-level loud
usage2 "malformed duration" init --cert-expiry 90
usage2 "duration below the 1h floor" init --cert-expiry 30m
usage2 "--cert-expiry without init" --cert-expiry 720h
usage2 "missing flag value" init --state-dir
usage2 "bad hostname" init --hostname 'a b'
usage2 "extra argument" init extra
check "swarmd --help exits 0" bash -c "'$SWARMD' --help | grep -q 'Usage: swarmd'"
check "swarmd init --help documents --cert-expiry" bash -c "'$SWARMD' init --help | grep -q -- '--cert-expiry'"

SD=$T/state
SOCK=$SD/swarmd.sock
check "resume of an empty dir explains what to do" bash -c "'$SWARMD' --state-dir '$T/empty' 2>&1 | grep -q \"swarmd init\""

start_swarmd m1 init --state-dir "$SD" --listen-addr 127.0.0.1:0
PID=$LAST_PID
wait_ready "$SOCK" "$PID" || { cat "$T/m1.log"; fail "init not ready"; finish; }
ADDR=$(listen_addr "$T/m1.log")
NODE=$(ctl node ls -q)

ERR=$("$SWARMD" init --state-dir "$SD" --listen-addr 127.0.0.1:0 2>&1); RC=$?
check "init on a used state dir is refused (exit 1)" bash -c "[ $RC = 1 ]"
check "init refusal names the node" has "$ERR" "$NODE"
check "init refusal says how to resume" has "$ERR" "swarmd --state-dir"
ERR=$("$SWARMD" --state-dir "$SD" 2>&1); RC=$?
check "a second swarmd on the same state dir is refused (exit 1)" bash -c "[ $RC = 1 ]"
check "the refusal says another swarmd runs there" has "$ERR" "already running"
check "the first swarmd still serves" bash -c "'$SWARMCTL' -H unix://$SOCK node ls -q | grep -q '$NODE'"

# raw frames on the control socket: each bad one closes that connection only
python3 - "$SOCK" <<'PY'
import socket, struct, sys, time
path = sys.argv[1]
def conn():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(path)
    return s
def closed(s):
    try:
        while True:
            b = s.recv(65536)
            if not b:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False
bystander = conn()            # an idle connection opened before the abuse
cases = {
    "too large": struct.pack(">I", 64 * 1024 * 1024),
    "garbage": struct.pack(">I", 3) + b"\x00\xff\xff",
    "bad kind": struct.pack(">I", 2) + b"\x10\x09",
}
for name, data in cases.items():
    s = conn(); s.sendall(data)
    assert closed(s), name + ": connection stayed open"
    print("ok: " + name + " frame closes its connection")
s = conn(); s.sendall(struct.pack(">I", 100) + b"\x08\x01"); s.shutdown(socket.SHUT_WR)
assert closed(s), "truncated: connection stayed open"
print("ok: truncated frame then EOF closes its connection")
# the bystander still works: a ListNodes request (Frame{id=7, kind=REQUEST, method})
m = b"Control.ListNodes"
frame = b"\x08\x07" + b"\x1a" + bytes([len(m)]) + m
bystander.sendall(struct.pack(">I", len(frame)) + frame)
hdr = bystander.recv(4)
assert len(hdr) == 4, "bystander got no answer"
print("ok: an open connection keeps working after the others were closed")
PY
[ $? = 0 ] || fail "raw frame checks"
check "daemon still serves after bad frames" bash -c "'$SWARMCTL' -H unix://$SOCK node ls -q | grep -q '$NODE'"

# TLS: a certificate from another CA is refused at the handshake
O=$T/other
mkdir -p "$O"
openssl ecparam -name prime256v1 -genkey -noout -out "$O/ca.key" 2>/dev/null
openssl req -x509 -new -key "$O/ca.key" -subj /CN=swarm-ca -days 2 -out "$O/ca.crt" 2>/dev/null
openssl ecparam -name prime256v1 -genkey -noout -out "$O/n.key" 2>/dev/null
openssl req -new -key "$O/n.key" -subj "/CN=$NODE/OU=swarm-manager/O=$(ctl cluster inspect -q)" -out "$O/n.csr" 2>/dev/null
openssl x509 -req -in "$O/n.csr" -CA "$O/ca.crt" -CAkey "$O/ca.key" -CAcreateserial -days 1 -out "$O/n.crt" 2>/dev/null
OUT=$("$PROBE" call "$ADDR" "$O/n.crt" "$O/n.key" "$SD/certificates/swarm-root-ca.crt" Control.ListNodes 2>&1)
check "a look-alike certificate from another CA is refused at handshake" hasnt "$OUT" "^status="
openssl req -x509 -new -key "$O/n.key" -subj "/CN=$NODE/OU=swarm-manager/O=$(ctl cluster inspect -q)" -days 1 -out "$O/self.crt" 2>/dev/null
OUT=$("$PROBE" call "$ADDR" "$O/self.crt" "$O/n.key" "$SD/certificates/swarm-root-ca.crt" Control.ListNodes 2>&1)
check "a self-signed certificate with a valid-looking subject is refused" hasnt "$OUT" "^status="
OUT=$(timeout 10 openssl s_client -connect "$ADDR" -tls1_2 </dev/null 2>&1)
check "TLS 1.2 is refused" has "$OUT" 'alert protocol version\|no protocols available\|Cipher is (NONE)'
OUT=$(timeout 10 openssl s_client -connect "$ADDR" -tls1_3 </dev/null 2>&1)
check "TLS 1.3 without a client certificate is accepted" has "$OUT" 'TLSv1.3'

# tokens that do not parse are refused with a reason, before anything is sent
for bad in "SWMTKN-2-$(printf 'a%.0s' $(seq 50))-$(printf 'b%.0s' $(seq 25))" \
           "SWMTKX-1-$(printf 'a%.0s' $(seq 50))-$(printf 'b%.0s' $(seq 25))" \
           "SWMTKN-1-short-$(printf 'b%.0s' $(seq 25))" \
           "SWMTKN-1-$(printf 'A%.0s' $(seq 50))-$(printf 'b%.0s' $(seq 25))"; do
    OUT=$("$PROBE" join "$ADDR" "$bad" 2>&1)
    check "malformed token refused: ${bad:0:12}…" has "$OUT" "invalid token"
done
WT=$(ctl join-token -q worker)
OTHER="SWMTKN-1-$(printf '0%.0s' $(seq 50))-${WT##*-}"
OUT=$("$PROBE" join "$ADDR" "$OTHER" 2>&1)
check "a token of another swarm is refused before the CSR is sent (digest)" has "$OUT" "CA digest does not match"
check "daemon still serves at the end" bash -c "'$SWARMCTL' -H unix://$SOCK node ls -q | grep -q '$NODE'"
check "SIGTERM exits 0" stop_swarmd "$PID"
finish
