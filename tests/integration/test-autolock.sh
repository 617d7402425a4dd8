#!/usr/bin/env bash
# Autolock on three managers: init --autolock prints the unlock key once and every manager
# (those that join later too) seals its key-encryption key under it; a restarted manager
# is locked — it answers swarmctl with "locked" and runs nothing until `swarmd unlock`
# (stdin or SWARM_UNLOCK_KEY); wrong keys are refused and counted; unlock-key shows and
# rotates the key and every manager re-seals; a full cluster restart unlocks with the new
# key; autolock off puts the KEK back in clear and a restart needs no key.
. "$(dirname "$0")/lib.sh"

locked_file() { [ "$(head -c 4 "$T/m$1/keys/kek" 2>/dev/null)" = SWLK ]; }
clear_file() { [ "$(stat -c %s "$T/m$1/keys/kek")" = 36 ]; }
kek_sum() { md5sum <"$T/m$1/keys/kek" | cut -d' ' -f1; }
# restart I NAME: SIGTERM manager I and start it again (its log in NAME.log)
restart() {
    stop_swarmd "${PIDS_M[$1]}" 2>/dev/null
    start_swarmd "$2" --state-dir "$T/m$1"
    PIDS_M[$1]=$LAST_PID
}
socket_up() { [ -S "$(sock "$1")" ]; }

start_swarmd m1 init --autolock --state-dir "$T/m1" --listen-addr 127.0.0.1:0 --hostname mgr-1
PIDS_M[1]=$LAST_PID
wait_ready "$(sock 1)" "${PIDS_M[1]}" || { fail "init --autolock not ready"; finish; }
K1=$(grep -o 'SWMKEY-1-[0-9a-z]*' "$T/m1.out")
check "init --autolock prints an unlock key" bash -c "[ ${#K1} = 59 ]"
check "…that is the one unlock-key shows" bash -c "[ '$(ctlm 1 unlock-key -q)' = '$K1' ]"
check "cluster inspect says Autolock: true" bash -c "'$SWARMCTL' -H unix://$(sock 1) cluster inspect | grep -q 'Autolock: *true'"
check "the first manager's KEK is locked" until_ok 5 locked_file 1
ADDR1=$(listen_addr "$T/m1.log")
MT=$(ctlm 1 join-token -q manager)
for i in 2 3; do
    start_swarmd "m$i" join --state-dir "$T/m$i" --listen-addr 127.0.0.1:0 --hostname "mgr-$i" \
        "$MT" "$ADDR1"
    PIDS_M[$i]=$LAST_PID
    check "manager $i joins" wait_ready "$(sock "$i")" "${PIDS_M[$i]}"
    check "…and locks its KEK under the cluster's key" until_ok 10 locked_file "$i"
done
check "3 Ready managers" until_ok 20 managers_ready 1 3
SECRET="al-$RANDOM$RANDOM"
check "secret create" bash -c "printf '%s' '$SECRET' | '$SWARMCTL' -H unix://$(sock 1) secret create pw - >/dev/null"
check "a follower shows the same unlock key" bash -c "[ '$(ctlm 2 unlock-key -q)' = '$K1' ]"
OUT=$(ctlm 1 cluster inspect --format json 2>&1)
check "cluster inspect never shows the key" hasnt "$OUT" "$K1"

# a restarted manager is locked
restart 2 m2b
check "a restarted manager serves its socket" until_ok 10 socket_up 2
OUT=$(ctlm 2 node ls 2>&1); RC=$?
check "…but answers swarmctl with 'locked' (exit 1)" bash -c "[ $RC = 1 ]"
echo "(locked: $OUT)"
check "…naming swarmd unlock" has "$OUT" "locked.*swarmd unlock"
OUT=$(echo "SWMKEY-1-$(printf '%050d' 7)" | "$SWARMD" unlock --state-dir "$T/m2" 2>&1); RC=$?
check "a wrong key is refused (exit 1)" bash -c "[ $RC = 1 ]"
check "…and counted" has "$OUT" "wrong unlock key (1 wrong"
OUT=$(echo "SWMKEY-1-$(printf '%050d' 8)" | "$SWARMD" unlock --state-dir "$T/m2" 2>&1)
check "…each one" has "$OUT" "2 wrong"
OUT=$(echo "not-a-key" | "$SWARMD" unlock --state-dir "$T/m2" 2>&1); RC=$?
check "a malformed key is refused before it is sent" bash -c "[ $RC = 1 ]"
check "…saying what a key looks like" has "$OUT" "SWMKEY-1-"
check "still locked after wrong keys" bash -c "! '$SWARMCTL' -H unix://$(sock 2) node ls >/dev/null 2>&1"
check "the right key on stdin unlocks it" bash -c "echo '$K1' | '$SWARMD' unlock --state-dir '$T/m2' | grep -q Unlocked"
check "…it serves again" wait_ready "$(sock 2)" "${PIDS_M[2]}"
check "…with the secret" until_ok 10 ctlm 2 secret inspect pw
check "…as one of 3 Ready managers" until_ok 20 managers_ready 2 3
OUT=$(echo "$K1" | "$SWARMD" unlock --state-dir "$T/m2" 2>&1)
check "unlocking a running manager says it is not locked" has "$OUT" "not locked"

