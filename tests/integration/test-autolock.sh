#!/usr/bin/env bash
# Autolock on three managers: init --autolock prints the unlock key once and every manager
# (those that join later too) seals its key-encryption key under it; a restarted manager
# is locked — it answers swarmctl with "locked" and runs nothing until `swarmd unlock`
# (stdin or SWARM_UNLOCK_KEY); wrong keys are refused and counted; unlock-key shows and
# rotates the key and every manager re-seals; a full cluster restart unlocks with the new
# key; autolock off puts the KEK back in clear and a restart needs no key; a manager that was
# down while autolock went on and catches up by a raft snapshot install locks its KEK too.
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
OUT=$(echo "SWMKEY-1-$(printf '%050d' 9)" | "$SWARMD" unlock --state-dir "$T/m2" 2>&1)
check "from the third wrong key on, the next one waits" has "$OUT" "3 wrong so far (the next key is checked in [0-9] s)"
OUT=$(echo "$K1" | "$SWARMD" unlock --state-dir "$T/m2" 2>&1); RC=$?
check "…even the right key is not checked before then (exit 1)" bash -c "[ $RC = 1 ]"
check "…saying when it will be" has "$OUT" "too many wrong unlock keys (3): the next one is checked in [0-9] s"
sleep 1.1
OUT=$(echo "not-a-key" | "$SWARMD" unlock --state-dir "$T/m2" 2>&1); RC=$?
check "a malformed key is refused before it is sent" bash -c "[ $RC = 1 ]"
check "…saying what a key looks like" has "$OUT" "SWMKEY-1-"
check "still locked after wrong keys" bash -c "! '$SWARMCTL' -H unix://$(sock 2) node ls >/dev/null 2>&1"
check "the right key on stdin unlocks it (once the wait is over)" until_ok 5 bash -c "echo '$K1' | '$SWARMD' unlock --state-dir '$T/m2' | grep -q Unlocked"
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

# a demoted manager is a worker: never locked. mgr-3 is demoted while it is down (its state
# dir locked), allowed to rejoin, and joins again with its ID: its keys open with the key
stop_swarmd "${PIDS_M[3]}" 2>/dev/null
check "mgr-3 down" until_ok 30 bash -c "'$SWARMCTL' -H unix://$(sock 1) node ls | grep -q 'mgr-3 *\(Down\|Unknown\)'"
demote3() { ctlm 1 node demote mgr-3 >/dev/null 2>&1; }
check "node demote mgr-3 while it is down" until_ok 20 demote3
check "…allowed to rejoin" ctlm 1 node update --allow-rejoin mgr-3
WT=$(ctlm 1 join-token -q worker)
OUT=$("$SWARMD" join --rejoin --state-dir "$T/m3" --timeout 10s "$WT" "$ADDR1" </dev/null 2>&1); RC=$?
check "join --rejoin of its locked state dir without the key fails (exit 1)" bash -c "[ $RC = 1 ]"
check "…saying it is locked" has "$OUT" "is locked (autolock)"
export SWARM_UNLOCK_KEY=$K2
start_swarmd m3w join --rejoin --state-dir "$T/m3" "$WT" "$ADDR1"
unset SWARM_UNLOCK_KEY
check "…with the key (SWARM_UNLOCK_KEY) it joins again as a worker" until_ok 20 grep -q "joined its swarm again" "$T/m3w.out"
PIDS_M[3]=$LAST_PID
check "…its KEK is back in clear" until_ok 20 clear_file 3
check "…its data key is gone" until_ok 10 bash -c "[ ! -e '$T/m3/keys/dek' ]"
restart 3 m3w2
w3_ready() { ctlm 1 node ls 2>/dev/null | grep mgr-3 | grep -q Ready; }
check "…and it restarts as a worker without a key" until_ok 20 w3_ready
check "…that is not locked" bash -c "! grep -q 'is locked' '$T/m3w2.log'"

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

