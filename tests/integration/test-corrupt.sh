#!/usr/bin/env bash
# A manager whose raft log was damaged on disk (a flipped byte, a truncated segment) does
# not start on it: exit 1 with a line naming the segment and what is wrong, no crash; the
# intact copy of the same state dir starts with every secret.
. "$(dirname "$0")/lib.sh"

SD=$T/m
SOCK=$SD/swarmd.sock
start_swarmd m init --state-dir "$SD" --listen-addr 127.0.0.1:0
PID=$LAST_PID
wait_ready "$SOCK" "$PID" || { fail "init not ready"; finish; }
for i in $(seq 30); do printf 'v%s' "$i" | ctl secret create "s$i" - >/dev/null; done
stop_swarmd "$PID"
cp -a "$SD" "$T/intact"
SEG=$(ls "$SD/raft" | grep -E '^[0-9]{16}-[0-9]{16}$' | sort | tail -n 1)
check "the log has a closed segment" bash -c "[ -n '$SEG' ]"

FIRST=$(ls "$SD/raft" | grep -E '^[0-9]{16}-[0-9]{16}$' | sort | head -n 1)
python3 - "$SD/raft/$FIRST" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[-8] ^= 0xff  # inside the data of its last entry
open(p, "wb").write(b)
PY
OUT=$(timeout 20 "$SWARMD" --state-dir "$SD" 2>&1); RC=$?
check "a flipped byte: swarmd exits 1" bash -c "[ $RC = 1 ]"
check "…naming the segment" has "$OUT" "$FIRST"
check "…and the damage" has "$OUT" "checksum"

rm -rf "$SD"; cp -a "$T/intact" "$SD"
truncate -s $(( $(stat -c %s "$SD/raft/$SEG") / 2 )) "$SD/raft/$SEG"
OUT=$(timeout 20 "$SWARMD" --state-dir "$SD" 2>&1); RC=$?
check "a truncated segment: swarmd exits 1" bash -c "[ $RC = 1 ]"
check "…naming the segment" has "$OUT" "$SEG"

rm -rf "$SD"; cp -a "$T/intact" "$SD"
start_swarmd m2 --state-dir "$SD"
PID=$LAST_PID
check "the intact copy starts" wait_ready "$SOCK" "$PID"
check "…with all 30 secrets" bash -c "[ \"\$('$SWARMCTL' -H unix://$SOCK secret ls -q | wc -l)\" = 30 ]"
finish
