#!/usr/bin/env bash
# Five managers under faults: writers keep creating secrets through every manager while the
# leader is killed (kill -9) and brought back three times — every acknowledged secret is
# there afterwards, once; two of five killed, the rest still take writes; then a full
# cluster restart (every manager stopped, then started) keeps everything.
. "$(dirname "$0")/lib.sh"

sock() { echo "$T/m$1/swarmd.sock"; }
ctlm() { local i=$1; shift; "$SWARMCTL" -H "unix://$(sock "$i")" "$@"; }
until_ok() { local s=$1; shift; for _ in $(seq $((s * 10))); do "$@" && return 0; sleep 0.1; done; return 1; }
leader_idx() { # the index of the manager node ls (through any live one) calls leader
    local i l
    for i in 1 2 3 4 5; do
        l=$(ctlm "$i" node ls --format json 2>/dev/null | python3 -c '
import json, sys
print("".join(n["hostname"] for n in json.load(sys.stdin) if n["manager_status"] == "leader"))' 2>/dev/null)
        [ -n "$l" ] && { echo "${l#ha-}"; return 0; }
    done
    return 1
}
ready_managers() { # ready_managers N: some manager lists N managers, one leader, all reachable
    local i
    for i in 1 2 3 4 5; do
        ctlm "$i" node ls --format json 2>/dev/null | python3 -c '
import json, sys
ns = [n for n in json.load(sys.stdin) if n["role"] == "manager"]
ok = len(ns) == int(sys.argv[1]) and sum(n["manager_status"] == "leader" for n in ns) == 1
ok = ok and all(n["manager_status"] in ("leader", "reachable") for n in ns)
sys.exit(0 if ok else 1)' "$1" && return 0
    done
    return 1
}

start_swarmd m1 init --state-dir "$T/m1" --listen-addr 127.0.0.1:0 --hostname ha-1
P[1]=$LAST_PID
wait_ready "$(sock 1)" "${P[1]}" || { fail "init not ready"; finish; }
ADDR1=$(listen_addr "$T/m1.log")
MT=$(ctlm 1 join-token -q manager)
for i in 2 3 4 5; do
    start_swarmd "m$i" join --state-dir "$T/m$i" --listen-addr 127.0.0.1:0 --hostname "ha-$i" \
        "$MT" "$ADDR1"
    P[$i]=$LAST_PID
    wait_ready "$(sock "$i")" "${P[$i]}" || fail "manager $i did not start"
done
check "five managers, one leader" until_ok 30 ready_managers 5

# writers: each creates secrets through "its" manager, logging what was acknowledged
writer() {
    local i=$1 n=0
    while [ ! -e "$T/stop" ]; do
        n=$((n + 1))
        if printf 'v' | "$SWARMCTL" -H "unix://$(sock "$i")" secret create "w$i-$n" - >/dev/null 2>&1; then
            echo "w$i-$n" >>"$T/acked"
        fi
        sleep 0.02
    done
}
for i in 1 2 3 4 5; do writer "$i" & WPIDS+=($!); done
for round in 1 2 3; do
    L=$(leader_idx) || { fail "no leader before round $round"; break; }
    kill -KILL "${P[$L]}"
    wait "${P[$L]}" 2>/dev/null
    new_leader() { local l; l=$(leader_idx) && [ "$l" != "$L" ]; }
    check "round $round: a new leader after killing ha-$L" until_ok 15 new_leader
    sleep 0.5
    start_swarmd "m$L-$round" --state-dir "$T/m$L"
    P[$L]=$LAST_PID
    check "round $round: ha-$L back" wait_ready "$(sock "$L")" "${P[$L]}"
    check "round $round: five managers again" until_ok 30 ready_managers 5
done
touch "$T/stop"
for p in "${WPIDS[@]}"; do wait "$p"; done
ACKED=$(wc -l <"$T/acked")
check "writes were acknowledged during the faults ($ACKED)" bash -c "[ $ACKED -gt 20 ]"
ctlm 1 secret ls --format json | python3 -c '
import json, sys
names = [s["name"] for s in json.load(sys.stdin)]
open(sys.argv[1], "w").write("\n".join(names) + "\n")' "$T/listed"
check "every acknowledged secret is there" bash -c "[ -z \"\$(sort '$T/acked' | comm -23 - <(sort '$T/listed'))\" ]"
check "none twice" bash -c "[ -z \"\$(sort '$T/listed' | uniq -d)\" ]"

# two of five down: three still form a quorum
L=$(leader_idx)
DOWN=()
for i in 1 2 3 4 5; do
    [ "$i" = "$L" ] && continue
    DOWN+=("$i")
    [ "${#DOWN[@]}" = 2 ] && break
done
for i in "${DOWN[@]}"; do kill -KILL "${P[$i]}"; wait "${P[$i]}" 2>/dev/null; done
check "two of five killed: writes go on" until_ok 10 bash -c "printf y | '$SWARMCTL' -H unix://$(sock "$L") secret create two_down - >/dev/null"
for i in "${DOWN[@]}"; do
    start_swarmd "m$i-back" --state-dir "$T/m$i"
    P[$i]=$LAST_PID
done
check "…and they come back" until_ok 30 ready_managers 5

# full cluster restart
for i in 1 2 3 4 5; do kill -TERM "${P[$i]}"; done
for i in 1 2 3 4 5; do wait "${P[$i]}" 2>/dev/null; done
for i in 1 2 3 4 5; do
    start_swarmd "m$i-restart" --state-dir "$T/m$i"
    P[$i]=$LAST_PID
done
check "after a full restart: five managers, one leader" until_ok 40 ready_managers 5
check "…with every secret" until_ok 10 bash -c "[ \"\$('$SWARMCTL' -H unix://$(sock 3) secret ls -q | wc -l)\" -ge $((ACKED + 1)) ]"
check "…including the last one" ctlm 2 secret inspect two_down
finish