# a manager that catches up by a snapshot install: autolock goes on while it is down, and the
# leader's log no longer holds the entries that did it when it is back, so it gets a snapshot
# (which changes its store without any event); it locks its KEK all the same
start_swarmd m4 join --state-dir "$T/m4" --listen-addr 127.0.0.1:0 --hostname mgr-4 "$MT" "$ADDR1"
PIDS_M[4]=$LAST_PID
check "a third manager joins (autolock off)" wait_ready "$(sock 4)" "${PIDS_M[4]}"
check "…3 Ready managers" until_ok 30 managers_ready 1 3
check "…its KEK in clear" until_ok 10 clear_file 4
OUT=$(ctlm 1 cluster update --snapshot-interval 64 2>&1); RC=$?
check "cluster update --snapshot-interval 64" bash -c "[ $RC = 0 ]"
check "keep-1..5 written (manager 4 applies them)" bash -c "for n in 1 2 3 4 5; do printf k | '$SWARMCTL' -H unix://$(sock 1) secret create keep-\$n - >/dev/null || exit 1; done"
stop_swarmd "${PIDS_M[4]}"; RC=$?
check "manager 4 stops (exit 0)" bash -c "[ $RC = 0 ]"
OUT=$(ctlm 1 cluster update --autolock=true 2>&1); RC=$?
K3=$(grep -o 'SWMKEY-1-[0-9a-z]*' <<<"$OUT")
check "autolock on while manager 4 is down prints a new key" bash -c "[ $RC = 0 ] && [ ${#K3} = 59 ] && [ '$K3' != '$K2' ]"
for i in 1 2; do check "…manager $i locks its KEK" until_ok 10 locked_file "$i"; done
churn() { # 200 raft entries: the leader snapshots past what manager 4 holds
    local n
    for n in $(seq 100); do
        printf c | ctlm 1 secret create "churn-$n" - >/dev/null && ctlm 1 secret rm "churn-$n" >/dev/null || return 1
    done
}
check "200 raft entries written while manager 4 is down" churn
# a snapshot of ~24 MB: its install ends well after manager 4 starts serving, so after its
# start-up autolock check (100 ms after it serves) — only the re-check after an install sees it
head -c 300000 /dev/urandom | base64 -w0 >"$T/big"
check "60 secrets of 400 KB written" bash -c "for n in \$(seq 60); do '$SWARMCTL' -H unix://$(sock 1) secret create big-\$n '$T/big' >/dev/null || exit 1; done"
start_swarmd_traced m4b --state-dir "$T/m4"
PIDS_M[4]=$LAST_PID
check "manager 4 restarts (its KEK was in clear: not locked)" wait_ready "$(sock 4)" "${PIDS_M[4]}"
installed() { grep -q 'restored snapshot with last index' "$T/m4b.raft"; }
check "…and catches up by a snapshot install (raft's trace says so)" until_ok 20 installed
SERVING=$(sed -n 's/^\([0-9T:.-]*Z\) .* is serving: .*/\1/p' "$T/m4b.log" | head -n 1)
INSTALLED=$(sed -n 's/^LIBRAFT *\([0-9]*\) .*restored snapshot with last index.*/\1/p' "$T/m4b.raft" | head -n 1)
echo "(manager 4 installed the snapshot $((INSTALLED / 1000000 - $(date -d "$SERVING" +%s%3N))) ms after it began serving)"
check "…then locks its KEK under the cluster's key" until_ok 10 locked_file 4
check "…as its log says" grep -q "locked under the cluster's unlock key" "$T/m4b.log"
restart 4 m4c
check "restarted, manager 4 is locked" until_ok 10 bash -c "[ -S '$(sock 4)' ] && ! '$SWARMCTL' -H unix://$(sock 4) node ls >/dev/null 2>&1"
OUT=$(echo "$K2" | "$SWARMD" unlock --state-dir "$T/m4" 2>&1)
check "…the key from before autolock went off is refused" has "$OUT" "wrong unlock key"
check "…the cluster's key unlocks it" bash -c "echo '$K3' | '$SWARMD' unlock --state-dir '$T/m4' | grep -q Unlocked"
check "…it serves" wait_ready "$(sock 4)" "${PIDS_M[4]}"
check "…as one of 3 Ready managers" until_ok 30 managers_ready 4 3
# reads are served by the leader: to see what manager 4 itself holds, make it the survivor
for i in 1 2 4; do stop_swarmd "${PIDS_M[$i]}" 2>/dev/null; done
start_swarmd m4f init --force-new-cluster --state-dir "$T/m4"
PIDS_M[4]=$LAST_PID
check "manager 4 alone (--force-new-cluster) is locked" until_ok 10 bash -c "[ -S '$(sock 4)' ] && ! '$SWARMCTL' -H unix://$(sock 4) node ls >/dev/null 2>&1"
check "…unlocks with the cluster's key" bash -c "echo '$K3' | '$SWARMD' unlock --state-dir '$T/m4' | grep -q Unlocked"
check "…and serves" wait_ready "$(sock 4)" "${PIDS_M[4]}"
check "…every secret, those before the snapshot included" until_ok 10 ctlm 4 secret inspect pw after_restart keep-1 keep-5 big-60
check "…and not the removed ones" bash -c "[ \"\$('$SWARMCTL' -H unix://$(sock 4) secret ls -q | wc -l)\" = 67 ]"
check "no sanitizer report in any manager's log" no_sanitizer_report "$T"/m*.log

# nothing readable at rest, the keys included
check "no unlock key in any state dir" bash -c "! grep -rqa -e '$K1' -e '$K2' -e '$K3' '$T/m1' '$T/m2' '$T/m3' '$T/m4'"
check "the secret's value is in no state dir" bash -c "! grep -rqa '$SECRET' '$T/m1' '$T/m2' '$T/m3' '$T/m4'"
finish