# rotation: every manager re-seals; the old key no longer opens a restarted manager
for i in 1 2 3; do SUM[$i]=$(kek_sum "$i"); done
K2=$(ctlm 2 unlock-key --rotate -q)
check "unlock-key --rotate (through a follower) gives a new key" bash -c "[ '${K2:0:9}' = SWMKEY-1- ] && [ '$K2' != '$K1' ]"
for i in 1 2 3; do
    check "manager $i re-seals its KEK" until_ok 10 bash -c "[ \"\$(md5sum <'$T/m$i/keys/kek' | cut -d' ' -f1)\" != '${SUM[$i]}' ]"
done
restart 3 m3b
check "restarted after the rotation: locked" until_ok 10 socket_up 3
OUT=$(echo "$K1" | "$SWARMD" unlock --state-dir "$T/m3" 2>&1)
check "…the old key is refused" has "$OUT" "wrong unlock key"
check "…the new one from SWARM_UNLOCK_KEY unlocks it" bash -c "SWARM_UNLOCK_KEY='$K2' '$SWARMD' unlock --state-dir '$T/m3' </dev/null | grep -q Unlocked"
check "…it serves" wait_ready "$(sock 3)" "${PIDS_M[3]}"

# a full cluster restart: all locked, all unlocked with the key, nothing lost
for i in 1 2 3; do stop_swarmd "${PIDS_M[$i]}" 2>/dev/null; done
for i in 1 2 3; do
    start_swarmd "m${i}c" --state-dir "$T/m$i"
    PIDS_M[$i]=$LAST_PID
done
for i in 1 2 3; do
    check "after a full restart manager $i is locked" until_ok 10 bash -c "socket_up() { [ -S '$(sock "$i")' ]; }; socket_up && ! '$SWARMCTL' -H unix://$(sock "$i") node ls >/dev/null 2>&1"
done
for i in 1 2 3; do
    check "…manager $i unlocks" bash -c "echo '$K2' | '$SWARMD' unlock --state-dir '$T/m$i' >/dev/null"
done
check "…a leader and 3 Ready managers again" until_ok 30 managers_ready 1 3
check "…the secret is there" ctlm 3 secret inspect pw
check "…and writes commit" bash -c "printf x | '$SWARMCTL' -H unix://$(sock 2) secret create after_restart - >/dev/null"

# a demoted manager is a worker: never locked
demote3() { ctlm 1 node demote mgr-3 >/dev/null 2>&1; }
check "node demote mgr-3 (once every manager is reachable again)" until_ok 20 demote3
check "…its KEK is back in clear" until_ok 20 clear_file 3
check "…its data key is gone" until_ok 10 bash -c "[ ! -e '$T/m3/keys/dek' ]"
restart 3 m3w
w3_ready() { ctlm 1 node ls 2>/dev/null | grep mgr-3 | grep -q Ready; }
check "…and it restarts as a worker without a key" until_ok 20 w3_ready
check "…that is not locked" bash -c "! grep -q 'is locked' '$T/m3w.log'"

# off: back in clear on every manager; a restart needs no key
OUT=$(ctlm 1 cluster update --autolock=false 2>&1); RC=$?
check "cluster update --autolock=false" bash -c "[ $RC = 0 ]"
for i in 1 2; do check "manager $i keeps its KEK in clear again" until_ok 10 clear_file "$i"; done
OUT=$(ctlm 1 unlock-key 2>&1); RC=$?
check "unlock-key with autolock off fails (exit 1)" bash -c "[ $RC = 1 ]"
check "…saying autolock is off" has "$OUT" "autolock is off"
restart 1 m1d
check "a restart without autolock needs no key" wait_ready "$(sock 1)" "${PIDS_M[1]}"
OUT=$(ctlm 1 cluster update --autolock=maybe 2>&1); RC=$?
check "--autolock=maybe is a usage error (exit 2)" bash -c "[ $RC = 2 ]"
OUT=$("$SWARMD" join --autolock "$MT" "$ADDR1" 2>&1); RC=$?
check "join --autolock is a usage error (exit 2)" bash -c "[ $RC = 2 ]"

# nothing readable at rest, the keys included
check "no unlock key in any state dir" bash -c "! grep -rqa -e '$K1' -e '$K2' '$T/m1' '$T/m2' '$T/m3'"
check "the secret's value is in no state dir" bash -c "! grep -rqa '$SECRET' '$T/m1' '$T/m2' '$T/m3'"
finish
