#!/usr/bin/env bash
# Raft snapshots across managers: `cluster update --snapshot-interval` applies on every
# manager; a manager that joins after tens of MiB of data and many snapshots gets the store
# by snapshot installation (Swarm long failed above 4 MiB), and holds all of it: it can be
# recovered alone (--force-new-cluster) with every secret readable.
. "$(dirname "$0")/lib.sh"

sock() { echo "$T/m$1/swarmd.sock"; }
ctlm() { local i=$1; shift; "$SWARMCTL" -H "unix://$(sock "$i")" "$@"; }
until_ok() { local s=$1; shift; for _ in $(seq $((s * 10))); do "$@" && return 0; sleep 0.1; done; return 1; }

start_swarmd m1 init --state-dir "$T/m1" --listen-addr 127.0.0.1:0 --hostname snap-1
P1=$LAST_PID
wait_ready "$(sock 1)" "$P1" || { fail "init not ready"; finish; }
ADDR1=$(listen_addr "$T/m1.log")
MT=$(ctlm 1 join-token -q manager)
check "cluster update --snapshot-interval 20" bash -c "'$SWARMCTL' -H unix://$(sock 1) cluster update --snapshot-interval 20 >/dev/null"
check "…shown by cluster inspect" bash -c "'$SWARMCTL' -H unix://$(sock 1) cluster inspect | grep -q 'Snapshot interval: *20$'"
OUT=$(ctlm 1 cluster update --snapshot-interval 5 2>&1); RC=$?
check "an interval under 10 is a usage error (exit 2)" bash -c "[ $RC = 2 ]"
start_swarmd m2 join --state-dir "$T/m2" --listen-addr 127.0.0.1:0 --hostname snap-2 "$MT" "$ADDR1"
P2=$LAST_PID
check "manager 2 joins" wait_ready "$(sock 2)" "$P2"

# 70 secrets of ~400 KiB: ~28 MiB through raft, snapshots every 20 entries
head -c 300000 /dev/urandom | base64 -w0 | head -c 400000 >"$T/blob"
for i in $(seq 70); do
    printf '%04d' "$i" | cat - "$T/blob" | ctlm 1 secret create "big$i" - >/dev/null || fail "create big$i"
done
check "manager 1 took snapshots" until_ok 10 bash -c "ls '$T/m1/raft' | grep -q '^snapshot-'"
check "manager 2 took its own" until_ok 10 bash -c "ls '$T/m2/raft' | grep -q '^snapshot-'"
check "old entries were dropped behind the snapshots (no segment from index 1 left)" \
    until_ok 10 bash -c "! ls '$T/m1/raft' | grep -q '^0000000000000001-'"

start_swarmd m3 join --state-dir "$T/m3" --listen-addr 127.0.0.1:0 --hostname snap-3 "$MT" "$ADDR1"
P3=$LAST_PID
check "manager 3 joins after the data" wait_ready "$(sock 3)" "$P3"
check "…by installing a snapshot (tens of MiB)" until_ok 30 bash -c "ls '$T/m3/raft' | grep -q '^snapshot-'"
SNAP=$(ls -S "$T/m3/raft" | grep '^snapshot-' | grep -v meta | head -n 1)
check "…of more than 20 MiB" bash -c "[ \$(stat -c %s '$T/m3/raft/$SNAP') -gt 20000000 ]"

# manager 3 alone holds everything
kill -KILL "$P1" "$P2"; wait "$P1" "$P2" 2>/dev/null
kill -TERM "$P3"; wait "$P3" 2>/dev/null
start_swarmd m3f init --force-new-cluster --state-dir "$T/m3"
P3=$LAST_PID
check "manager 3 recovered alone serves" wait_ready "$(sock 3)" "$P3"
check "…with all 70 secrets" bash -c "[ \"\$('$SWARMCTL' -H unix://$(sock 3) secret ls -q | wc -l)\" = 70 ]"

# the machine goes down while the store is open (its commits are not flushed): at the next
# start the store is emptied and rebuilt from raft's snapshot and log, nothing lost
kill -KILL "$P3"; wait "$P3" 2>/dev/null
check "a killed manager leaves its store marked open" test -f "$T/m3/store/open.boot"
echo 00000000-0000-0000-0000-000000000000 >"$T/m3/store/open.boot" # as after a reboot
start_swarmd m3r --state-dir "$T/m3"
P3=$LAST_PID
check "after an OS crash the manager serves" wait_ready "$(sock 3)" "$P3"
check "…saying its store was rebuilt" grep -q "rebuilt from the raft snapshot" "$T/m3r.log"
check "…with all 70 secrets" bash -c "[ \"\$('$SWARMCTL' -H unix://$(sock 3) secret ls -q | wc -l)\" = 70 ]"
check "…and takes writes" bash -c "printf x | '$SWARMCTL' -H unix://$(sock 3) secret create after_rebuild - >/dev/null"
check "the secrets' data is in no state dir" bash -c "! grep -rqa \"\$(head -c 64 '$T/blob')\" '$T/m1' '$T/m2' '$T/m3'"
finish
